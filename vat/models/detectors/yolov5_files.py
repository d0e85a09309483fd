"""YOLOv5 detector files: the repository's ``.pt`` (read by a restricted unpickler), a plain
weights file, and our own format.

Three formats load into a :class:`~vat.models.detectors.yolov5_net.YOLOv5Model`
(:func:`load_yolov5`); nothing is downloaded and no YOLOv5 code is imported:

- The YOLOv5 repository's checkpoints (v7.0, Jocher et al., https://github.com/ultralytics/yolov5):
  a torch zip archive whose ``data.pkl`` pickles ``{"model": models.yolo.DetectionModel (often
  fp16), "ema", "optimizer", "opt", "epoch", ...}``, or the same classes under ``yolov5.models``
  (the PyPI package). Read by the restricted unpickler of
  :mod:`~vat.models.detectors.yolov5_pickle`, never by ``torch.load``: YOLOv5 and torch.nn
  classes become inert stand-ins, tensors are rebuilt by our own code, anything else is
  refused with a :class:`~vat.errors.DataError` naming the object and the file. Kept: the
  model's (or EMA's) tensors, yaml, names, stride, BatchNorm eps, its ``hyp`` (train.py's
  scaled gains) and the training image size from ``opt``. Tensors become float32.
- A plain ``{"state_dict", "yaml", "names", "stride"}`` file (optionally ``hyp``, ``imgsz``),
  loaded with ``torch.load(weights_only=True)``; fp16 tensors allowed; ``yaml`` a model dict
  or its YAML text.
- Ours, written by :func:`save_yolov5`: the plain file plus ``"arch": "yolov5"``,
  ``format_version``, ``imgsz``, ``hyp`` and ``bn_eps`` (BatchNorm eps that differ from 1e-3).

:func:`checkpoint_family` tells a YOLOv5 file from an ultralytics one without unpickling
any object (for :func:`vat.models.detectors.load_detector`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml as pyyaml
from torch import nn

from vat.errors import DataError
from vat.io import save_torch
from vat.models.checkpoints import PickledObject, describe, read_checkpoint
from vat.models.detectors.yolov5_loss import HYP, train_hyp
from vat.models.detectors.yolov5_net import BN_EPS, YOLOv5Model, load_yolov5_yaml
from vat.models.detectors.yolov5_pickle import YOLOV5_MODULES, plain_data, read_repository_checkpoint

if TYPE_CHECKING:
    from vat.models.detectors.yolov5 import YOLOv5Detector

__all__ = ["FORMAT_VERSION", "LoadedYOLOv5", "load_yolov5", "save_yolov5", "checkpoint_family"]

FORMAT_VERSION = 1


@dataclass
class LoadedYOLOv5:
    model: YOLOv5Model
    imgsz: int | None  # training image size, when the file knows it
    hyp: dict[str, float] | None  # the loss gains D was trained with (already scaled), when known
    kind: str  # "vat", "plain" or "repository"


# -- assembling a model ---------------------------------------------------------------------


def _assemble(path: Path, parts: Mapping[str, Any]) -> YOLOv5Model:
    """A YOLOv5Model from yaml, state_dict, names, stride and BatchNorm eps; DataError if they disagree."""
    cfg = parts.get("yaml")
    if isinstance(cfg, str):
        cfg = pyyaml.safe_load(cfg)
    if not isinstance(cfg, dict) or not plain_data(cfg):
        raise DataError(f"{path}: no model yaml (a dict of plain data) inside")
    try:
        model = YOLOv5Model(load_yolov5_yaml(cfg))
        sd = parts["state_dict"]
        model.load_state_dict(
            {k: v.float() if v.is_floating_point() else v for k, v in sd.items()}, strict=True
        )
    except DataError as e:
        raise DataError(f"{path}: {e}") from e
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as e:
        raise DataError(f"{path}: malformed YOLOv5 checkpoint ({type(e).__name__}: {e})") from e
    for name, eps in (parts.get("bn_eps") or {}).items():
        bn = model.get_submodule(name) if isinstance(name, str) else None
        if not isinstance(bn, nn.BatchNorm2d):
            raise DataError(f"{path}: {name!r} is not a BatchNorm of the model")
        bn.eps = float(eps)
    names = parts.get("names")
    if isinstance(names, Mapping):
        names = [names.get(i, names.get(str(i))) for i in range(len(names))]
    nc = model.head.nc
    if names is None:
        names = [str(i) for i in range(nc)]
    if not isinstance(names, (list, tuple)) or len(names) != nc or any(n is None for n in names):
        raise DataError(f"{path}: class names {names!r} do not fit nc={nc}")
    model.names = [str(n) for n in names]
    stride = parts.get("stride")
    if stride is not None and not torch.allclose(torch.as_tensor(stride).float().view(-1), model.stride):
        raise DataError(f"{path}: stride {stride} differs from the model's {model.stride.tolist()}")
    return model


def _gains(hyp: Any) -> dict[str, float] | None:
    return {k: float(v) for k, v in hyp.items() if k in HYP} if isinstance(hyp, Mapping) and hyp else None


def _from_repository(path: Path) -> LoadedYOLOv5:
    try:
        parts = read_repository_checkpoint(path)
    except DataError:
        raise
    except Exception as e:  # a malformed archive or pickle: zipfile, pickle and torch raise many types
        raise DataError(f"{path}: not a readable YOLOv5 checkpoint ({type(e).__name__}: {e})") from e
    model = _assemble(path, parts)
    opt = parts["opt"]
    imgsz = opt.get("imgsz", opt.get("img_size"))
    imgsz = imgsz[0] if isinstance(imgsz, (list, tuple)) and imgsz else imgsz
    imgsz = int(imgsz) if isinstance(imgsz, int) else None
    hyp = _gains(parts["hyp"])  # train.py's scaled gains, stored on the model
    if hyp is None and _gains(opt.get("hyp")):  # only the unscaled ones: scale them as train.py did
        hyp = train_hyp(model.head.nc, model.head.nl, imgsz or 640, _gains(opt.get("hyp")))
    return LoadedYOLOv5(model, imgsz, {**HYP, **hyp} if hyp else None, "repository")  # unnamed: defaults


def load_yolov5(path: Path) -> LoadedYOLOv5:
    """A YOLOv5 checkpoint of any of the three formats (module docstring); DataError naming the file."""
    if not path.is_file():
        raise DataError(
            f"{path}: detector checkpoint not found (nothing is downloaded: give a .pt path or a model yaml)"
        )
    try:
        ckpt = read_checkpoint(path)  # one-line DataError for garbage, empty, truncated files
    except PickledObject:  # a pickled model: the YOLOv5 repository's own format
        if not zipfile.is_zipfile(path):
            raise
        return _from_repository(path)
    arch = ckpt.get("arch") if isinstance(ckpt, Mapping) else None
    if (
        not isinstance(ckpt, Mapping)
        or arch not in (None, "yolov5")
        or not {"state_dict", "yaml"} <= set(ckpt)
    ):
        raise DataError(f"{path}: not a YOLOv5 detector checkpoint: it holds {describe(ckpt)}")
    model = _assemble(path, ckpt)
    imgsz = ckpt.get("imgsz")
    hyp = _gains(ckpt.get("hyp"))
    return LoadedYOLOv5(
        model,
        int(imgsz) if isinstance(imgsz, int) else None,
        {**HYP, **hyp} if hyp else None,
        "vat" if arch else "plain",
    )


def save_yolov5(det: YOLOv5Detector | YOLOv5Model, path: str | Path, imgsz: int | None = None) -> None:
    """Write ``det`` in our weights-only format (atomic); :func:`load_yolov5` reads it back."""
    from ultralytics.nn.modules import Conv

    from vat.models.detectors.yolov5 import DEFAULT_IMGSZ, YOLOv5Detector

    model = det.model if isinstance(det, YOLOv5Detector) else det
    if any(isinstance(m, Conv) and not hasattr(m, "bn") for m in model.modules()):
        raise ValueError(
            "cannot save a detector whose BatchNorms are folded: save it before fold_batchnorm()"
        )
    imgsz = int(imgsz or (det.imgsz if isinstance(det, YOLOv5Detector) else DEFAULT_IMGSZ))
    head = model.head
    hyp = det.hyp if isinstance(det, YOLOv5Detector) else train_hyp(head.nc, head.nl, imgsz)
    ckpt = {
        "arch": "yolov5",
        "format_version": FORMAT_VERSION,
        "yaml": deepcopy(model.yaml),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "names": [str(n) for n in model.names],
        "stride": model.stride.detach().cpu().clone(),
        "imgsz": imgsz,
        "hyp": {k: float(v) for k, v in hyp.items()},
        "bn_eps": {
            n: float(m.eps)
            for n, m in model.named_modules()
            if isinstance(m, nn.BatchNorm2d) and m.eps != BN_EPS
        },
    }
    save_torch(ckpt, path)


def checkpoint_family(path: Path) -> str:
    """``"yolov5"`` or ``"yolo"`` (ultralytics) for a checkpoint, from the classes its pickle names
    (read, never loaded) or our formats' keys; ``"yolo"`` when unsure (FrozenDetector then says
    what is wrong with the file)."""
    if not path.is_file():
        raise DataError(f"{path}: detector checkpoint not found (nothing is downloaded)")
    if not zipfile.is_zipfile(path):
        return "yolo"
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception as e:  # not a torch archive
        detail = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise DataError(f"{path}: a zip archive, but not a torch checkpoint ({detail})") from e
    if any(n.startswith("ultralytics.") for n in names):
        return "yolo"
    if any(n.rpartition(".")[0] in YOLOV5_MODULES for n in names):
        return "yolov5"
    if names:
        return "yolo"
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return "yolo"
    if isinstance(ckpt, Mapping) and (
        ckpt.get("arch") == "yolov5" or ("arch" not in ckpt and {"state_dict", "yaml"} <= set(ckpt))
    ):
        return "yolov5"
    return "yolo"
