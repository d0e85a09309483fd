"""degrade: synthesise one degraded copy of every clean image (haze, low light, corruptions).

Reads:   params.yaml [common, degrade]; data/prepare/manifest.parquet and its images
Writes:  data/degrade/images/<split>/<image_id>.png   one degraded image per clean image
         data/degrade/manifest.parquet                the prepare manifest, paths -> degraded
         data/degrade/params.parquet                  each image's drawn parameters
         reports/degrade/metrics.json                 counts, parameter ranges, PSNR to clean
         reports/degrade/samples.png                  clean / degraded pairs
Params:  degrade.method: haze (IA-YOLO's scattering model, the paper's), haze_depth (uses
         the embedded depth map), lowlight (I = J ** gamma), corruption (named
         imagecorruptions / albumentations transforms). Draws are per image from
         (common.seed, image id): the same seed gives byte-identical files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.errors import DataError
from vat.io import atomic_dir, atomic_path, load_npy, load_rgb, save_png, to_float, to_uint8, write_json
from vat.manifest import Manifest, read_manifest, write_manifest
from vat.metrics import psnr
from vat.seeding import item_rng

IN = Path("data/prepare/manifest.parquet")
OUT = Path("data/degrade")
REPORTS = Path("reports/degrade")


@dataclass(frozen=True)
class DegradeParams:
    """``degrade``: how the degraded copies are drawn."""

    method: Literal["haze", "haze_depth", "lowlight", "corruption"]
    betas: tuple[float, ...]  # haze: scattering coefficient levels, one drawn per image (IA-YOLO: 0.05..0.14)
    depth_betas: tuple[float, float]  # haze_depth: beta ~ U(lo, hi), 1/m
    airlight: float  # A in I = J t + A (1 - t), in [0, 1]
    gamma_range: tuple[float, float]  # lowlight: gamma ~ U(lo, hi) (paper: 1.5..5)
    corruptions: tuple[str, ...]  # corruption: "imagecorruptions/fog", "albumentations/RandomRain", ...
    severities: tuple[int, ...]  # corruption: severity levels, one drawn per image (1..5)
    splits: tuple[str, ...]  # which splits to degrade


def config(params: DegradeParams):
    from vat.degradations import DegradeConfig

    try:
        return DegradeConfig(
            method=params.method,
            betas=params.betas,
            depth_betas=params.depth_betas,
            airlight=params.airlight,
            gamma_range=params.gamma_range,
            corruptions=params.corruptions,
            severities=params.severities,
        )
    except ValueError as e:
        from vat.errors import ParamsError

        raise ParamsError(f"degrade: {e}") from e


def run(
    common: CommonParams,
    params: DegradeParams,
    manifest_path: Path = IN,
    out: Path = OUT,
    reports: Path = REPORTS,
    track: Track = no_track,
) -> dict:
    from vat.degradations import apply, draw_params

    cfg = config(params)
    clean = read_manifest(manifest_path)
    records = [r for r in clean.records if r.split in params.splits]
    degraded, rows, psnrs = [], [], []
    with atomic_dir(out) as tmp:
        for r in track(records, "degrade", len(records)):
            p = draw_params(cfg, item_rng(common.seed, "degrade", r.image_id))
            depth = None
            if params.method == "haze_depth":
                if not r.depth_path:
                    raise DataError(f"{r.path}: method haze_depth needs a depth map and this image has none")
                depth = load_npy(r.depth_path).astype(np.float32)
            image = load_rgb(r.path)
            try:
                low = to_uint8(apply(to_float(image), p, depth=depth))
            except DataError as e:
                raise DataError(f"{r.path}: {e}") from e
            rel = Path("images") / r.split / f"{r.image_id}.png"
            save_png(low, tmp / rel)
            degraded.append(replace(r, path=str(out / rel)))
            rows.append({"image_id": r.image_id, "split": r.split, "path": str(out / rel)} | p)
            psnrs.append(psnr(image, low, data_range=255))
        write_manifest(Manifest(degraded, clean.classes), tmp / "manifest.parquet")
        with atomic_path(tmp / "params.parquet") as t:
            pq.write_table(pa.Table.from_pylist(rows), t)
    metrics = _metrics(params, rows, psnrs)
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    _samples(records, degraded, reports / "samples.png")
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


def _samples(clean, degraded, path: Path, n: int = 6) -> None:
    from vat.viz import grid

    tiles = []
    for c, d in list(zip(clean, degraded, strict=True))[:n]:
        tiles += [load_rgb(c.path), load_rgb(d.path)]
    if tiles:
        save_png(grid(tiles, ncols=min(4, len(tiles))), path)


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
) -> None:
    """Write one degraded copy of every clean image, with its drawn parameters.

    Params: common, degrade. Reads data/prepare/manifest.parquet. Writes
    data/degrade/ (images/<split>/, manifest.parquet, params.parquet) and
    reports/degrade/ (metrics.json, samples.png).
    """
    common = load_common(params_file)
    params = load_section(DegradeParams, "degrade", params_file)
    metrics = run(common, params, track=rich_track)
    console.print(
        f"degrade: {metrics['images']} images, method {params.method}, "
        f"mean PSNR to clean {metrics['psnr_to_clean_mean']} dB -> {OUT}"
    )
