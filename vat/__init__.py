"""vat: Visual-oriented adaptive Transformation (Wu & Jin, ECCV 2024), as a library.

The library does no printing and keeps no global random state; the ``vat`` command and
the DVC stages live in ``stages/``.
"""

from vat import env as _env

_env.setup()

__version__ = "0.1.0"
