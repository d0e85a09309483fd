"""The YOLOv5 reference code (PyPI ``yolov5``, = the repository's v7.0), for measurements and tests only.

vat's own YOLOv5 port (:mod:`vat.models.detectors.yolov5`) never imports YOLOv5 code; the
benchmark (:mod:`vat.bench.detector`) and the cross-checks in ``tests/test_yolov5.py`` compare
it against the reference, imported here. The package is installed without its
dependencies; two of the modules it imports are missing today and get throwaway stand-ins
in ``sys.modules`` during the import only (as :mod:`vat.data.compat_imagecorruptions` does):
``pkg_resources`` (gone from setuptools; YOLOv5 uses only ``parse_version``, given
``packaging``'s) and ``seaborn`` (imported by its plotting helpers, never called here).
Importing it also changes process-wide settings (``utils/general.py``, ``utils/torch_utils.py``):
``sys.path``, ``os.environ`` (OMP / NumExpr threads), the warning filters (it ignores every
UserWarning), torch's and numpy's print options, OpenCV's thread count; all are put back
after the import. Its ``logging.config.dictConfig`` call, which would close every logging
handler of the process, is skipped: the reference's logger ``yolov5`` keeps no handler of its
own and is set to warnings only. Matplotlib's backend (Agg) and font size are left as it sets
them.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import sys
import types
from collections.abc import Iterator

__all__ = ["import_reference"]


@contextlib.contextmanager
def _stand_ins() -> Iterator[None]:
    """Throwaway ``pkg_resources`` / ``seaborn`` modules where the real ones are missing."""
    added = []
    if importlib.util.find_spec("pkg_resources") is None:
        from packaging.version import Version

        pkg = types.ModuleType("pkg_resources")
        pkg.parse_version = Version
        sys.modules["pkg_resources"] = pkg
        added.append("pkg_resources")
    if importlib.util.find_spec("seaborn") is None:
        sys.modules["seaborn"] = types.ModuleType("seaborn")
        added.append("seaborn")
    import logging.config

    saved = _settings()
    dict_config = logging.config.dictConfig
    logging.config.dictConfig = _skip_logging_config
    try:
        yield
    finally:
        logging.config.dictConfig = dict_config
        for name in added:
            sys.modules.pop(name, None)
        _restore(saved)


def _skip_logging_config(config: dict) -> None:
    """Stands in for ``logging.config.dictConfig`` during the import (module docstring)."""


def _settings() -> dict:
    import copy
    import os
    import warnings

    import cv2
    import numpy as np
    import torch

    return {
        "path": list(sys.path),
        "environ": dict(os.environ),
        "filters": list(warnings.filters),
        "torch_print": copy.copy(vars(torch._tensor_str.PRINT_OPTS)),
        "numpy_print": np.get_printoptions(),
        "cv2_threads": cv2.getNumThreads(),
    }


def _restore(saved: dict) -> None:
    import os
    import warnings

    import cv2
    import numpy as np
    import torch

    sys.path[:] = saved["path"]
    os.environ.clear()
    os.environ.update(saved["environ"])
    warnings.filters[:] = saved["filters"]
    vars(torch._tensor_str.PRINT_OPTS).update(saved["torch_print"])
    np.set_printoptions(**saved["numpy_print"])
    cv2.setNumThreads(saved["cv2_threads"])


def import_reference() -> types.SimpleNamespace | str:
    """The reference's ``Model``, ``ComputeLoss`` and ``non_max_suppression`` (and its
    ``models.yolo`` / ``models.common`` modules), or a one-line reason it cannot be imported."""
    try:
        found = importlib.util.find_spec("yolov5") is not None
    except (ImportError, ValueError):  # a broken or blocked entry in sys.modules
        found = False
    if not found:
        return "the yolov5 package (YOLOv5 v7.0 reference) is not installed"
    try:
        with _stand_ins():
            yolo = importlib.import_module("yolov5.models.yolo")
            common = importlib.import_module("yolov5.models.common")
            loss = importlib.import_module("yolov5.utils.loss")
            general = importlib.import_module("yolov5.utils.general")
    except Exception as e:  # any missing dependency or incompatibility of the old package
        return f"the yolov5 package cannot be imported ({type(e).__name__}: {e})"
    logging.getLogger("yolov5").setLevel(logging.WARNING)
    return types.SimpleNamespace(
        Model=yolo.Model,
        ComputeLoss=loss.ComputeLoss,
        non_max_suppression=general.non_max_suppression,
        yolo=yolo,
        common=common,
    )
