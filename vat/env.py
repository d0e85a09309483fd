"""Process environment that keeps every third-party library offline and quiet.

Set on ``import vat`` (before ultralytics, FiftyOne, albumentations or DVC are imported)
so a user gets the same behaviour as the tests. Values already set are kept.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cache_dir() -> Path:
    """Per-user cache for tool state (ultralytics settings, FiftyOne database)."""
    root = os.environ.get("VAT_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "vat"
    )
    return Path(root)


def setup() -> None:
    cache = cache_dir()
    defaults = {
        "YOLO_OFFLINE": "1",  # ultralytics: never download weights, fonts or datasets
        "YOLO_AUTOINSTALL": "false",  # ... nor pip-install packages at run time
        "YOLO_CONFIG_DIR": str(cache / "ultralytics"),
        "YOLO_VERBOSE": "False",
        "FIFTYONE_DO_NOT_TRACK": "true",
        "FIFTYONE_DATABASE_DIR": str(cache / "fiftyone-db"),
        "FIFTYONE_DATABASE_VALIDATION": "false",
        "NO_ALBUMENTATIONS_UPDATE": "1",
        "DVC_NO_ANALYTICS": "1",
        "HF_HUB_OFFLINE": "1",
        "MPLBACKEND": "Agg",
    }
    for k, v in defaults.items():
        os.environ.setdefault(k, v)


def install_font() -> None:
    """Give ultralytics a local Arial.ttf so its plotting never tries to fetch one."""
    target = Path(os.environ["YOLO_CONFIG_DIR"]) / "Arial.ttf"
    if target.exists():
        return
    import matplotlib

    src = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, target)
