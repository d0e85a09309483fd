"""SCI (Ma et al., CVPR 2022; vis-opt-group/SCI): inference uses the illumination network only,
i = clamp(enhance(y) + y, 1e-4, 1), output clamp(y / i, 0, 1); :class:`SCITrain` adds the
self-calibrated module and the unsupervised loss (fidelity + smoothness) for training.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from vat.models.restorers.base import CheckpointMismatch, Restorer, freeze


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
            raise CheckpointMismatch(f"{k} differs from {target}: blocks are not weight-shared copies")
    return out


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
TRAIN_ONLY_CONFIG = {"sci": {"stage", "calibrate_layers", "calibrate_channels"}}

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
