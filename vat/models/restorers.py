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

Checkpoints
-----------
:func:`load_restorer` reads with ``torch.load(..., weights_only=True)`` only: a file that
needs arbitrary unpickling is refused with a :class:`~vat.errors.DataError`, never loaded.
A checkpoint filter accepts plain state_dicts, ``{"state_dict" | "model" | "net": ...}``
wrappers, ``module.`` prefixes (DataParallel), AOD-Net ``convN`` names, SCI's duplicated
``blocks.N`` keys (the original appends one module object to a ModuleList, so
``state_dict()`` stores it twice) and training-only ``calibrate.*`` keys, and our own
``{"arch", "config", "state_dict"}`` files written by :func:`save_checkpoint`.

Large images
------------
:func:`restore_tiled` runs a restorer over overlapping tiles with linear blending, so
memory is bounded by the tile size. For per-pixel-local nets (AOD-Net, SCI) the result
equals the whole-image result exactly (up to float rounding) when the blending margin
covers the receptive radius. DCP is not local (atmospheric light is a whole-image
estimate), so its :meth:`DCP.tiling_context` estimates A once on a downscaled copy of the
whole image and fixes the patch and filter radii from the full size before tiling.
"""

from __future__ import annotations

import inspect
import math
import os
import pickle
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vat.errors import DataError, ParamsError
from vat.io import load_rgb, save_torch, to_float, to_uint8

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
    "read_checkpoint",
    "restore_image",
    "restore_tiled",
    "save_checkpoint",
]


# --------------------------------------------------------------------------------------
# Base class


class Restorer(nn.Module):
    """A restorer R: (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1].

    ``receptive_radius`` is how far (pixels) an output pixel can see; ``None`` means not
    local (DCP), which :func:`restore_tiled` uses to pick its blending margin.
    """

    receptive_radius: int | None = 0

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False

    def train(self, mode: bool = True) -> Restorer:
        # A frozen R must not switch BatchNorm to batch statistics when a parent module
        # is put in train mode (the mistake SPEC.md lists for the authors' detector).
        return super().train(mode and not self.frozen)

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename keys of foreign checkpoints to this module's names (default: none)."""
        return state


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients, and (for :class:`Restorer`) stay in eval mode."""
    model.requires_grad_(False)
    if isinstance(model, Restorer):
        model.frozen = True
    return model.eval()


# --------------------------------------------------------------------------------------
# AOD-Net


class AODNet(Restorer):
    """AOD-Net (Li et al., ICCV 2017): J = ReLU(K(I) * I - K(I) + b), b = 1.

    Layer names and wiring follow the public PyTorch port: conv2 takes conv1's output,
    conv3 takes cat(conv1, conv2), conv4 cat(conv2, conv3), conv5 cat(conv1..conv4).
    """

    receptive_radius = 7  # 0 + 1 + 2 + 3 + 1 along the longest path (conv1..conv5)

    def __init__(self, b: float = 1.0) -> None:
        super().__init__()
        self.b = float(b)
        self.e_conv1 = nn.Conv2d(3, 3, 1, 1, 0)  # weight (3, 3, 1, 1)
        self.e_conv2 = nn.Conv2d(3, 3, 3, 1, 1)  # (3, 3, 3, 3)
        self.e_conv3 = nn.Conv2d(6, 3, 5, 1, 2)  # (3, 6, 5, 5)
        self.e_conv4 = nn.Conv2d(6, 3, 7, 1, 3)  # (3, 6, 7, 7)
        self.e_conv5 = nn.Conv2d(12, 3, 3, 1, 1)  # (3, 12, 3, 3)

    def estimate_k(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.relu(self.e_conv1(x))  # (B, 3, H, W)
        x2 = F.relu(self.e_conv2(x1))
        x3 = F.relu(self.e_conv3(torch.cat((x1, x2), 1)))
        x4 = F.relu(self.e_conv4(torch.cat((x2, x3), 1)))
        return F.relu(self.e_conv5(torch.cat((x1, x2, x3, x4), 1)))  # K(x), (B, 3, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.estimate_k(x)
        # ReLU as published; the upper clamp keeps the [0, 1] contract.
        return (k * x - k + self.b).clamp(0.0, 1.0)

    def init_weights(self, generator: torch.Generator | None = None) -> AODNet:
        """N(0, 0.02) conv weights and zero biases, as the public port's training script."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
        return self

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Other ports name the layers conv1..conv5.
        return {re.sub(r"^conv([1-5])\.", r"e_conv\1.", k): v for k, v in state.items()}


