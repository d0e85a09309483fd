"""The frozen detector D of the detection task, one module per detector family.

- :mod:`~vat.models.detectors.ultralytics`: :class:`FrozenDetector`, every anchor-free
  ultralytics YOLO with a one-to-many ``Detect`` head, and :data:`PAD_VALUE`;
  :mod:`~vat.models.detectors.loss`: its weighted detection loss.
- Shared by the families: :mod:`~vat.models.detectors.targets` (:class:`Detections`, what
  ``predict`` gives; :class:`Targets`, what ``loss`` takes) and
  :mod:`~vat.models.detectors.files` (the model yamls that ship with vat in
  ``vat/models/yolo/``, building a YOLO, our checkpoint format, reading ultralytics ``.pt``).

Importing this package imports ultralytics (vat/__init__.py has set its offline
environment first).
"""

from vat.models.detectors.files import YOLO_DIR, build_yolo, resolve_yaml, save_detector
from vat.models.detectors.loss import WeightedDetectionLoss, WeightedTaskAlignedAssigner
from vat.models.detectors.targets import Detections, Targets
from vat.models.detectors.ultralytics import PAD_VALUE, FrozenDetector

__all__ = [
    "Detections",
    "Targets",
    "FrozenDetector",
    "WeightedDetectionLoss",
    "WeightedTaskAlignedAssigner",
    "build_yolo",
    "resolve_yaml",
    "save_detector",
    "YOLO_DIR",
    "PAD_VALUE",
]
