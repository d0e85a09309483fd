"""Running the frozen R over a manifest's degraded images (the ``restore`` stage's library).

R and D are frozen and the inputs are not augmented, so R's outputs never change: the
``restore`` stage computes them once and every later stage reads them, instead of running
R at every training step.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vat.data.manifest import SPLITS, Manifest, read_manifest
from vat.errors import DataError
from vat.io import load_rgb

QUALITY_SAMPLE = 200  # PSNR / SSIM per split on at most this many images (bounds the cost)


@dataclass(frozen=True)
class RestoreParams:
    """``restore``: which images R runs on and how large images are cut."""

    splits: tuple[str, ...]  # splits to restore (train, val, test)
    tile: int  # images larger than this (px, either side) run in overlapping tiles
    overlap: int  # tile overlap, px (>= the restorer's receptive radius for exact seams)

    def __post_init__(self) -> None:
        if unknown := set(self.splits) - set(SPLITS):
            raise ValueError(f"restore.splits: unknown {sorted(unknown)}")
        if self.tile < 32 or not 0 <= self.overlap < self.tile // 2:
            raise ValueError("restore.tile must be >= 32 and 0 <= overlap < tile / 2")


def load_spec(path: Path):
    """The restorer that train_restorer chose (its ``restorer.json``), built frozen."""
    from vat.models.restorers import build_restorer

    if not path.is_file():
        raise DataError(f"{path}: restorer spec not found (run `vat train_restorer` first)")
    try:
        spec = json.loads(path.read_text())
        return build_restorer(spec["arch"], weights=spec["weights"], folder=spec["folder"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a restorer spec ({e})") from e


@torch.no_grad()
def restore_group(restorer, images, records, params: RestoreParams, dev) -> list[np.ndarray]:
    """R(I_LQ) of a group of same-size uint8 images: one batch, or one at a time (tiled) when
    they are larger than a tile or R is a folder."""
    from vat.data.images import to_image, to_tensor
    from vat.models.restorers import FolderRestorer, restore_image

    h, w = images[0].shape[:2]
    if isinstance(restorer, FolderRestorer) or max(h, w) > params.tile or len(images) == 1:
        return [
            restore_image(restorer, im, r.image_id, device=dev, tile=params.tile, overlap=params.overlap)
            for im, r in zip(images, records, strict=True)
        ]
    x = torch.stack([to_tensor(im) for im in images]).to(dev)  # (B, 3, H, W)
    y = restorer(x)
    return [to_image(t) for t in y]


def quality(degraded: Manifest, restored, clean_path: Path) -> dict:
    """PSNR / SSIM of degraded and restored images to clean, per split (where clean exists)."""
    from vat.eval.metrics import psnr, ssim

    if not clean_path.is_file():
        return {}
    clean = {r.image_id: r for r in read_manifest(clean_path).records}
    low = {r.image_id: r for r in degraded.records}
    result = {}
    for split in SPLITS:
        # only where a clean picture exists (photographs given degraded have none)
        rows = [r for r in restored if r.split == split and r.image_id in clean
                and clean[r.image_id].path != low[r.image_id].path]  # fmt: skip
        if not rows:
            continue
        vals: dict[str, list[float]] = {
            f"{m}_{k}": [] for m in ("psnr", "ssim") for k in ("degraded", "restored")
        }
        for r in rows[:QUALITY_SAMPLE]:
            c = load_rgb(clean[r.image_id].path)
            for name, path in (("degraded", low[r.image_id].path), ("restored", r.path)):
                im = load_rgb(path)
                vals[f"psnr_{name}"].append(min(psnr(im, c, data_range=255), 100.0))
                vals[f"ssim_{name}"].append(ssim(im, c, data_range=255))
        result[split] = {k: round(float(np.mean(v)), 4) for k, v in vals.items()} | {
            "measured_on": min(len(rows), QUALITY_SAMPLE)
        }
    return result
