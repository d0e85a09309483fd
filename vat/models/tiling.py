"""Running a network over a large image in overlapping tiles, with linear blending.

Memory is bounded by the tile size. For per-pixel-local nets (AOD-Net, SCI, the
translator up to its receptive field) the result equals the whole-image result (up to float
rounding) when the blending margin covers the receptive radius. DCP is not local
(atmospheric light is a whole-image estimate), so its :meth:`DCP.tiling_context` estimates
A once on a downscaled copy of the whole image and fixes the patch and filter radii from
the full size before tiling.
"""

from __future__ import annotations

import math
from collections.abc import Generator
from typing import TypeVar

import torch
from torch import nn

T = TypeVar("T")
Steps = Generator[None, None, T]  # yields once per tile run, returns the result


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


def tile_count(height: int, width: int, tile: int = 512, overlap: int = 32) -> int:
    """How many times :func:`restore_tiled` runs the model on an image of this size."""
    if height <= tile and width <= tile:
        return 1
    return len(_tile_starts(height, tile, overlap)) * len(_tile_starts(width, tile, overlap))


def drain(steps: Steps[T]) -> T:
    """Run a step generator (``*_steps`` functions) to the end; its result."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def restore_tiled(
    model: nn.Module,
    image: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    margin: int | None = None,
) -> torch.Tensor:
    """Run ``model`` on (B, 3, H, W) in overlapping tiles (:func:`restore_tiled_steps`)."""
    return drain(restore_tiled_steps(model, image, tile, overlap, margin))


@torch.no_grad()
def restore_tiled_steps(
    model: nn.Module,
    image: torch.Tensor,
    tile: int = 512,
    overlap: int = 32,
    margin: int | None = None,
) -> Steps[torch.Tensor]:
    """Run ``model`` on (B, 3, H, W) in overlapping ``tile`` x ``tile`` pieces, yielding after
    each piece (:func:`tile_count` of them) so a caller can show progress; returns the output.

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
        out = model(image)
        yield
        return out
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
            yield
    return out / wsum
