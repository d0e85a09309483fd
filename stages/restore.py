"""restore: run the frozen restorer R once over every degraded image and cache its output.

R and D are frozen and the inputs are not augmented, so R's outputs never change: they
are computed here once (lossless PNG) and every later stage reads them, instead of
running R at every training step.

Reads:   params.yaml [common, restore]; data/degrade/ (images, manifest);
         data/train_restorer/restorer.json (+ restorer.pt); data/prepare/ for PSNR
Writes:  data/restore/images/<split>/<image_id>.png   R(I_LQ), same size as the input
         data/restore/manifest.parquet                the degraded manifest, paths -> restored
         reports/restore/metrics.json                 PSNR / SSIM to clean per split, images/s
         reports/restore/samples.png                  degraded / restored pairs
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.datasets import resolve_device, same_size_batches, to_image, to_tensor
from vat.errors import DataError
from vat.io import atomic_dir, load_rgb, save_png, write_json
from vat.manifest import SPLITS, Manifest, read_manifest, write_manifest
from vat.metrics import psnr, ssim

DEGRADED = Path("data/degrade/manifest.parquet")
CLEAN = Path("data/prepare/manifest.parquet")
RESTORER = Path("data/train_restorer/restorer.json")
OUT = Path("data/restore")
REPORTS = Path("reports/restore")


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


def load_spec(path: Path = RESTORER):
    """The restorer that train_restorer chose, built frozen."""
    from vat.models.restorers import build_restorer

    if not path.is_file():
        raise DataError(f"{path}: restorer spec not found (run `vat train_restorer` first)")
    try:
        spec = json.loads(path.read_text())
        return build_restorer(spec["arch"], weights=spec["weights"], folder=spec["folder"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise DataError(f"{path}: not a restorer spec ({e})") from e


def run(
    common: CommonParams,
    params: RestoreParams,
    degraded_path: Path = DEGRADED,
    clean_path: Path = CLEAN,
    spec_path: Path = RESTORER,
    out: Path = OUT,
    reports: Path = REPORTS,
    device: str = "auto",
    batch: int = 8,
    track: Track = no_track,
) -> dict:
    from vat.models.restorers import FolderRestorer

    restorer = load_spec(spec_path)
    dev = resolve_device(device)
    if not isinstance(restorer, FolderRestorer):
        restorer = restorer.to(dev)
    degraded = read_manifest(degraded_path)
    records = [r for r in degraded.records if r.split in params.splits]
    if isinstance(restorer, FolderRestorer):
        restorer.require([r.image_id for r in records])  # every missing id named before any work
    restored = []
    t0 = time.perf_counter()
    with atomic_dir(out) as tmp:
        for group in track(list(same_size_batches(records, batch)), "restore", None):
            images = [load_rgb(r.path) for r in group]
            outs = _restore(restorer, images, group, params, dev)
            for r, im in zip(group, outs, strict=True):
                rel = Path("images") / r.split / f"{r.image_id}.png"
                save_png(im, tmp / rel)
                restored.append(replace(r, path=str(out / rel)))
        write_manifest(Manifest(restored, degraded.classes), tmp / "manifest.parquet")
    seconds = time.perf_counter() - t0
    metrics = {"images": len(restored), "images_per_s": round(len(restored) / max(seconds, 1e-9), 2)}
    metrics |= _quality(degraded, restored, clean_path)
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    tiles = []
    for low, rest in list(zip(records, restored, strict=True))[:6]:
        tiles += [load_rgb(low.path), load_rgb(rest.path)]
    if tiles:
        save_png(_grid(tiles), reports / "samples.png")
    return metrics


def _grid(tiles):
    from vat.viz import grid

    return grid(tiles, ncols=4)


@torch.no_grad()
def _restore(restorer, images, records, params: RestoreParams, dev) -> list[np.ndarray]:
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


def _quality(degraded: Manifest, restored, clean_path: Path) -> dict:
    """PSNR / SSIM of degraded and restored images to clean, per split (where clean exists)."""
    if not clean_path.is_file():
        return {}
    clean = {r.image_id: r for r in read_manifest(clean_path).records}
    low = {r.image_id: r for r in degraded.records}
    result = {}
    for split in SPLITS:
        rows = [r for r in restored if r.split == split and r.image_id in clean]
        if not rows:
            continue
        vals: dict[str, list[float]] = {
            f"{m}_{k}": [] for m in ("psnr", "ssim") for k in ("degraded", "restored")
        }
        for r in rows[:200]:  # a sample bounds the cost on large sets
            c = load_rgb(clean[r.image_id].path)
            for name, path in (("degraded", low[r.image_id].path), ("restored", r.path)):
                im = load_rgb(path)
                vals[f"psnr_{name}"].append(min(psnr(im, c, data_range=255), 100.0))
                vals[f"ssim_{name}"].append(ssim(im, c, data_range=255))
        result[split] = {k: round(float(np.mean(v)), 4) for k, v in vals.items()} | {
            "measured_on": min(len(rows), 200)
        }
    return result


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    batch: int = typer.Option(8, help="same-size images per forward pass (speed only)"),
) -> None:
    """Run the frozen restorer over the degraded images once and cache R(I_LQ) losslessly.

    Params: common, restore. Reads data/degrade/, data/train_restorer/ and (for PSNR)
    data/prepare/. Writes data/restore/ (images/<split>/, manifest.parquet) and
    reports/restore/ (metrics.json, samples.png).
    """
    common = load_common(params_file)
    params = load_section(RestoreParams, "restore", params_file)
    m = run(common, params, device=device, batch=batch, track=rich_track)
    test = m.get("test", {})
    console.print(
        f"restore: {m['images']} images at {m['images_per_s']} img/s; test PSNR "
        f"{test.get('psnr_degraded')} -> {test.get('psnr_restored')} dB -> {OUT}"
    )
