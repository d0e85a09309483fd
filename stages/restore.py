"""restore: run the frozen restorer R once over every degraded image and cache its output.

R and D are frozen and the inputs are not augmented, so R's outputs never change: they
are computed here once (lossless PNG) and every later stage reads them, instead of running
R at every training step (vat/models/restorers/running.py).

Reads:   params.yaml [common, restore]; data/degrade/ (images, manifest);
         data/train_restorer/restorer.json (+ restorer.pt); data/prepare/ for PSNR
Writes:  data/restore/images/<split>/<image_id>.png   R(I_LQ), same size as the input
         data/restore/manifest.parquet                the degraded manifest, paths -> restored
         reports/restore/metrics.json                 PSNR / SSIM to clean per split, images/s
         reports/restore/samples.png                  degraded / restored pairs
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.data.images import resolve_device, same_size_batches
from vat.data.manifest import Manifest, read_manifest, write_manifest
from vat.eval.summary import write_metrics
from vat.io import atomic_dirs, load_rgb, rebase, save_png
from vat.layout import MAIN, MANIFEST, Layout
from vat.models.restorers.running import RestoreParams, load_spec, quality, restore_group

__all__ = ["RestoreParams", "command", "run"]


def run(
    common: CommonParams,
    params: RestoreParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    batch: int = 8,
    track: Track = no_track,
    clean_pairs: bool = True,
) -> dict:
    """R over the degraded images of ``params.splits`` into ``data/restore``; returns the metrics.
    ``clean_pairs=False``: no clean pictures to score against (a real test set)."""
    from vat.eval.viz import grid, label_strip
    from vat.models.restorers import FolderRestorer

    out, reports = layout.out("restore"), layout.report("restore")
    restorer = load_spec(layout.restorer_spec)
    dev = resolve_device(device)
    if not isinstance(restorer, FolderRestorer):
        restorer = restorer.to(dev)
    degraded = read_manifest(layout.degraded)
    records = [r for r in degraded.records if r.split in params.splits]
    if isinstance(restorer, FolderRestorer):
        restorer.require([r.image_id for r in records])  # every missing id named before any work
    restored = []
    t0 = time.perf_counter()
    with atomic_dirs(out, reports) as (tmp, rtmp):
        for group in track(list(same_size_batches(records, batch)), "restore", None):
            outs = restore_group(restorer, [load_rgb(r.path) for r in group], group, params, dev)
            for r, im in zip(group, outs, strict=True):
                rel = Path("images") / r.split / f"{r.image_id}.png"
                save_png(im, tmp / rel)
                restored.append(replace(r, path=str(out / rel)))
        write_manifest(Manifest(restored, degraded.classes), tmp / MANIFEST)
        seconds = time.perf_counter() - t0
        metrics = {"images": len(restored), "images_per_s": round(len(restored) / max(seconds, 1e-9), 2)}
        if clean_pairs:
            here = [replace(r, path=str(rebase(r.path, out, tmp))) for r in restored]
            metrics |= quality(degraded, here, layout.clean)
        write_metrics("restore", metrics, rtmp)
        tiles = []
        for low, rest in list(zip(records, restored, strict=True))[:6]:
            here = rebase(rest.path, out, tmp)  # the restored image before the folder is swapped in
            tiles += [label_strip(load_rgb(low.path), f"degraded {low.image_id}"),
                      label_strip(load_rgb(here), f"restored {rest.image_id}")]  # fmt: skip
        if tiles:
            save_png(grid(tiles, ncols=4), rtmp / "samples.png")
    return metrics


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    batch: int = typer.Option(8, help="same-size images per forward pass (speed only)"),
) -> None:
    """Run the frozen restorer over the degraded images once and cache R(I_LQ) losslessly."""
    common = load_common(params_file)
    params = load_section(RestoreParams, "restore", params_file)
    m = run(common, params, device=device, batch=batch, track=rich_track)
    test = m.get("test", {})
    finish(
        f"restore: {m['images']} images at {m['images_per_s']} img/s; test PSNR "
        f"{test.get('psnr_degraded')} -> {test.get('psnr_restored')} dB -> {MAIN.out('restore')}"
    )
