"""Detector files: the model yamls that ship with vat, building a YOLO from one, and checkpoints.

Checkpoints: an ultralytics ``.pt`` (a pickle of the model, read with weights_only=True and only
torch.nn / ultralytics.nn module classes allowed), or
our own format written by :func:`save_detector`, which loads with
``torch.load(weights_only=True)``: ``{"arch": "yolo", "yaml": model dict, "state_dict": ...,
"names": [...], "imgsz": int, "hyp": {"box", "cls", "dfl"}}``. Nothing is ever downloaded.
:data:`YOLO_DIR` and :func:`resolve_yaml` are generic; the rest reads and writes ultralytics
``DetectionModel`` s.
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping, Sequence
from copy import deepcopy
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from ultralytics.cfg import get_cfg
from ultralytics.nn.tasks import DetectionModel, temporary_modules

# Importing this module ran vat/__init__.py first (YOLO_OFFLINE and friends are set before
# ultralytics is imported above).
from vat.errors import DataError
from vat.io import save_torch
from vat.models.checkpoints import PickledObject, describe, read_checkpoint

if TYPE_CHECKING:
    from vat.models.detectors.ultralytics import FrozenDetector

__all__ = ["YOLO_DIR", "FORMAT_VERSION", "resolve_yaml", "build_yolo", "save_detector", "load_checkpoint"]

FORMAT_VERSION = 1
# What a detector checkpoint may be, for messages about one that is not.
EXPECTED = "expected an ultralytics YOLO .pt, the original YOLOv5's .pt, or a detector.pt vat wrote"
YOLO_DIR = Path(__file__).parents[1] / "yolo"  # model yamls that ship with vat (yolov8p.yaml)


def resolve_yaml(name: str | Path) -> str:
    """A model yaml: an existing path, one that ships with vat, or a name ultralytics ships."""
    if Path(name).is_file():
        return str(name)
    if (YOLO_DIR / Path(name).name).is_file():
        return str(YOLO_DIR / Path(name).name)
    return str(name)


def build_yolo(yaml: str | Path | dict, nc: int | None, names: Sequence[str] | None = None) -> DetectionModel:
    """A randomly initialised ultralytics ``DetectionModel`` from a model yaml (no download).

    ``yaml``: a name ultralytics ships (``yolov8n.yaml``, ``yolov5n.yaml``, ``yolov3-tiny.yaml``,
    ``yolo11n.yaml``; the letter after the version picks the scale), a path, or a model dict.
    ``nc`` None keeps the yaml's class count (or takes ``len(names)``).
    """
    if nc is None and names is not None:
        nc = len(names)
    try:
        model = DetectionModel(
            deepcopy(yaml) if isinstance(yaml, dict) else resolve_yaml(yaml), nc=nc, verbose=False
        )
    except Exception as e:  # ultralytics raises several types for a missing or bad yaml
        raise DataError(f"{yaml}: cannot build a YOLO model from this yaml ({type(e).__name__}: {e})") from e
    if names is not None and len(names) != model.yaml["nc"]:
        raise ValueError(f"{len(names)} class names for nc={model.yaml['nc']}")
    model.names = {i: str(n) for i, n in enumerate(names)} if names is not None else model.names
    model.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from here
    return model


def save_detector(det: FrozenDetector | DetectionModel, path: str | Path, imgsz: int | None = None) -> None:
    """Write ``det`` in our weights-only format (atomic); :class:`FrozenDetector` reads it back.

    A :class:`~vat.models.detectors.yolov5.YOLOv5Detector` (or its network) is written as
    ``{"arch": "yolov5", ...}`` by :func:`~vat.models.detectors.yolov5_files.save_yolov5`.
    ``FrozenDetector`` is imported here, not at the top: it imports this module."""
    from vat.models.detectors.ultralytics import FrozenDetector
    from vat.models.detectors.yolov5 import YOLOv5Detector
    from vat.models.detectors.yolov5_net import YOLOv5Model

    if isinstance(det, (YOLOv5Detector, YOLOv5Model)):
        from vat.models.detectors.yolov5_files import save_yolov5

        save_yolov5(det, path, imgsz)
        return

    model = det.model if isinstance(det, FrozenDetector) else det
    if imgsz is None:
        imgsz = det.imgsz if isinstance(det, FrozenDetector) else 640
    names = [str(model.names[i]) for i in range(len(model.names))]
    args = getattr(model, "args", None)
    hyp = {k: float(arg_or_default(args, k)) for k in ("box", "cls", "dfl")}
    ckpt = {
        "arch": "yolo",
        "format_version": FORMAT_VERSION,
        "yaml": deepcopy(model.yaml),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "names": names,
        "imgsz": int(imgsz),
        "hyp": hyp,
    }
    cw = getattr(model, "class_weights", None)
    if cw is not None:
        ckpt["class_weights"] = torch.as_tensor(cw).detach().cpu()
    save_torch(ckpt, path)


def arg_or_default(args: Any, key: str) -> Any:
    """Training argument ``key`` of a model's ``args`` (namespace or dict), else ultralytics' default."""
    default = getattr(get_cfg(), key)
    if args is None:
        return default
    if isinstance(args, Mapping):
        return args.get(key, default)
    return getattr(args, key, default)


def load_checkpoint(path: Path) -> tuple[DetectionModel, int | None]:
    """Our weights-only format first; else an ultralytics pickle (a zip archive) of a trusted file."""
    if not path.is_file():
        raise DataError(
            f"{path}: detector checkpoint not found (nothing is downloaded: give a .pt path or a model yaml)"
        )
    try:
        ckpt = read_checkpoint(path)  # one-line DataError for garbage, empty, truncated files
    except PickledObject:  # a pickled model: ultralytics' own format
        if not zipfile.is_zipfile(path):
            raise
        return _load_ultralytics(path)
    if not isinstance(ckpt, Mapping) or ckpt.get("arch") != "yolo":
        raise DataError(f"{path}: not a detector checkpoint: it holds {describe(ckpt)} ({EXPECTED})")
    try:
        yaml, names = ckpt["yaml"], list(ckpt["names"])
        model = DetectionModel(deepcopy(yaml), nc=yaml["nc"], verbose=False)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise DataError(f"{path}: malformed detector checkpoint ({type(e).__name__}: {e})") from e
    if len(names) != model.model[-1].nc:
        raise DataError(f"{path}: {len(names)} names for nc={model.model[-1].nc}")
    model.names = {i: str(n) for i, n in enumerate(names)}
    cfg = get_cfg()
    for k, v in dict(ckpt.get("hyp", {})).items():
        setattr(cfg, k, float(v))
    model.args = cfg
    if "class_weights" in ckpt:
        model.class_weights = ckpt["class_weights"]
    return model, ckpt.get("imgsz")


_ALLOWED_MODULES = ("torch.nn.modules.", "ultralytics.nn.")
# Plain data holders ultralytics stores beside the model (its training args).
_ALLOWED_DATA = {"ultralytics.utils.IterableSimpleNamespace", "types.SimpleNamespace"}


def _module_classes(path: Path) -> list[type]:
    """The nn.Module classes an ultralytics checkpoint names; DataError for anything else."""
    import importlib

    classes = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(path):
        module, _, attr = name.rpartition(".")
        obj = None
        if module.startswith(_ALLOWED_MODULES):
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                obj = None
        if name in _ALLOWED_DATA:
            obj = getattr(importlib.import_module(module), attr)
            classes.append(obj)
            continue
        if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
            raise DataError(
                f"{path}: refusing to unpickle {name!r}: only torch.nn / ultralytics.nn module classes "
                "are loaded from an ultralytics checkpoint (weights_only=True)"
            )
        classes.append(obj)
    return classes


def _load_ultralytics(path: Path) -> tuple[DetectionModel, int | None]:
    # An ultralytics .pt pickles the whole model. It is still read with weights_only=True:
    # torch's restricted unpickler, allowed only the nn.Module classes of torch.nn and
    # ultralytics.nn that the file names; anything else (code, other objects) is refused.
    # ultralytics' own legacy aliases (torch_safe_load) apply, without its download
    # fallbacks and its renaming of yolov5*.pt paths.
    try:
        with (
            temporary_modules(
                modules={
                    "ultralytics.yolo.utils": "ultralytics.utils",
                    "ultralytics.yolo.v8": "ultralytics.models.yolo",
                    "ultralytics.yolo.data": "ultralytics.data",
                },
                attributes={
                    "ultralytics.nn.modules.block.Silence": "torch.nn.Identity",
                    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
                    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
                    "pathlib.WindowsPath": "pathlib.PosixPath",
                },
            ),
            torch.serialization.safe_globals(_module_classes(path)),
        ):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except DataError:
        raise
    except Exception as e:
        raise DataError(
            f"{path}: not a readable ultralytics checkpoint ({type(e).__name__}: {_first(e)})"
        ) from e
    if isinstance(ckpt, DetectionModel):
        ckpt = {"model": ckpt}
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, Mapping) else None
    if not isinstance(model, DetectionModel):
        what = describe(model if isinstance(ckpt, Mapping) and model is not None else ckpt)
        raise DataError(f"{path}: not a detector checkpoint: it holds {what} ({EXPECTED})")
    model = model.float()
    train_args = dict(ckpt.get("train_args") or {})
    model.args = {**vars(get_cfg()), **train_args}  # FrozenDetector turns this into a namespace
    if not hasattr(model, "stride"):
        raise DataError(f"{path}: model has no stride")
    imgsz = train_args.get("imgsz")
    return model, int(imgsz) if isinstance(imgsz, int) else None


def _first(e: BaseException) -> str:
    """The first non-empty line of an exception's text (torch's run over several)."""
    return next((line.strip() for line in str(e).splitlines() if line.strip()), "no detail")
