"""Apply a trained translator (behind its frozen restorer R) to images of any size.

Inference runs G and T_A only: ``I_HQ = T_A(G(I_R, I_LQ))`` with ``I_R = R(I_LQ)``.
Memory grows with the image area, so images larger than ``tile`` (either side) run in
overlapping tiles that are blended linearly, with exactly the tile layout and blending
weights of :func:`vat.models.tiling.restore_tiled` (it is reused here: the translator is
wrapped as a 6-channel -> 7-channel "restorer" so out, fused and gate are blended together).

Tiled vs whole-image results
----------------------------
For a per-pixel-local restorer, tiling is exact once the blending margin covers the
receptive radius. The translator is not local: every MDTA block (in G and in T) normalises
q and k over all pixels of its input and mixes channels with a C x C attention matrix, a
statistic of the whole tile; the U-net's convolutions also see far (tens of pixels at 1/4
resolution). So a tiled result differs slightly from the whole-image one, mostly near
seams and more for small tiles; with the default 512 px tiles it is the same approximation
as training on crops (the translator is trained on crops, so it never saw whole images
either). An image that fits in one tile runs whole, and then the two agree exactly.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn

from vat.data.images import to_image, to_tensor
from vat.models.restorers import FolderRestorer, restore_image_steps
from vat.models.tiling import Steps, drain, restore_tiled_steps, tile_count

__all__ = [
    "translate_image",
    "translate_image_steps",
    "translate_pairs",
    "translate_tiled",
    "translate_units",
]


class _Packed(nn.Module):
    """(B, 6, H, W) = [I_LQ, I_R] -> (B, 7, H, W) = [T_A(I_F), I_F, w], all float32.

    ``receptive_radius = None`` (not local) makes :func:`restore_tiled` use its default
    margin for non-local models, ``overlap // 4``.
    """

    receptive_radius = None

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        res = self.model.translate(x[:, :3], x[:, 3:])
        return torch.cat([res["out"].float(), res["fused"].float(), res["gate"].float()], dim=1)


def translate_tiled(
    model: nn.Module, i_lq: Tensor, i_r: Tensor, tile: int = 512, overlap: int = 32
) -> dict[str, Tensor]:
    """:func:`translate_tiled_steps` run to the end."""
    return drain(translate_tiled_steps(model, i_lq, i_r, tile, overlap))


@torch.no_grad()
def translate_tiled_steps(
    model: nn.Module, i_lq: Tensor, i_r: Tensor, tile: int = 512, overlap: int = 32
) -> Steps[dict[str, Tensor]]:
    """``{"out": T_A(I_F), "fused": I_F, "gate": w}`` for (B, 3, H, W) inputs in [0, 1],
    yielding once per tile the translator runs on.

    ``out`` and ``fused`` are (B, 3, H, W), ``gate`` (B, 1, H, W), all float32; ``out`` is
    not clamped (T_A's global residual can leave [0, 1] slightly). When H and W are at
    most ``tile`` the model runs once on the whole image (``model.translate``); otherwise
    on overlapping ``tile`` x ``tile`` pieces (at least ``overlap`` px shared, spread evenly)
    blended with :func:`restore_tiled`'s linear weights, so tiled results are close to, not
    equal to, whole-image ones (see the module docstring). Each output is blended on its
    own, so tiled ``out`` is not exactly ``T_A(fused)`` in the seams.
    """
    if i_lq.dim() != 4 or i_lq.shape[1] != 3 or i_lq.shape != i_r.shape:
        raise ValueError(
            f"translate_tiled expects I_LQ and I_R of the same shape (B, 3, H, W), "
            f"got {tuple(i_lq.shape)} and {tuple(i_r.shape)}"
        )
    if tile < 1 or not 0 <= overlap < tile:
        raise ValueError(f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}")
    h, w = i_lq.shape[-2:]
    if h <= tile and w <= tile:
        res = model.translate(i_lq, i_r)
        yield
        return {k: res[k].float() for k in ("out", "fused", "gate")}
    x = torch.cat([i_lq.float(), i_r.float()], dim=1)  # (B, 6, H, W)
    y = yield from restore_tiled_steps(_Packed(model), x, tile=tile, overlap=overlap)  # (B, 7, H, W)
    return {"out": y[:, :3], "fused": y[:, 3:6], "gate": y[:, 6:7]}


def translate_units(restorer, width: int, height: int, tile: int = 512, overlap: int = 32) -> int:
    """How many times :func:`translate_image_steps` yields for an image of this size: one per
    tile R runs on (none for a folder restorer) and one per tile the translator runs on."""
    n = tile_count(height, width, tile, overlap)
    return n if isinstance(restorer, FolderRestorer) else 2 * n


def translate_image(
    model: nn.Module,
    restorer: nn.Module | FolderRestorer,
    low: np.ndarray,
    image_id: str,
    device: torch.device | str | None = None,
    tile: int = 512,
    overlap: int = 32,
) -> dict[str, np.ndarray]:
    """:func:`translate_image_steps` run to the end."""
    return drain(translate_image_steps(model, restorer, low, image_id, device, tile, overlap))


@torch.no_grad()
def translate_image_steps(
    model: nn.Module,
    restorer: nn.Module | FolderRestorer,
    low: np.ndarray,
    image_id: str,
    device: torch.device | str | None = None,
    tile: int = 512,
    overlap: int = 32,
) -> Steps[dict[str, np.ndarray]]:
    """One degraded uint8 (H, W, 3) image -> uint8 arrays of the same size.

    Keys: ``"out"`` (the translated image T_A(I_F), (H, W, 3)), ``"fused"`` (I_F, (H, W, 3)),
    ``"gate"`` (w, (H, W), 255 = all I_LQ, 0 = all I_R) and ``"restored"`` (R's output, (H, W, 3)).
    R runs tiled on ``device`` (a :class:`FolderRestorer` looks ``image_id`` up instead);
    ``device`` defaults to where the translator's parameters are. ``model`` should be in
    eval mode (``load_translator`` returns it so). Yields once per tile R or the translator
    runs on (:func:`translate_units` in all), so a caller can show progress.
    """
    if low.ndim != 3 or low.shape[2] != 3 or low.dtype != np.uint8:
        raise ValueError(f"translate_image expects uint8 (H, W, 3), got {low.dtype} {low.shape}")
    if device is None:
        p = next(model.parameters(), None)
        device = p.device if p is not None else torch.device("cpu")
    restored = yield from restore_image_steps(
        restorer, low, image_id, device=device, tile=tile, overlap=overlap
    )

    i_lq = to_tensor(low)[None].to(device)  # (1, 3, H, W)
    i_r = to_tensor(restored)[None].to(device)
    res = yield from translate_tiled_steps(model, i_lq, i_r, tile=tile, overlap=overlap)
    return {
        "out": to_image(res["out"][0]),
        "fused": to_image(res["fused"][0]),
        "gate": np.ascontiguousarray(to_image(res["gate"][0])[:, :, 0]),  # (H, W)
        "restored": restored,
    }


@torch.no_grad()
def translate_pairs(model, pairs, device, bf16: bool = False, batch: int = 8, load=None):
    """Translate whole images, batching same-size ones: yield (pairs of the batch, results).

    ``pairs``: tuples whose first two items are the degraded and restored :class:`Record` of
    an image (anything may follow); results: ``{"out", "fused", "gate"}`` float32 tensors on
    ``device``, ``out`` and ``fused`` clamped to [0, 1] (what D and a saved image get), and the
    inputs as read, ``"lq"`` and ``"restored"`` (so callers need not decode them again).
    ``load``: how an image file is read (:func:`vat.io.load_rgb`, or a :class:`vat.io.ImageCache`).
    """
    from vat.data.images import same_size_batches
    from vat.io import load_rgb

    load = load or load_rgb
    by_id = {p[0].image_id: p for p in pairs}
    was = model.training
    model.eval()
    try:
        for group in same_size_batches([p[0] for p in pairs], batch):
            ps = [by_id[r.image_id] for r in group]
            lq = torch.stack([to_tensor(load(p[0].path)) for p in ps]).to(device)
            r = torch.stack([to_tensor(load(p[1].path)) for p in ps]).to(device)
            with torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
                res = model.translate(lq, r)
            yield ps, {k: v.float().clamp(0, 1) for k, v in res.items()} | {"lq": lq, "restored": r}
    finally:
        model.train(was)
