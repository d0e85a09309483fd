"""The DVC stages, one module each, and the ``vat`` command that runs them.

Each module has a docstring with Reads / Writes / Params, a frozen ``<Stage>Params``
dataclass for its ``params.yaml`` section, a plain ``run`` function that does the work,
and a thin typer ``command`` that loads params and calls it.
"""
