"""degrade: synthesise one degraded copy of every clean image (haze, low light, corruptions).

Reads:   params.yaml [common, degrade]; data/prepare/manifest.parquet and its images
Writes:  data/degrade/images/<split>/<image_id>.png   one degraded image per clean image
         data/degrade/manifest.parquet                the prepare manifest, paths -> degraded
         data/degrade/params.parquet                  each image's drawn parameters
         reports/degrade/metrics.json                 counts, parameter ranges, PSNR to clean
         reports/degrade/samples.png                  clean / degraded pairs
Params:  degrade.method: haze (IA-YOLO's scattering model, the paper's), haze_depth (uses
         the embedded depth map), lowlight (I = J ** gamma), corruption (named
         imagecorruptions / albumentations transforms); vat/data/degradations.py. Draws are
         per image from (common.seed, image id): the same seed gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.data.degradations import DegradeParams, degrade_record
from vat.data.manifest import Manifest, read_manifest, write_manifest
from vat.errors import ParamsError
from vat.eval.metrics import psnr
from vat.eval.summary import write_metrics
from vat.io import atomic_dirs, atomic_path, load_rgb, rebase, save_png
from vat.layout import MAIN, MANIFEST, Layout

__all__ = ["DegradeParams", "command", "run"]


def run(
    common: CommonParams, params: DegradeParams, layout: Layout = MAIN, *, track: Track = no_track
) -> dict:
    """Degrade the clean images of ``params.splits`` into ``data/degrade``; returns the metrics."""
    out, reports = layout.out("degrade"), layout.report("degrade")
    clean = read_manifest(layout.clean)
    # images given as clean training photographs are never degraded; given degraded ones are
    # degraded already (method none keeps them as they are, where they are)
    records = [r for r in clean.records if r.split in params.splits and r.domain != "clean"]
    if params.method != "none" and any(r.domain == "degraded" for r in records):
        raise ParamsError(f"{layout.clean}: the photographs are degraded already; set degrade.method: none")
    degraded, rows, psnrs = [], [], []
    with atomic_dirs(out, reports) as (tmp, rtmp):
        for r in track(records, "degrade", len(records)):
            if params.method == "none":
                degraded.append(r)
                rows.append({"image_id": r.image_id, "split": r.split, "path": r.path, "method": "none"})
                continue
            image, low, p = degrade_record(params, r, common.seed)
            rel = Path("images") / r.split / f"{r.image_id}.png"
            save_png(low, tmp / rel)
            degraded.append(replace(r, path=str(out / rel)))
            rows.append({"image_id": r.image_id, "split": r.split, "path": str(out / rel)} | p)
            psnrs.append(psnr(image, low, data_range=255))
        write_manifest(Manifest(degraded, clean.classes), tmp / MANIFEST)
        with atomic_path(tmp / "params.parquet") as t:
            pq.write_table(pa.Table.from_pylist(rows), t)
        metrics = _metrics(params, rows, psnrs)
        write_metrics("degrade", metrics, rtmp)
        _samples(records, [rebase(d.path, out, tmp) for d in degraded], rtmp / "samples.png")
    return metrics


def _metrics(params: DegradeParams, rows: list[dict], psnrs: list[float]) -> dict:
    finite = [p for p in psnrs if np.isfinite(p)]
    out = {
        "method": params.method,
        "images": len(rows),
        "per_split": {s: sum(r["split"] == s for r in rows) for s in params.splits},
        "psnr_to_clean_mean": round(float(np.mean(finite)), 3) if finite else None,
    }
    for key in ("beta", "gamma", "severity"):
        vals = [r[key] for r in rows if r.get(key) is not None]
        if vals:
            out[f"{key}_min"] = round(float(min(vals)), 4)
            out[f"{key}_max"] = round(float(max(vals)), 4)
    return out


def _samples(clean, degraded: list[Path], path: Path, n: int = 6) -> None:
    from vat.eval.viz import grid

    tiles = []
    for c, d in list(zip(clean, degraded, strict=True))[:n]:
        tiles += [load_rgb(c.path), load_rgb(d)]
    if tiles:
        save_png(grid(tiles, ncols=min(4, len(tiles))), path)


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
) -> None:
    """Write one degraded copy of every clean image, with its drawn parameters."""
    common = load_common(params_file)
    params = load_section(DegradeParams, "degrade", params_file)
    metrics = run(common, params, track=rich_track)
    finish(
        f"degrade: {metrics['images']} images, method {params.method}, "
        f"mean PSNR to clean {metrics['psnr_to_clean_mean']} dB -> {MAIN.out('degrade')}"
    )