# --------------------------------------------------------------------------------------
# SCI


class SCIEnhance(nn.Module):
    """SCI's illumination network; returns the illumination i, not the enhanced image.

    The original builds ``self.blocks`` as a ModuleList holding ``self.conv`` ``layers``
    times, so one residual block is applied ``layers`` times with shared weights; we keep
    only ``conv`` and loop, and the checkpoint filter folds ``blocks.N`` into ``conv``.
    """

    def __init__(self, layers: int = 1, channels: int = 3) -> None:
        super().__init__()
        self.layers = int(layers)
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.ReLU())
        self.conv = nn.Sequential(nn.Conv2d(channels, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU())
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        fea = self.in_conv(y)  # (B, C, H, W)
        for _ in range(self.layers):
            fea = fea + self.conv(fea)
        return torch.clamp(self.out_conv(fea) + y, 1e-4, 1.0)  # illumination, (B, 3, H, W)


class SCICalibrate(nn.Module):
    """SCI's self-calibrated module (training only): returns r - G(r).

    ``convs`` (conv-BN-ReLU twice) is shared across ``layers`` residual steps, as ``blocks``
    is in the original.
    """

    def __init__(self, layers: int = 3, channels: int = 16) -> None:
        super().__init__()
        self.layers = int(layers)
        self.in_conv = nn.Sequential(nn.Conv2d(3, channels, 3, 1, 1), nn.BatchNorm2d(channels), nn.ReLU())
        self.convs = nn.Sequential(
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, 1, 1),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
        )
        self.out_conv = nn.Sequential(nn.Conv2d(channels, 3, 3, 1, 1), nn.Sigmoid())

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        fea = self.in_conv(r)
        for _ in range(self.layers):
            fea = fea + self.convs(fea)
        return r - self.out_conv(fea)  # (B, 3, H, W)


def _sci_remap(state: dict[str, torch.Tensor], keep_calibrate: bool) -> dict[str, torch.Tensor]:
    if not any(k.startswith(("enhance.", "calibrate.")) for k in state) and any(
        k.startswith("in_conv.") for k in state
    ):
        state = {"enhance." + k: v for k, v in state.items()}  # an EnhanceNetwork saved alone
    if not keep_calibrate:
        state = {k: v for k, v in state.items() if not k.startswith("calibrate.")}
    state = _fold_shared(state, "enhance.blocks.", "enhance.conv.")
    return _fold_shared(state, "calibrate.blocks.", "calibrate.convs.")


def _fold_shared(state: dict[str, torch.Tensor], alias: str, canonical: str) -> dict[str, torch.Tensor]:
    """Drop ``alias<N>.<rest>`` keys that duplicate ``canonical<rest>`` (or rename them)."""
    out = {k: v for k, v in state.items() if not k.startswith(alias)}
    pattern = re.compile(re.escape(alias) + r"\d+\.(.*)$")
    for k, v in state.items():
        m = pattern.match(k)
        if m is None:
            continue
        target = canonical + m.group(1)
        if target not in out:
            out[target] = v
        elif not torch.equal(out[target], v):
            # The original shares one module, so the copies are always equal; different
            # values mean a different architecture (unshared blocks) that we cannot load.
            raise _CheckpointMismatch(f"{k} differs from {target}: blocks are not weight-shared copies")
    return out


class _CheckpointMismatch(Exception):
    """Internal: a checkpoint that does not fit; turned into DataError naming the file."""


class SCI(Restorer):
    """SCI inference (Ma et al., CVPR 2022): output clamp(y / i, 0, 1), i = enhance(y)."""

    def __init__(self, layers: int = 1, channels: int = 3) -> None:
        super().__init__()
        self.enhance = SCIEnhance(layers, channels)

    @property
    def receptive_radius(self) -> int:  # in_conv + layers x conv + out_conv, 3x3 each
        return 2 + self.enhance.layers

    def illumination(self, y: torch.Tensor) -> torch.Tensor:
        return self.enhance(y)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return torch.clamp(y / self.enhance(y), 0.0, 1.0)

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return _sci_remap(state, keep_calibrate=False)


