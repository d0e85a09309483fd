"""pseudolabel: D's pseudo-labels for self-training, with NUQ uncertainty, cached to Parquet.

Because R and D are frozen and the inputs are not augmented, pseudo-labels never change
during training: they are computed here once. The training split is divided into the
images VaT sees degraded and those it sees clean (``pairing``); D runs on I_LQ and R(I_LQ)
(merged by NMS) and on I_HQ; NUQ scores every box and the epsilon rule filters and weighs
them (vat/labels/rules.py). Ground truth is read only to report pseudo-label quality,
never to choose a label.

Reads:   params.yaml [common, pseudolabel]; data/prepare/, data/degrade/, data/restore/,
         data/train_detector/
Writes:  data/pseudolabel/boxes.parquet    one row per box (schema: vat/labels/pseudolabels.py)
         data/pseudolabel/reference.npz    (detection) NUQ's reference set, epsilon and these params:
                                           what `train.labels: online` re-scores D's new boxes with
         data/pseudolabel/images.parquet   the self-training images and their role
         data/pseudolabel/labels.parquet   (task classify) one row per image
         reports/pseudolabel/metrics.json  precision / recall before and after the filter,
                                           AUROC of the uncertainty, counts per source, warnings
                                           (precision near zero, vat/eval/weak_links.py)
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track, shout
from vat.config import CommonParams, load_common, load_section
from vat.data.images import resolve_device
from vat.eval.summary import write_metrics
from vat.eval.weak_links import pseudolabel_precision
from vat.io import atomic_dirs
from vat.labels.rules import PseudolabelParams, classify, detect, sources, write_images
from vat.layout import MAIN, Layout

__all__ = ["PseudolabelParams", "command", "run"]


def run(
    common: CommonParams,
    params: PseudolabelParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    batch: int = 16,
    track: Track = no_track,
) -> dict:
    """Pseudo-labels into ``data/pseudolabel``; returns their quality report."""
    dev = resolve_device(device)
    src = sources(common.task, common.seed, params.pairing, layout.clean, layout.degraded, layout.restored,
                  layout.models)  # fmt: skip
    t0 = time.perf_counter()
    with atomic_dirs(layout.pseudolabels, layout.report("pseudolabel")) as (tmp, rtmp):
        write_images(src, tmp)
        make = classify if common.task == "classify" else detect
        metrics = make(src, params, tmp, dev, batch, track)
        seconds = time.perf_counter() - t0
        metrics["seconds"] = round(seconds, 2)
        # D runs on every degraded image twice (I_LQ, I_R) and on every clean one once.
        metrics["d_images_per_s"] = round(
            (2 * len(src.role["degraded"]) + len(src.role["clean"])) / seconds, 2
        )
        metrics["pairing"] = params.pairing
        metrics["images"] = {d: len(v) for d, v in src.role.items()}
        metrics["warnings"] = pseudolabel_precision(metrics)
        write_metrics("pseudolabel", metrics, rtmp)
    return metrics


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    batch: int = typer.Option(16, help="images per forward pass (speed only)"),
) -> None:
    """Pseudo-labels for self-training: D on I_LQ and R(I_LQ), NUQ uncertainty, the epsilon filter."""
    common = load_common(params_file)
    params = load_section(PseudolabelParams, "pseudolabel", params_file)
    m = run(common, params, device=device, batch=batch, track=rich_track)
    shout("pseudolabel", m)  # before the summary line's early return; printed first
    if common.task == "classify":
        finish(f"pseudolabel: {m['labels']} labels, accuracy {m['accuracy_before_filter']} -> "
                      f"{m['accuracy_after_filter']} after the filter -> {MAIN.pseudolabels}")  # fmt: skip
    else:
        b, a = m["before_filter"], m["after_filter"]
        if "quality" in m:  # no labels on the training images
            counts = f"{b['boxes']} -> {a['boxes']} boxes on degraded images"
            finish(f"pseudolabel: {counts} ({m['quality']}) -> {MAIN.pseudolabels}")
            return
        auroc = m["auroc_correct_vs_wrong"].get("epistemic")
        finish(f"pseudolabel: {b['boxes']} -> {a['boxes']} boxes on degraded images, precision "
                      f"{b['precision']} -> {a['precision']}, recall {b['recall']} -> {a['recall']}, "
                      f"AUROC {auroc} -> {MAIN.pseudolabels}")  # fmt: skip
