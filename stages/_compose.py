"""Running stages from a composite stage (ablate, study, classify, real), by name.

A composite stage runs other stages again, with its own params and a
:class:`vat.layout.Layout` that moves their outputs, through :func:`run`; it never imports
another stage module. Each composite stage lists the stages it runs in ``RUNS``, which the
DVC deps test reads (their code is its dependency too).
"""

from __future__ import annotations

import importlib
from types import ModuleType


def stage(name: str) -> ModuleType:
    """The module of stage ``name`` (``stages/<name>.py``)."""
    return importlib.import_module(f"stages.{name}")


def run(name: str, *args, **kwargs):
    """``stages.<name>.run(*args, **kwargs)``: the stage's work with the given params and layout."""
    return stage(name).run(*args, **kwargs)
