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

from stages._ui import Track, console, friendly_errors, no_track, rich_track, shout
from vat.config import CommonParams, load_common, load_section
from vat.data.manifest import Manifest, write_manifest
from vat.data.sources import PrepareParams, counts, read_source
from vat.eval.weak_links import split_fallback
from vat.inputs import record, section_paths
from vat.io import atomic_dir, save_png, write_json
from vat.layout import MAIN, MANIFEST, Layout

__all__ = ["PrepareParams", "command", "run"]


def run(
    common: CommonParams, params: PrepareParams, layout: Layout = MAIN, *, track: Track = no_track
) -> dict:
    """Build the manifest under ``data/prepare`` (swapped in atomically) and return the metrics."""
    out, reports = layout.out("prepare"), layout.report("prepare")
    with atomic_dir(out) as tmp:
        manifest, extra = read_source(common, params, out, tmp, track)
        write_manifest(manifest, tmp / MANIFEST)
        record(section_paths("prepare", params), tmp, layout.data)  # your dataset's fingerprint
    metrics = {"profile": common.profile, "task": common.task} | counts(manifest) | extra
    metrics["warnings"] = split_fallback(extra.get("read", {}), params.split_ratios)
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    _samples(manifest, reports / "samples.png")
    return metrics


def _samples(manifest: Manifest, path: Path, n: int = 12) -> None:
    from vat.eval.viz import draw_boxes, grid, label_strip
    from vat.io import load_rgb

    recs = manifest.split("train")[:n] or manifest.records[:n]
    tiles = []
    for r in recs:
        image = load_rgb(r.path)
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
    console.print(
        f"prepare: {metrics['images']} images from {params.source} "
        f"(train {s['train']['images']}, val {s['val']['images']}, test {s['test']['images']}) "
        f"-> {MAIN.clean}"
    )
    shout("prepare", metrics)
    read = metrics.get("read", {})
    if read.get("unknown_classes"):
        console.print(f"[yellow]unknown class names (not used):[/yellow] {read['unknown_classes']}")
    if read.get("n_skipped"):
        console.print(
            f"[yellow]skipped {read['n_skipped']} bad items[/yellow] (see {MAIN.metrics('prepare')})"
        )
