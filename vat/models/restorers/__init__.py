"""Frozen image restorers R: AOD-Net, SCI, dark channel prior, identity, and a folder.

Every restorer maps ``(B, 3, H, W)`` float RGB in [0, 1] to the same shape in [0, 1].
Built through :func:`load_restorer` / :func:`create_restorer` they are frozen: eval mode
(BatchNorm keeps its running statistics even if a parent module calls ``.train()``) and
no parameter requires a gradient.

Models and references
---------------------
- **AOD-Net**: B. Li, X. Peng, Z. Wang, J. Xu, D. Feng, "AOD-Net: All-in-One Dehazing
  Network", ICCV 2017. Five convolutions (1x1, 3x3, 5x5, 7x7, 3x3) with concatenations
  estimate K(x); J = ReLU(K * I - K + 1). Layer names ``e_conv1..5`` follow the public
  PyTorch port (MayankSingal/PyTorch-Image-Dehazing), whose ``dehazer.pth`` loads as is.
- **SCI**: L. Ma, T. Ma, R. Liu, X. Fan, Z. Luo, "Toward Fast, Flexible, and Robust
  Low-Light Image Enhancement", CVPR 2022 (code: vis-opt-group/SCI). Inference uses only
  the illumination network: i = clamp(enhance(y) + y, 1e-4, 1), output clamp(y / i, 0, 1).
  :class:`SCITrain` adds the self-calibrated module and the unsupervised loss (fidelity +
  smoothness) for training.
- **DCP**: K. He, J. Sun, X. Tang, "Single Image Haze Removal Using Dark Channel Prior",
  CVPR 2009 / TPAMI 2011, with the transmission refined by the guided filter of K. He,
  J. Sun, X. Tang, "Guided Image Filtering", ECCV 2010 (instead of soft matting).
- **Folder**: outputs of any restorer run elsewhere, looked up by image id.

Weights: :mod:`vat.models.restorers.weights` (our files and the public AOD-Net / SCI ones, loaded
with ``weights_only=True``); large images run tiled (:mod:`vat.models.tiling`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vat.errors import DataError, ParamsError
from vat.io import to_float, to_uint8
from vat.models.checkpoints import read_checkpoint
from vat.models.restorers.aodnet import AODNet
from vat.models.restorers.base import Restorer, freeze
from vat.models.restorers.dcp import DCP, Identity, box_filter, guided_filter
from vat.models.restorers.folder import FOLDER_EXTENSIONS, FolderRestorer
from vat.models.restorers.sci import SCI, TRAIN_ONLY_CONFIG, SCILoss, SCITrain
from vat.models.restorers.weights import filter_state_dict, load_state, remap_for, save_checkpoint
from vat.models.tiling import Steps, drain, restore_tiled_steps

__all__ = [
    "AODNet",
    "DCP",
    "FOLDER_EXTENSIONS",
    "FolderRestorer",
    "Identity",
    "RESTORERS",
    "Restorer",
    "SCI",
    "SCILoss",
    "SCITrain",
    "TRAINING_GRAPHS",
    "box_filter",
    "build_restorer",
    "create_restorer",
    "filter_state_dict",
    "freeze",
    "guided_filter",
    "load_restorer",
    "load_weights",
    "restore_image",
    "restore_image_steps",
    "save_checkpoint",
]


RESTORERS: dict[str, Callable[..., Restorer]] = {
    "aodnet": AODNet,
    "sci": SCI,
    "dcp": DCP,
    "identity": Identity,
}

# The training graph of each trainable restorer, for resuming from our checkpoints.
TRAINING_GRAPHS: dict[str, Callable[..., nn.Module]] = {"aodnet": AODNet, "sci": SCITrain}


def _constructor(name: str) -> Callable[..., Restorer]:
    if name == "folder":
        raise ParamsError("restorer 'folder' is a lookup, not a network: use build_restorer(..., folder=...)")
    if name not in RESTORERS:
        raise ParamsError(f"unknown restorer {name!r}; known: {', '.join([*RESTORERS, 'folder'])}")
    return RESTORERS[name]


def create_restorer(name: str, **kwargs: Any) -> Restorer:
    """A frozen restorer with default (random, for nets) weights: tests and smoke runs."""
    return freeze(_constructor(name)(**kwargs))


def load_restorer(name: str, weights: str | Path | None = None, **kwargs: Any) -> Restorer:
    """A frozen restorer ``name`` with ``weights`` from a checkpoint (see module docstring).

    A checkpoint of ours supplies its saved config as constructor arguments; ``kwargs``
    override them. Networks with parameters need ``weights``; DCP and identity do not.
    """
    ctor = _constructor(name)
    if weights is None:
        model = ctor(**kwargs)
        if any(True for _ in model.parameters()):
            raise ParamsError(f"restorer {name!r} needs a weights file (got none)")
        return freeze(model)
    path = Path(weights)
    obj = read_checkpoint(path)
    state, config = filter_state_dict(obj, name, path)
    config = {k: v for k, v in config.items() if k not in TRAIN_ONLY_CONFIG.get(name, set())}
    config.update(kwargs)
    try:
        inspect.signature(ctor).bind(**config)
    except TypeError as e:
        raise DataError(f"{path}: config {config} does not fit restorer {name!r} ({e})") from e
    model = ctor(**config)
    load_state(model, state, name, path)
    return freeze(model)


def build_restorer(
    name: str, weights: str | Path | None = None, folder: str | Path | None = None, **kwargs: Any
) -> Restorer | FolderRestorer:
    """What the restore stage calls: a frozen network, or a :class:`FolderRestorer`."""
    if name == "folder":
        if folder is None:
            raise ParamsError("restorer 'folder' needs a folder of restored images")
        return FolderRestorer(folder, **kwargs)
    return load_restorer(name, weights, **kwargs)


def load_weights(model: nn.Module, path: str | Path, arch: str) -> nn.Module:
    """Load a checkpoint into an existing module (e.g. :class:`SCITrain` to resume).

    ``arch`` is the registry name the checkpoint must be for; the module's own
    ``remap_state_dict`` decides which foreign keys it keeps (SCITrain keeps
    ``calibrate.*``). The module is left in whatever mode it was.
    """
    path = Path(path)
    state, _ = filter_state_dict(read_checkpoint(path), arch, path, remap=remap_for(model))
    load_state(model, state, arch, path)
    return model


def restore_image(
    restorer: nn.Module | FolderRestorer,
    image: np.ndarray,
    image_id: str,
    *,
    device: torch.device | str | None = None,
    tile: int = 512,
    overlap: int = 32,
) -> np.ndarray:
    """The restore stage's one call: uint8 (H, W, 3) degraded image -> uint8 restored.

    A network runs tiled on ``device`` (default: where its parameters are, else CPU); a
    :class:`FolderRestorer` looks the id up and checks the size matches.
    """
    return drain(restore_image_steps(restorer, image, image_id, device=device, tile=tile, overlap=overlap))


def restore_image_steps(
    restorer: nn.Module | FolderRestorer,
    image: np.ndarray,
    image_id: str,
    *,
    device: torch.device | str | None = None,
    tile: int = 512,
    overlap: int = 32,
) -> Steps[np.ndarray]:
    """:func:`restore_image`, yielding once per tile a network runs on (none for a folder)."""
    if isinstance(restorer, FolderRestorer):
        return restorer.load(image_id, size=(image.shape[1], image.shape[0]))
    if device is None:
        p = next(restorer.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    x = torch.from_numpy(to_float(image)).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)
    y = yield from restore_tiled_steps(restorer, x, tile=tile, overlap=overlap)
    return to_uint8(y[0].permute(1, 2, 0).float().cpu().numpy())