# The config keys of a SCITrain checkpoint that the inference SCI does not take.
_TRAIN_ONLY_CONFIG = {"sci": {"stage", "calibrate_layers", "calibrate_channels"}}

_YCBCR_BT601 = torch.tensor(  # rows: R, G, B contributions to (Y, Cb, Cr), for x @ M
    [[0.257, -0.148, 0.439], [0.504, -0.291, -0.368], [0.098, 0.439, -0.071]]
)
# The SCI code's matrix: 0.564 instead of BT.601's 0.504 for G -> Y.
_YCBCR_SCI_CODE = torch.tensor([[0.257, -0.148, 0.439], [0.564, -0.291, -0.368], [0.098, 0.439, -0.071]])
_YCBCR_BIAS = torch.tensor([16.0, 128.0, 128.0]) / 255.0

# The 12 undirected offsets of a 5x5 neighbourhood; SCI's code lists each twice (24 terms).
_SMOOTH_OFFSETS = (
    (1, 0),
    (0, 1),
    (1, 1),
    (1, -1),
    (2, 0),
    (0, 2),
    (2, 1),
    (2, -1),
    (1, 2),
    (1, -2),
    (2, 2),
    (2, -2),
)


class SCILoss(nn.Module):
    """SCI's unsupervised loss for one stage: fidelity_weight * MSE(i, x) + smoothness(x, i).

    Smoothness is an edge-aware total variation of the illumination over the 24
    neighbours in a 5x5 window, each weighted by exp(-|x_p - x_q|^2 / (2 sigma^2)) with x
    in YCbCr. ``ycbcr="bt601"`` (default) converts per pixel, as the paper describes;
    ``"sci_code"`` reproduces the released code, which reshapes an NCHW tensor with
    ``view(-1, 3)`` (mixing pixels and channels) and uses 0.564 for G -> Y. With sigma = 10
    the weights are all within 2% of 1, so the choice barely changes training.
    """

    def __init__(self, fidelity_weight: float = 1.5, sigma: float = 10.0, ycbcr: str = "bt601") -> None:
        super().__init__()
        if ycbcr not in ("bt601", "sci_code"):
            raise ValueError(f"ycbcr must be 'bt601' or 'sci_code', got {ycbcr!r}")
        self.fidelity_weight = float(fidelity_weight)
        self.sigma = float(sigma)
        self.ycbcr = ycbcr

    def to_ycbcr(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        bias = _YCBCR_BIAS.to(x)
        if self.ycbcr == "sci_code":
            flat = x.contiguous().view(-1, 3)  # deliberately the released code's layout
            return (flat @ _YCBCR_SCI_CODE.to(x) + bias).view(b, 3, h, w)
        flat = x.permute(0, 2, 3, 1).reshape(-1, 3)  # (B*H*W, 3) per-pixel RGB
        return (flat @ _YCBCR_BT601.to(x) + bias).view(b, h, w, 3).permute(0, 3, 1, 2)

    def smoothness(self, x: torch.Tensor, illu: torch.Tensor) -> torch.Tensor:
        yuv = self.to_ycbcr(x)
        coef = -1.0 / (2.0 * self.sigma**2)
        total = illu.new_zeros(())
        for dy, dx in _SMOOTH_OFFSETS:
            a, b = _offset_pair(yuv, dy, dx)
            w = torch.exp(((a - b) ** 2).sum(1, keepdim=True) * coef)  # (B, 1, h', w')
            ia, ib = _offset_pair(illu, dy, dx)
            total = total + (w * (ia - ib).abs().sum(1, keepdim=True)).mean()
        # Each undirected pair appears twice in the original (p->q and q->p), same value.
        return 2.0 * total

    def forward(self, x: torch.Tensor, illu: torch.Tensor) -> torch.Tensor:
        return self.fidelity_weight * F.mse_loss(illu, x) + self.smoothness(x, illu)


def _offset_pair(t: torch.Tensor, dy: int, dx: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Views t[p] and t[p + (dy, dx)] over the pixels p where both exist (dy >= 0)."""
    h, w = t.shape[-2:]
    x0, x1 = (0, w - dx) if dx >= 0 else (-dx, w)
    return t[..., : h - dy, x0:x1], t[..., dy:, x0 + dx : x1 + dx]


class SCITrain(nn.Module):
    """SCI's training graph (``Network`` in the original model.py).

    For t = 0..stage-1: i_t = enhance(y_t), r_t = clamp(x / i_t, 0, 1), y_{t+1} = x +
    calibrate(r_t), with y_0 = x. The loss sums :class:`SCILoss` (y_t, i_t) over stages.
    Only ``enhance`` is needed at inference: :meth:`to_inference`, or save with
    :func:`save_checkpoint` and load as ``"sci"`` (``calibrate.*`` keys are dropped).
    """

    def __init__(
        self,
        stage: int = 3,
        layers: int = 1,
        channels: int = 3,
        calibrate_layers: int = 3,
        calibrate_channels: int = 16,
        loss: SCILoss | None = None,
    ) -> None:
        super().__init__()
        self.stage = int(stage)
        self.enhance = SCIEnhance(layers, channels)
        self.calibrate = SCICalibrate(calibrate_layers, calibrate_channels)
        self.criterion = loss if loss is not None else SCILoss()
        self.config = {
            "stage": self.stage,
            "layers": int(layers),
            "channels": int(channels),
            "calibrate_layers": int(calibrate_layers),
            "calibrate_channels": int(calibrate_channels),
        }

    def init_weights(self, generator: torch.Generator | None = None) -> SCITrain:
        """Conv N(0, 0.02) with zero bias, BatchNorm weight N(1, 0.02), as SCI's train.py."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, 0.02, generator=generator)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.normal_(m.weight, 1.0, 0.02, generator=generator)
        return self

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per-stage (illuminations, reflectances r, stage inputs y)."""
        i_list, r_list, in_list = [], [], []
        y = x
        for _ in range(self.stage):
            in_list.append(y)
            i = self.enhance(y)
            r = torch.clamp(x / i, 0.0, 1.0)
            y = x + self.calibrate(r)
            i_list.append(i)
            r_list.append(r)
        return i_list, r_list, in_list

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        i_list, _, in_list = self(x)
        return sum(self.criterion(y, i) for y, i in zip(in_list, i_list, strict=True))

    def to_inference(self) -> SCI:
        """A frozen :class:`SCI` with a copy of this model's ``enhance`` weights."""
        cfg = self.config
        model = SCI(cfg["layers"], cfg["channels"])
        model.enhance.load_state_dict(self.enhance.state_dict())
        return freeze(model.to(next(self.parameters()).device))

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return _sci_remap(state, keep_calibrate=True)


# --------------------------------------------------------------------------------------
# Dark channel prior


def box_filter(x: torch.Tensor, r: int) -> torch.Tensor:
    """Mean over the (2r+1)^2 window clipped at the image border, O(1) per pixel.

    Cumulative sums run in float64: over a 4000-pixel row a float32 running sum loses
    about 1e-3, the size of the guided filter's eps.
    """
    h, w = x.shape[-2:]
    out = x.double()
    counts = []
    for dim, n in ((-2, h), (-1, w)):
        c = torch.cumsum(out, dim)
        c = torch.cat((torch.zeros_like(c.narrow(dim, 0, 1)), c), dim)  # c[k] = sum of x[:k]
        idx = torch.arange(n, device=x.device)
        hi = (idx + r + 1).clamp(max=n)
        lo = (idx - r).clamp(min=0)
        out = c.index_select(dim % c.dim(), hi) - c.index_select(dim % c.dim(), lo)
        counts.append((hi - lo).double())
    n_pix = counts[0][:, None] * counts[1][None, :]  # (H, W) pixels inside each window
    return (out / n_pix).to(x.dtype)


def guided_filter(guide: torch.Tensor, src: torch.Tensor, r: int, eps: float) -> torch.Tensor:
    """He et al. (ECCV 2010) guided filter, gray guide: q = mean(a) * I + mean(b).

    guide (B, 1, H, W), src (B, C, H, W) -> (B, C, H, W).
    """
    mean_i = box_filter(guide, r)
    mean_p = box_filter(src, r)
    var_i = box_filter(guide * guide, r) - mean_i * mean_i
    cov_ip = box_filter(guide * src, r) - mean_i * mean_p
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    return box_filter(a, r) * guide + box_filter(b, r)


class DCP(Restorer):
    """Dark channel prior dehazing (He, Sun, Tang 2009/2011) with guided-filter refinement.

    dark(I) = min over a patch of min over channels; A = the input colour at the
    brightest (``airlight="brightest"``, as the paper) or the mean (``"mean"``) of the
    ``top_fraction`` pixels with the highest dark channel; t = 1 - omega * dark(I / A),
    refined by a guided filter (gray guide, ``radius``, ``eps``); J = (I - A) / max(t, t0) + A.

    ``patch`` and ``radius`` are for an image whose short side is ``reference_side``
    (He et al. used 15 and 60 on about 600x400 images); smaller images scale them down
    (patch odd, at least 3), larger ones keep them. A is estimated on a copy downscaled
    so its long side is at most ``airlight_side``, so whole-image and tiled runs agree.
    """

    receptive_radius = None  # A is global

    def __init__(
        self,
        patch: int = 15,
        omega: float = 0.95,
        t0: float = 0.1,
        radius: int = 60,
        eps: float = 1e-3,
        top_fraction: float = 1e-3,
        airlight: str = "brightest",
        reference_side: int = 400,
        airlight_side: int = 512,
    ) -> None:
        super().__init__()
        if airlight not in ("brightest", "mean"):
            raise ValueError(f"airlight must be 'brightest' or 'mean', got {airlight!r}")
        self.patch, self.omega, self.t0 = int(patch), float(omega), float(t0)
        self.radius, self.eps, self.top_fraction = int(radius), float(eps), float(top_fraction)
        self.airlight_mode = airlight
        self.reference_side, self.airlight_side = int(reference_side), int(airlight_side)

    def sizes(self, h: int, w: int) -> tuple[int, int]:
        """(patch, guided-filter radius) for an h x w image."""
        s = min(1.0, min(h, w) / self.reference_side)
        patch = max(3, int(round(self.patch * s)) | 1)  # odd, so the window is centred
        radius = max(1, int(round(self.radius * s)))
        return patch, radius

    @staticmethod
    def dark_channel(x: torch.Tensor, patch: int) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1, H, W); max_pool pads with -inf, so borders use real pixels."""
        m = x.amin(1, keepdim=True)
        return -F.max_pool2d(-m, patch, stride=1, padding=patch // 2)

    def estimate_airlight(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> A (B, 3), on a copy downscaled to ``airlight_side``."""
        h, w = x.shape[-2:]
        if max(h, w) > self.airlight_side:
            s = self.airlight_side / max(h, w)
            size = (max(1, round(h * s)), max(1, round(w * s)))
            x = F.interpolate(x, size=size, mode="area")
            h, w = size
        dark = self.dark_channel(x, self.sizes(h, w)[0]).flatten(1)  # (B, H*W)
        k = max(1, int(math.ceil(self.top_fraction * dark.shape[1])))
        idx = dark.topk(k, dim=1).indices  # (B, k)
        cand = x.flatten(2).gather(2, idx[:, None, :].expand(-1, x.shape[1], -1))  # (B, 3, k)
        if self.airlight_mode == "mean":
            a = cand.mean(2)
        else:
            best = cand.sum(1).argmax(1)  # (B,) brightest candidate
            a = cand.gather(2, best[:, None, None].expand(-1, cand.shape[1], 1))[..., 0]
        return a.clamp(min=1e-3)  # a black image must not divide by zero

    def transmission(self, x: torch.Tensor, airlight: torch.Tensor, patch: int, radius: int) -> torch.Tensor:
        """Refined transmission (B, 1, H, W)."""
        raw = 1.0 - self.omega * self.dark_channel(x / airlight[:, :, None, None], patch)
        gray = (x * x.new_tensor([0.299, 0.587, 0.114])[None, :, None, None]).sum(1, keepdim=True)
        return guided_filter(gray, raw, radius, self.eps)

    def forward(
        self,
        x: torch.Tensor,
        airlight: torch.Tensor | None = None,
        sizes: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        if airlight is None:
            airlight = self.estimate_airlight(x)
        patch, radius = sizes if sizes is not None else self.sizes(*x.shape[-2:])
        t = self.transmission(x, airlight, patch, radius).clamp(min=self.t0)
        a = airlight[:, :, None, None]
        return ((x - a) / t + a).clamp(0.0, 1.0)

    def tiling_context(self, image: torch.Tensor) -> dict[str, Any]:
        """Whole-image quantities every tile must share: A and the full-size radii."""
        return {"airlight": self.estimate_airlight(image), "sizes": self.sizes(*image.shape[-2:])}


class Identity(Restorer):
    """No restoration: D sees the degraded image (the "vanilla" row of the tables)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp(0.0, 1.0)


# --------------------------------------------------------------------------------------
# Registry


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
    config = {k: v for k, v in config.items() if k not in _TRAIN_ONLY_CONFIG.get(name, set())}
    config.update(kwargs)
    try:
        inspect.signature(ctor).bind(**config)
    except TypeError as e:
        raise DataError(f"{path}: config {config} does not fit restorer {name!r} ({e})") from e
    model = ctor(**config)
    _load_state(model, state, name, path)
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
    state, _ = filter_state_dict(read_checkpoint(path), arch, path, remap=_remap_for(model))
    _load_state(model, state, arch, path)
    return model


# --------------------------------------------------------------------------------------
# Checkpoints


_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params")
_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure as a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if m:
            raise DataError(
                f"{path}: checkpoint stores the Python object {m.group(1)}, which only an unsafe "
                "load (weights_only=False, arbitrary code execution) could rebuild; we refuse. "
                "Re-save it as a plain state_dict: torch.save(model.state_dict(), path)"
            ) from e
        tail = msg.split("WeightsUnpickler error:", 1)[-1]
        why = next((line.strip() for line in tail.splitlines() if line.strip()), "no detail")
        raise DataError(f"{path}: not a readable torch checkpoint (corrupt or not torch.save: {why})") from e
    except Exception as e:  # torch raises RuntimeError/EOFError/OSError/... here
        detail = str(e).splitlines()[0] if str(e) else "no detail"
        raise DataError(
            f"{path}: not a readable torch checkpoint (empty, truncated or corrupt: "
            f"{type(e).__name__}: {detail})"
        ) from e


def _remap_for(model: nn.Module) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    fn = getattr(type(model), "remap_state_dict", None)
    return fn if fn is not None else (lambda s: s)


def filter_state_dict(
    obj: Any,
    arch: str,
    path: str | Path,
    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Checkpoint object -> (state_dict with our key names, saved config or {}).

    ``remap`` defaults to the registered class's ``remap_state_dict`` for ``arch``.
    """
    config: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "arch" in obj and "state_dict" in obj:
        if obj["arch"] != arch:
            raise DataError(f"{path}: checkpoint is for architecture {obj['arch']!r}, not {arch!r}")
        config = dict(obj.get("config") or {})
        obj = obj["state_dict"]
    state = _unwrap(obj, path)
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if remap is None:
        remap = RESTORERS[arch].remap_state_dict if arch in RESTORERS else (lambda s: s)
    try:
        state = remap(state)
    except _CheckpointMismatch as e:
        raise DataError(f"{path}: does not fit architecture {arch!r}: {e}") from e
    return state, config


def _unwrap(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    for _ in range(4):  # wrappers nest at most a few levels ({"model": {"state_dict": ...}})
        if not isinstance(obj, Mapping):
            break
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            if tensors:  # a state_dict with a few extra entries (epoch, ...): keep the tensors
                return tensors
            break
        obj = inner
    what = f"keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
    raise DataError(f"{path}: no state_dict of tensors found ({what})")


def _load_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path) -> None:
    expected = model.state_dict()
    state = dict(state)
    for k, v in expected.items():
        # Old checkpoints predate BatchNorm's counter; it does not affect eval outputs.
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape", shapes)):
            if items:
                more = f" ({len(items)} in all)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise DataError(
            f"{path}: does not fit architecture {arch!r}{_guess_arch(state, arch)}; " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


def _guess_arch(state: dict[str, torch.Tensor], arch: str) -> str:
    """' (it looks like a <name> checkpoint)' when the keys fit another registered net."""
    for name, ctor in RESTORERS.items():
        if name == arch:
            continue
        try:
            expected = ctor().state_dict()
            keys = set(ctor.remap_state_dict(dict(state)))
        except Exception:  # a guess only; never hide the real error
            continue
        if expected and {k for k in expected if not k.endswith("num_batches_tracked")} <= keys <= set(
            expected
        ):
            return f" (it looks like a {name!r} checkpoint)"
    return ""


def _check_plain(value: Any, where: str) -> None:
    """Config values must load under weights_only=True: plain Python scalars and containers."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"config key {where}.{k!r} must be a string")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"config value {where} has type {type(value).__name__}; use plain Python values")


def save_checkpoint(model: nn.Module, arch: str, config: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``{"arch", "config", "state_dict"}`` atomically; :func:`load_restorer` reads it."""
    _constructor(arch)
    config = dict(config)
    _check_plain(config, "config")
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    path = Path(path)
    save_torch({"arch": arch, "config": config, "state_dict": state}, path)
    return path


# --------------------------------------------------------------------------------------
# Tiled inference


def _tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    if n <= tile:
        return [0]
    count = math.ceil((n - overlap) / (tile - overlap))
    # Evenly spread: every consecutive pair overlaps by at least `overlap`.
    return [round(i * (n - tile) / (count - 1)) for i in range(count)]


def _edge_weights(
    length: int, left: bool, right: bool, margin: int, ramp: int, like: torch.Tensor
) -> torch.Tensor:
    """1-D blending weights: 0 within ``margin`` of an inner edge, then a linear ramp to 1."""
    d = torch.arange(length, dtype=like.dtype, device=like.device)
    w = torch.ones(length, dtype=like.dtype, device=like.device)
    if left:
        w = torch.minimum(w, ((d + 0.5 - margin) / ramp).clamp(0.0, 1.0))
    if right:
        w = torch.minimum(w, ((length - 1 - d + 0.5 - margin) / ramp).clamp(0.0, 1.0))
    return w


@torch.no_grad()
def restore_tiled(
    model: nn.Module,
    image: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    margin: int | None = None,
) -> torch.Tensor:
    """Run ``model`` on (B, 3, H, W) in overlapping ``tile`` x ``tile`` pieces.

    Inside each overlap a tile's weight is 0 for ``margin`` pixels from its inner edge
    (where zero padding makes its output wrong), then rises linearly to 1; outputs are
    averaged with these weights. If ``margin`` >= the model's receptive radius the result
    equals the whole-image output up to float rounding. Default margin: the model's
    ``receptive_radius`` or overlap // 4, whichever is larger, at most (overlap - 1) // 2.
    A model with ``tiling_context(image)`` (DCP) gets those keyword arguments on every tile.
    """
    if image.dim() != 4:
        raise ValueError(f"restore_tiled expects (B, C, H, W), got shape {tuple(image.shape)}")
    h, w = image.shape[-2:]
    if h <= tile and w <= tile:
        return model(image)
    if not 0 <= overlap < tile:
        raise ValueError(f"overlap must be in [0, tile), got overlap={overlap}, tile={tile}")
    if margin is None:
        radius = getattr(model, "receptive_radius", None)
        margin = max(radius or 0, overlap // 4)
    margin = max(0, min(int(margin), (overlap - 1) // 2))
    ramp = max(1, overlap - 2 * margin)
    ctx = model.tiling_context(image) if hasattr(model, "tiling_context") else {}
    ys, xs = _tile_starts(h, tile, overlap), _tile_starts(w, tile, overlap)
    th, tw = min(tile, h), min(tile, w)
    out = None
    wsum = image.new_zeros(1, 1, h, w)
    for iy, y0 in enumerate(ys):
        wy = _edge_weights(th, iy > 0, iy < len(ys) - 1, margin, ramp, image)
        for ix, x0 in enumerate(xs):
            wx = _edge_weights(tw, ix > 0, ix < len(xs) - 1, margin, ramp, image)
            pred = model(image[..., y0 : y0 + th, x0 : x0 + tw], **ctx)  # (B, 3, th, tw)
            if out is None:
                out = image.new_zeros(image.shape[0], pred.shape[1], h, w)
            wt = (wy[:, None] * wx[None, :])[None, None]  # (1, 1, th, tw)
            out[..., y0 : y0 + th, x0 : x0 + tw] += pred * wt
            wsum[..., y0 : y0 + th, x0 : x0 + tw] += wt
    return out / wsum


# --------------------------------------------------------------------------------------
# Restored images produced elsewhere


FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class FolderRestorer:
    """Restored images computed by any restorer elsewhere, one file per image id.

    A file matches id ``x`` when its path relative to ``folder`` minus the extension is
    ``x`` (ids may contain ``/``); extensions compare case-insensitively and, if one id
    has several files, the first extension in ``extensions`` wins. Hidden files (temporary
    files of an interrupted writer) are ignored. The folder is listed once, on first use.
    """

    def __init__(
        self,
        folder: str | Path,
        extensions: Sequence[str] = FOLDER_EXTENSIONS,
        on_size_mismatch: str = "error",
    ) -> None:
        if on_size_mismatch not in ("error", "resize"):
            raise ValueError(f"on_size_mismatch must be 'error' or 'resize', got {on_size_mismatch!r}")
        self.folder = Path(folder)
        self.extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        self.on_size_mismatch = on_size_mismatch
        self._index: dict[str, Path] | None = None

    def __repr__(self) -> str:
        return f"FolderRestorer({str(self.folder)!r})"

    def index(self) -> dict[str, Path]:
        """id -> file, built on first use."""
        if self._index is None:
            if not self.folder.is_dir():
                raise DataError(f"{self.folder}: folder of restored images not found")
            rank = {e: i for i, e in enumerate(self.extensions)}
            found: dict[str, tuple[int, Path]] = {}
            for root, dirs, files in os.walk(self.folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    ext = os.path.splitext(name)[1].lower()
                    if name.startswith(".") or ext not in rank:
                        continue
                    p = Path(root) / name
                    key = p.relative_to(self.folder).with_suffix("").as_posix()
                    if key not in found or rank[ext] < found[key][0]:
                        found[key] = (rank[ext], p)
            self._index = {k: p for k, (_, p) in found.items()}
        return self._index

    def check(self, image_ids: Iterable[str]) -> list[str]:
        """The ids that have no file, in the order given."""
        index = self.index()
        return [i for i in image_ids if str(i) not in index]

    def require(self, image_ids: Iterable[str]) -> None:
        """Raise one DataError listing how many ids are missing and the first few."""
        missing = self.check(image_ids)
        if missing:
            raise DataError(
                f"{self.folder}: no restored image for {len(missing)} image id(s), e.g. "
                f"{', '.join(map(repr, missing[:5]))} (looked for {', '.join(self.extensions)})"
            )

    def path_for(self, image_id: str) -> Path:
        path = self.index().get(str(image_id))
        if path is None:
            raise DataError(
                f"{self.folder}: no restored image for image id {image_id!r} "
                f"(looked for {', '.join(self.extensions)})"
            )
        return path

    def load(self, image_id: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 (H, W, 3); ``size`` = (width, height) the caller expects, if any."""
        path = self.path_for(image_id)
        image = load_rgb(path)
        if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
            if self.on_size_mismatch == "error":
                raise DataError(
                    f"{path}: restored image is {image.shape[1]}x{image.shape[0]}, but image id "
                    f"{image_id!r} is {size[0]}x{size[1]} (set on_size_mismatch='resize' to resize)"
                )
            import cv2

            image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
        return image


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
    if isinstance(restorer, FolderRestorer):
        return restorer.load(image_id, size=(image.shape[1], image.shape[0]))
    if device is None:
        p = next(restorer.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    x = torch.from_numpy(to_float(image)).permute(2, 0, 1)[None].to(device)  # (1, 3, H, W)
    y = restore_tiled(restorer, x, tile=tile, overlap=overlap)
    return to_uint8(y[0].permute(1, 2, 0).float().cpu().numpy())
