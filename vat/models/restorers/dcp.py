"""Dark channel prior (He, Sun, Tang, CVPR 2009 / TPAMI 2011), the transmission refined by the
guided filter (He, Sun, Tang, ECCV 2010) instead of soft matting; and the identity restorer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F

from vat.models.restorers.base import Restorer


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

    # Nine arguments: DCP's published constants, each with its default from the papers.
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
