"""classify: the paper's Task 2, low-light classification (Fig. 6; Table 4 Task 2), one DVC stage.

``vat classify`` runs the whole pipeline again as a classification task, into
``data/classify/`` and ``reports/classify/``: prepare -> degrade -> train_detector (D a
classifier) -> train_restorer -> restore -> pseudolabel (soft labels) -> train (VaT) ->
each ablation row named in ``classify.rows`` -> evaluate (accuracy, ROC AUC per class,
roc.png). Every sub-stage is the main stage's own ``run`` with the main params, except what
``classify.changes`` rewrites, section by section (e.g. ``common: {task: classify}``,
``degrade: {method: lowlight}``, ``train_restorer: {arch: sci}``, ``train_detector:
{model: small_cnn}``). So the default profile scores VaT on object crops of its own scenes
darkened by gamma, behind SCI, with a small CNN as D; the paper profile points it at CIFAR-10
with CLIP as D.

Reads:   params.yaml [common, prepare, degrade, train_restorer, restore, train_detector,
         pseudolabel, train, ablate, evaluate, classify]; the dataset ``prepare`` reads
         (nothing for the embedded default)
Writes:  data/classify/<stage>/       each sub-stage's data/<stage>/ (ablate: ablate/ROW/)
         reports/classify/<stage>/    each sub-stage's reports/<stage>/ (evaluate: metrics.json,
                                      table.md, roc.png)
         reports/classify/metrics.json   the summary: accuracy and mean AUC of each method
         (train's resume state in data/classify.resume/ while it runs)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from stages import (
    ablate,
    degrade,
    evaluate,
    prepare,
    pseudolabel,
    restore,
    train,
    train_detector,
    train_restorer,
)
from stages._ui import console, friendly_errors, rich_track
from vat.config import CommonParams, from_dict, merge, read_yaml
from vat.errors import ParamsError
from vat.io import write_json

OUT = Path("data/classify")
RESUME = Path("data/classify.resume")
REPORTS = Path("reports/classify")
PSEUDOLABEL_KEYS = ("accuracy_before_filter", "accuracy_after_filter", "kept", "labels")
SECTIONS = {  # the sections `classify.changes` may rewrite, and their params classes
    "common": CommonParams,
    "prepare": prepare.PrepareParams,
    "degrade": degrade.DegradeParams,
    "train_detector": train_detector.TrainDetectorParams,
    "train_restorer": train_restorer.TrainRestorerParams,
    "restore": restore.RestoreParams,
    "pseudolabel": pseudolabel.PseudolabelParams,
    "train": train.TrainParams,
    "evaluate": evaluate.EvaluateParams,
}


@dataclass(frozen=True)
class ClassifyParams:
    """``classify``: how Task 2's run differs from the main one, and which ablation rows it trains."""

    changes: dict[str, dict[str, Any]] = field(default_factory=dict)  # section -> keys written over it
    rows: list[str] = field(default_factory=list)  # rows of params `ablate` trained for Task 2 too

    def __post_init__(self) -> None:
        bad = sorted(set(self.changes) - set(SECTIONS))
        if bad:
            raise ValueError(f"changes.{bad[0]}: not a pipeline section (known: {', '.join(SECTIONS)})")
        if self.changes.get("common", {}).get("task") != "classify":
            raise ValueError("changes.common.task must be classify (this stage runs Task 2)")
        if len(set(self.rows)) != len(self.rows):
            raise ValueError(f"rows: names repeat in {self.rows}")


def task_params(params_file: Path = Path("params.yaml")) -> tuple[ClassifyParams, dict[str, Any]]:
    """``classify`` and every pipeline section with ``classify.changes`` written over it, loaded
    (a ParamsError names the key of a bad change)."""
    data = read_yaml(params_file)
    if "classify" not in data:
        raise ParamsError(f"{params_file}: missing section 'classify'")
    cp = from_dict(ClassifyParams, data["classify"], f"{params_file}: classify")
    loaded: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        if name not in data:
            raise ParamsError(f"{params_file}: missing section {name!r}")
        changes = cp.changes.get(name, {})
        where, unknown = f"{params_file}: classify.changes.", f"not a key of params {name}"
        section = merge(data[name], changes, where, (name,), unknown) if changes else data[name]
        loaded[name] = from_dict(cls, section, f"{params_file}: {name} with classify.changes.{name}")
        if name == "train":
            loaded["train_dict"] = section
    ablations = data.get("ablate") or {}
    missing = [r for r in cp.rows if r not in ablations]
    if missing:
        raise ParamsError(
            f"{params_file}: classify.rows: {missing[0]!r} is not a row of ablate ({', '.join(ablations)})"
        )
    return cp, loaded


