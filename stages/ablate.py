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
and the translator-width study ``w8`` (``translator: vat-w8``) beside ``train``'s vat-w4.

Reads:   params.yaml [common, train, ablate.ROW]; what `train` reads
Writes:  data/ablate/ROW/translator.pt, last.pt     as data/train/
         reports/ablate/ROW/metrics.json              train's metrics plus ``row`` and ``changes``
         reports/ablate/ROW/live/, samples.png        as reports/train/
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import typer

from stages._ui import console, friendly_errors, rich_track
from stages.train import Speed, TrainParams
from stages.train import run as train_run
from vat.config import from_dict, load_common, read_yaml
from vat.errors import ParamsError
from vat.io import write_json

OUT = Path("data/ablate")
RESUME = Path("data/ablate.resume")
REPORTS = Path("reports/ablate")

# Table 4's rows by name: what each switches, and its label in the report.
TABLE4 = {
    "no_cycle": "w/o L_cyc (L_mle only)",
    "no_mle": "w/o L_mle (L_cyc only)",
    "no_gate": "L_cyc + L_mle, no gated fusion, no mixup",
    "gate": "+ gated fusion",
    "plain_mixup": "+ gated fusion + plain mixup",
}


def row_params(
    row: str, params_file: Path = Path("params.yaml"), base: dict | None = None
) -> tuple[TrainParams, dict]:
    """The ``train`` params of ``row``: params ``train`` (or ``base``, a train section) with
    ``ablate.ROW`` written over it; and that row's changes."""
    data = read_yaml(params_file)
    rows = data.get("ablate")
    if not isinstance(rows, dict):
        raise ParamsError(f"{params_file}: missing section 'ablate' (a mapping of row name -> train changes)")
    if row not in rows:
        raise ParamsError(f"{params_file}: ablate.{row}: no such row (rows: {', '.join(rows) or 'none'})")
    changes = rows[row] or {}
    if not isinstance(changes, dict):
        raise ParamsError(f"{params_file}: ablate.{row}: expected a mapping of train params, got {changes!r}")
    base = data.get("train") if base is None else base
    if not isinstance(base, dict):
        raise ParamsError(f"{params_file}: missing section 'train'")
    unknown = sorted(set(changes) - set(base))
    if unknown:
        raise ParamsError(
            f"{params_file}: ablate.{row}.{unknown[0]}: not a train param (known: {', '.join(base)})"
        )
    return from_dict(TrainParams, base | changes, f"{params_file}: ablate.{row} over train"), dict(changes)


def run(
    row: str,
    params_file: Path = Path("params.yaml"),
    speed: Speed = Speed(),
    device: str = "auto",
    fresh: bool = False,
    out: Path = OUT,
    resume: Path = RESUME,
    reports: Path = REPORTS,
    **paths,
) -> dict:
    """Train row ``row``; returns its metrics (train's, plus the row and its changes)."""
    common = load_common(params_file)
    params, changes = row_params(row, params_file)
    m = train_run(
        common,
        params,
        speed,
        out=out / row,
        resume_dir=resume / row,
        reports=reports / row,
        device=device,
        fresh=fresh,
        track=rich_track,
        **paths,
    )
    if "translator" not in m:  # another rank of a distributed run
        return m
    m = {"row": row, "changes": changes, "label": TABLE4.get(row)} | m | {"train_params": asdict(params)}
    write_json(m, reports / row / "metrics.json")
    return m


@friendly_errors
def command(
    row: str = typer.Argument(..., help="a row of params `ablate`, e.g. no_cycle"),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    fresh: bool = typer.Option(False, "--fresh", help="ignore a resumable state in data/ablate.resume/ROW"),
) -> None:
    """Train one ablation row: `train` with the params of `ablate.ROW` changed (paper Table 4).

    Params: common, train, ablate.ROW. Reads what `vat train` reads. Writes
    data/ablate/ROW/ (translator.pt, last.pt) and reports/ablate/ROW/ (metrics.json, live/,
    samples.png). `dvc repro` runs every row.
    """
    m = run(row, params_file, device=device, fresh=fresh)
    if "translator" not in m:
        return
    sel = m["selected"]
    changed = ", ".join(f"{k}={v}" for k, v in m["changes"].items()) or "nothing"
    score = f", val mAP@0.5 {sel['val_map50']:.4f}" if "val_map50" in sel else ""
    console.print(
        f"ablate {row} ({changed}): {m['steps']} steps at {m['images_per_second']} img/s; selected epoch "
        f"{sel['epoch']} ({sel['selected']}{score}) -> {OUT / row}/translator.pt"
    )
