"""prepare: read a clean labelled dataset into one manifest.

Reads:   params.yaml [common, prepare]; for non-embedded sources the folder prepare.root
Writes:  data/prepare/manifest.parquet   the manifest (schema in vat/data/manifest.py)
         data/prepare/inputs.json        the fingerprint of the dataset read (stages/inputs.py)
         data/prepare/images/            embedded images, and converted copies of inputs
                                         that were not plain 8-bit upright RGB
         data/prepare/depth/             per-pixel depth (.npy, metres; embedded only)
         reports/prepare/metrics.json    counts per split and class, unknown / ignored names,
                                         warnings (no split in the dataset: split by ratios)
         reports/prepare/samples.png     a grid of training images with their boxes
Params:  prepare.source picks the reader: ``embedded`` generates road scenes from
         common.seed (no download); voc | yolo | coco | exdark | cifar10 read a folder
         (vat/data/sources.py, vat/data/readers/).
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages._ui import Track, console, finish, friendly_errors, no_track, rich_track, shout
from vat.config import CommonParams, load_common, load_section
from vat.data.manifest import Manifest, write_manifest
from vat.data.readers.common import notes
from vat.data.sources import PrepareParams, counts, read_source
from vat.eval.summary import write_metrics
from vat.eval.weak_links import split_fallback
from vat.inputs import record, section_paths
from vat.io import atomic_dirs, rebase, save_png
from vat.layout import MAIN, MANIFEST, Layout

__all__ = ["PrepareParams", "command", "run"]


def run(
    common: CommonParams, params: PrepareParams, layout: Layout = MAIN, *, track: Track = no_track
) -> dict:
    """Build the manifest under ``data/prepare`` and the reports, swapped in together; returns
    the metrics."""
    out, reports = layout.out("prepare"), layout.report("prepare")
    with atomic_dirs(out, reports) as (tmp, rtmp):
        manifest, extra = read_source(common, params, out, tmp, track)
        write_manifest(manifest, tmp / MANIFEST)
        record(section_paths("prepare", params), tmp, layout.data)  # your dataset's fingerprint
        metrics = {"profile": common.profile, "task": common.task} | counts(manifest) | extra
        metrics["warnings"] = split_fallback(extra.get("read", {}), params.split_ratios)
        write_metrics("prepare", metrics, rtmp)
        _samples(manifest, tmp, out, rtmp / "samples.png")
    return metrics


def _samples(manifest: Manifest, tmp: Path, out: Path, path: Path, n: int = 12) -> None:
    """A grid of the first images with their boxes; images under ``out`` are read from ``tmp``
    (not swapped in yet)."""
    from vat.eval.viz import draw_boxes, grid, label_strip
    from vat.io import load_rgb

    recs = manifest.split("train")[:n] or manifest.records[:n]
    tiles = []
    for r in recs:
        image = load_rgb(rebase(r.path, out, tmp))
        if r.label >= 0:
            tiles.append(label_strip(image, manifest.classes[r.label]))
        else:
            tiles.append(draw_boxes(image, r.boxes, manifest.classes))
    if tiles:
        save_png(grid(tiles, ncols=min(4, len(tiles))), path)


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
) -> None:
    """Read a clean labelled dataset into data/prepare/manifest.parquet."""
    common = load_common(params_file)
    params = load_section(PrepareParams, "prepare", params_file)
    metrics = run(common, params, track=rich_track)
    s = metrics["splits"]
    finish(
        f"prepare: {metrics['images']} images from {params.source} "
        f"(train {s['train']['images']}, val {s['val']['images']}, test {s['test']['images']}) "
        f"-> {MAIN.clean}"
    )
    shout("prepare", metrics)
    read = metrics.get("read", {})
    for line in notes([read] if "n_images" in read else list(read.values())):  # source folder: per part
        console.print(f"[yellow]note:[/yellow] {line} (all: {MAIN.metrics('prepare')})", highlight=False)
