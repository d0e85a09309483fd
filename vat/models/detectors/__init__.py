"""The frozen detector D of the detection task, one module per detector family.

- :mod:`~vat.models.detectors.ultralytics`: :class:`FrozenDetector`, every anchor-free
  ultralytics YOLO with a one-to-many ``Detect`` head, and :data:`PAD_VALUE`;
  :mod:`~vat.models.detectors.loss`: its weighted detection loss.
- :mod:`~vat.models.detectors.yolov5`: :class:`YOLOv5Detector`, the original anchor-based
  YOLOv5 (v7.0 repository); its network :mod:`~vat.models.detectors.yolov5_net`, its loss
  :mod:`~vat.models.detectors.yolov5_loss`, its files :mod:`~vat.models.detectors.yolov5_files`.
- Shared by the families: :mod:`~vat.models.detectors.targets` (:class:`Detections`, what
  ``predict`` gives; :class:`Targets`, what ``loss`` takes) and
  :mod:`~vat.models.detectors.files` (the model yamls that ship with vat in
  ``vat/models/yolo/``, building a YOLO, our checkpoint format, reading ultralytics ``.pt``).
- :func:`load_detector`: either family, picked from the model name or file.

Importing this package imports ultralytics (vat/__init__.py has set its offline
environment first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vat.models.detectors.files import YOLO_DIR, build_yolo, resolve_yaml, save_detector
from vat.models.detectors.loss import WeightedDetectionLoss, WeightedTaskAlignedAssigner
from vat.models.detectors.targets import Detections, Targets
from vat.models.detectors.ultralytics import PAD_VALUE, FrozenDetector
from vat.models.detectors.yolov5 import YOLOv5Detector
from vat.models.detectors.yolov5_net import PREFIX as YOLOV5_PREFIX
from vat.models.detectors.yolov5_net import YOLOv5Model

__all__ = [
    "Detections",
    "Targets",
    "FrozenDetector",
    "YOLOv5Detector",
    "YOLOv5Model",
    "WeightedDetectionLoss",
    "WeightedTaskAlignedAssigner",
    "build_yolo",
    "load_detector",
    "resolve_yaml",
    "save_detector",
    "YOLO_DIR",
    "YOLOV5_PREFIX",
    "PAD_VALUE",
]


def load_detector(model: Any, **kw: Any) -> FrozenDetector | YOLOv5Detector:
    """A frozen D of the right family for ``model``; ``kw`` go to its constructor (``nc``,
    ``imgsz``, ``device``, ``names``, ``resize``).

    - A model yaml: ``yolov5:<yaml>`` is a YOLOv5 (anchor-based) yaml, so is a yaml file or
      dict with top-level ``anchors`` (ultralytics' yamls have none); any other yaml is an
      ultralytics one (``yolov8n.yaml``; ultralytics' own ``yolov5n.yaml`` is anchor-free).
    - A checkpoint: our files by their ``arch`` (``"yolo"``, ``"yolov5"``; a plain
      ``{state_dict, yaml, ...}`` file is YOLOv5's), pickled models by the classes they
      name (``ultralytics.*`` or YOLOv5's ``models.*``), without unpickling anything.
    - A built network: ultralytics' ``DetectionModel`` or a :class:`YOLOv5Model`.
    """
    from vat.models.detectors.yolov5_files import checkpoint_family

    if isinstance(model, YOLOv5Model):
        return YOLOv5Detector(model, **kw)
    if isinstance(model, dict):
        return (YOLOv5Detector if "anchors" in model else FrozenDetector)(model, **kw)
    if not isinstance(model, (str, Path)):
        return FrozenDetector(model, **kw)
    text = str(model)
    if text.startswith(YOLOV5_PREFIX):
        return YOLOv5Detector(text, **kw)
    if text.lower().endswith((".yaml", ".yml")):
        return (YOLOv5Detector if _has_anchors(Path(text)) else FrozenDetector)(text, **kw)
    family = checkpoint_family(Path(text))
    return (YOLOv5Detector if family == "yolov5" else FrozenDetector)(text, **kw)


def _has_anchors(path: Path) -> bool:
    """Whether a yaml file has top-level ``anchors`` (False for names and unreadable files)."""
    import yaml

    try:
        d = yaml.safe_load(path.read_text()) if path.is_file() else None
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(d, dict) and "anchors" in d
