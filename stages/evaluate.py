"""evaluate: D's score on the test split for every method, one table (vat/eval/scoring.py).

Rows: D on clean images (the upper bound), Vanilla D(I_LQ), the restorer baseline
D(R(I_LQ)), VaT D(T_A(G(I_R, I_LQ))) with the val-selected translator and with the last
epoch's, the CycleGAN-style unpaired baseline, every ablation row, and for each restorer of
the study its baseline and its VaT. Detection: per-class AP@0.5 and mAP with the
interpolation named in params; classification: accuracy and one-vs-rest ROC AUC per class.
Ground truth is used here and only here.

Reads:   params.yaml [common, evaluate]; data/prepare/, data/degrade/, data/restore/,
         data/train_detector/, data/train_restorer/restorer.json, data/train/ (translator.pt,
         last.pt), data/unpaired/translator.pt, data/ablate/ROW/translator.pt,
         data/study/R/{restore,train}/
Writes:  reports/evaluate/metrics.json   one entry per method: mAP@0.5 (or accuracy), per class
         reports/evaluate/table.md       the same as a Markdown table
         reports/evaluate/grid.png       test images: D's boxes on Vanilla / Baseline / Unpaired / VaT
                                         inputs, and the clean image with its true boxes (detection)
         reports/evaluate/roc.png        ROC curves per class of Vanilla / Baseline / VaT (classification)
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from stages._ui import Track, console, finish, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.eval.scoring import EvaluateParams, evaluate, has_clean_pairs, methods
from vat.layout import MAIN, Layout

__all__ = ["EvaluateParams", "command", "run"]


def run(
    common: CommonParams,
    params: EvaluateParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    track: Track = no_track,
) -> dict:
    """Score every method :func:`vat.eval.scoring.methods` finds in ``layout``; returns the result."""
    spec = layout.restorer_spec
    arch = json.loads(spec.read_text())["arch"] if spec.is_file() else "R"
    pairs = has_clean_pairs(layout, params.split)  # no clean row, PSNR or SSIM without clean pictures
    return evaluate(common, params, methods(arch, layout, clean=pairs), layout, layout.report("evaluate"),
                    device=device, track=track, clean_pairs=pairs)  # fmt: skip


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Score D on the test split for every method: clean, Vanilla, Baseline, VaT, ablations, studies."""
    common = load_common(params_file)
    params = load_section(EvaluateParams, "evaluate", params_file)
    result = run(common, params, device=device, track=rich_track)
    key = "accuracy" if common.task == "classify" else "map50"
    for name, v in result["methods"].items():
        console.print(f"evaluate: {name:45s} {result['metric']} {v[key]:.4f}")
    finish(f"evaluate: {len(result['methods'])} methods on {result['images']} {params.split} images "
           f"-> {MAIN.report('evaluate')}/")  # fmt: skip
