"""ablate: variants of `train`, one DVC ``foreach`` stage per row (the paper's Table 4, Fig. 8 right).

Each entry of the params section ``ablate`` names a row and the ``train`` params it
changes, e.g. ``no_cycle: {use_cycle: false, use_gate: false, mixup: none}``. ``vat ablate
ROW`` trains that variant exactly as ``vat train`` does (same data, seed, budget, val
selection, resume) with those params replaced, so the rows differ from the full VaT of the
``train`` stage in the listed switches only. ``dvc repro`` runs every row (``dvc.yaml``:
``foreach: ${ablate}``); a row's stage re-runs when its own entry, ``train`` or ``common``
changes. The evaluate stage scores every row on the test split; report fills Table 4 and
the width study from them.

The default rows are Table 4's, top to bottom (the full VaT, the last row, is ``train``):
``no_cycle`` (L_mle only), ``no_mle`` (L_cyc only), ``no_gate`` (L_cyc + L_mle, no gated
fusion, no mixup), ``gate`` (+ gated fusion), ``plain_mixup`` (+ gated fusion + plain mixup);
the translator-width study ``w8`` (``translator: vat-release-w8``) beside ``train``'s vat-release;
and ``online`` (``labels: online``: the released code's online pseudo-labels, vat/labels/online.py).

Reads:   params.yaml [common, train, ablate.ROW]; what `train` reads
Writes:  data/ablate/ROW/translator.pt, last.pt     as data/train/
         reports/ablate/ROW/metrics.json              train's metrics plus ``row`` and ``changes``
         reports/ablate/ROW/live/, samples.png        as reports/train/
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from stages import _compose
from stages._ui import finish, friendly_errors, rich_track, sayer, speed_options
from vat.config import load_common, read_yaml
from vat.eval.paper import TABLE4
from vat.eval.summary import write_metrics
from vat.layout import MAIN, Layout
from vat.train.config import ablation_row
from vat.train.speed import Speed

RUNS = ("train",)  # the stages this one runs again (stages/_compose.py; dvc.yaml deps)


def run(row: str, params_file: Path = Path("params.yaml"), layout: Layout = MAIN, *, speed: Speed = Speed(),
        device: str = "auto", fresh: bool = False, track=rich_track) -> dict:  # fmt: skip
    """Train row ``row``; returns its metrics (train's, plus the row and its changes)."""
    common = load_common(params_file)
    data = read_yaml(params_file)
    params, changes = ablation_row(data.get("ablate"), row, data.get("train"), str(params_file))
    moved = layout.ablation(row)
    m = _compose.run("train", common, params, moved, speed=speed, device=device, fresh=fresh, track=track,
                     say=sayer(f"ablate {row}"))  # fmt: skip
    if "translator" not in m:  # another rank of a distributed run
        return m
    m = {"row": row, "changes": changes, "label": TABLE4.get(row)} | m | {"train_params": asdict(params)}
    write_metrics("ablate", m, moved.report("train"))
    return m


@friendly_errors
@speed_options
def command(
    row: str = typer.Argument(..., help="a row of params `ablate`, e.g. no_cycle"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    fresh: bool = typer.Option(
        False, "--fresh", help="start over: a resumable state in data/ablate.resume/ROW is moved aside (kept)"
    ),
    speed: Speed = Speed(),
) -> None:
    """Train one ablation row: `train` with the params of `ablate.ROW` changed (paper Table 4)."""
    m = run(row, params_file, speed=speed, device=device, fresh=fresh)
    if "translator" not in m:
        return
    changed = ", ".join(f"{k}={v}" for k, v in m["changes"].items()) or "nothing"
    summary = _compose.stage("train").summary(m)
    finish(f"ablate {row} ({changed}): {summary} -> {MAIN.ablation(row).translator()}")