def run(params_file: Path = Path("params.yaml"), device: str = "auto", out: Path = OUT, resume: Path = RESUME,
        reports: Path = REPORTS) -> dict:  # fmt: skip
    """Run Task 2 end to end; returns the summary written to ``reports/metrics.json``."""
    cp, p = task_params(params_file)
    common: CommonParams = p["common"]
    clean, deg, rest = (out / f"{s}/manifest.parquet" for s in ("prepare", "degrade", "restore"))
    models, spec = out / "train_detector", out / "train_restorer/restorer.json"

    def at(stage: str) -> dict[str, Path]:
        return {"out": out / stage, "reports": reports / stage}

    run_kw = {"device": device, "track": rich_track}
    m_prep = prepare.run(common, p["prepare"], **at("prepare"), track=rich_track)
    degrade.run(common, p["degrade"], manifest_path=clean, **at("degrade"), track=rich_track)
    m_d = train_detector.run(common, p["train_detector"], clean_path=clean, **at("train_detector"), **run_kw)
    train_restorer.run(common, p["train_restorer"], clean, deg, **at("train_restorer"), **run_kw)
    m_r = restore.run(common, p["restore"], deg, clean, spec_path=spec, **at("restore"), **run_kw)
    m_pl = pseudolabel.run(common, p["pseudolabel"], clean, deg, rest, models, **at("pseudolabel"), **run_kw)
    paths = {"pseudolabels": out / "pseudolabel", "clean_path": clean, "degraded_path": deg,
             "restored_path": rest, "models": models, "restorer_spec": spec} | run_kw  # fmt: skip
    m_tr = train.run(common, p["train"], **at("train"), resume_dir=resume / "train", **paths)
    for row in cp.rows:
        tp, changes = ablate.row_params(row, params_file, base=p["train_dict"])
        m = train.run(common, tp, **at(f"ablate/{row}"), resume_dir=resume / "ablate" / row, **paths)
        row_info = {"row": row, "changes": changes, "label": ablate.TABLE4.get(row)}
        write_json(row_info | m, reports / "ablate" / row / "metrics.json")
    arch = json.loads(spec.read_text())["arch"]
    inputs = evaluate.methods(arch, translators=out / "train", unpaired=out / "unpaired",
                              ablations=out / "ablate", study=out / "study", clean=clean, degraded=deg,
                              restored=rest)  # fmt: skip
    result = evaluate.run(common, p["evaluate"], inputs=inputs, truth_path=clean, models=models,
                          reports=reports / "evaluate", degraded_path=deg, **run_kw)  # fmt: skip
    scores = ("accuracy", "mean_auc")
    summary = {
        "task": "classify",
        "source": p["prepare"].source,
        "classes": common.classes,
        "degradation": p["degrade"].method,
        "restorer": arch,
        "vision_model": p["train_detector"].model,
        "translator": m_tr["translator"],
        "images": {s: v["images"] for s, v in m_prep["splits"].items()},
        "split": result["split"],
        "scored_images": result["images"],
        "clean_test_accuracy_of_D": m_d.get("test_clean_accuracy"),
        "restorer_test": m_r.get("test", {}),
        "pseudolabels": {k: m_pl.get(k) for k in PSEUDOLABEL_KEYS},
        "selected": m_tr["selected"],
        "rows": list(cp.rows),
        "methods": {k: {key: v[key] for key in scores} for k, v in result["methods"].items()},
    }
    write_json(summary, reports / "metrics.json")
    return summary


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Task 2: the whole pipeline again as low-light classification (the paper's Fig. 6, Table 4 Task 2).

    Params: every pipeline section, rewritten by classify.changes; classify.rows. Writes
    data/classify/<stage>/ and reports/classify/<stage>/ (evaluate: accuracy, AUC, roc.png),
    and reports/classify/metrics.json.
    """
    m = run(params_file, device=device)
    for name, v in m["methods"].items():
        auc = "-" if v["mean_auc"] is None else f"{v['mean_auc']:.4f}"
        console.print(f"classify: {name:45s} accuracy {v['accuracy']:.4f}, mean AUC {auc}")
    console.print(f"classify: -> {REPORTS}/evaluate/ (table.md, roc.png), {REPORTS}/metrics.json")
