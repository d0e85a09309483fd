"""train_detector: the frozen vision model D that VaT will serve.

VaT never trains D; this stage only exists so the embedded default has one. For the
detection tasks it trains a small YOLO from its yaml on the CLEAN train split through
ultralytics' own trainer (offline), selects the epoch on the val split and stores it in our
weights-only format. For task ``classify`` it trains a small CNN on the clean crops, or
wraps an open_clip model (``clip:<model name>`` with a local weights file). With
``train_detector.weights`` it trains nothing and only converts and checks that file
(vat/models/training.py).

Reads:   params.yaml [common, train_detector]; data/prepare/ (clean images and labels)
Writes:  data/train_detector/detector.pt         (detection) D in our weights-only format
         data/train_detector/classifier.pt       (classify) small CNN, or a CLIP spec
         data/train_detector/inputs.json         the fingerprint of your weights (stages/inputs.py)
         reports/train_detector/metrics.json     clean val and test mAP@0.5 (or accuracy), warnings
                                                 (clean score below min_clean_score)
         reports/train_detector/details.json     per-epoch history, per-class AP (not a DVC metric)
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track, shout
from vat.config import CommonParams, load_common, load_section
from vat.data.images import resolve_device
from vat.data.manifest import read_manifest
from vat.eval.summary import write_metrics
from vat.eval.weak_links import detector_floor
from vat.inputs import record, section_paths
from vat.io import atomic_dirs, final_names, write_json
from vat.layout import MAIN, Layout
from vat.models.training import TrainDetectorParams, fit_classifier, fit_detector

__all__ = ["TrainDetectorParams", "command", "run"]


def run(
    common: CommonParams,
    params: TrainDetectorParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    track: Track = no_track,
) -> dict:
    """Train (or take) D into ``data/train_detector``; returns its clean scores."""
    clean = read_manifest(layout.clean)
    dev = resolve_device(device)
    fit = fit_classifier if common.task == "classify" else fit_detector
    out = layout.out("train_detector")
    with atomic_dirs(out, layout.report("train_detector")) as (tmp, rtmp):
        metrics = final_names(fit(common, params, clean, tmp, dev, track), tmp, out)
        record(section_paths("train_detector", params), tmp, layout.data)  # your weights' fingerprint
        key = "clean_accuracy" if common.task == "classify" else "clean_map50"
        metrics["warnings"] = detector_floor(metrics, params.min_clean_score, key)
        # The declared metrics file keeps the headline numbers (`dvc metrics show` stays narrow);
        # the per-epoch history and the per-class APs go beside it.
        details = {
            k: metrics.pop(k) for k in ("history", "val_clean_ap50", "test_clean_ap50") if k in metrics
        }
        write_metrics("train_detector", metrics, rtmp)
        write_json(details, rtmp / "details.json")
    return metrics | details


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train (or take) the frozen vision model D on clean images: a YOLO, a small CNN, or CLIP."""
    common = load_common(params_file)
    params = load_section(TrainDetectorParams, "train_detector", params_file)
    m = run(common, params, device=device, track=rich_track)
    key = "clean_accuracy" if common.task == "classify" else "clean_map50"
    finish(
        f"train_detector: {params.model} ({'trained' if m['trained'] else 'as given'}), "
        f"val {key} {m.get('val_' + key)}, test {m.get('test_' + key)} -> {MAIN.models}"
    )
    shout("train_detector", m)
