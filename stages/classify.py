"""classify: the paper's Task 2, low-light classification (Fig. 6; Table 4 Task 2), one DVC stage.

``vat classify`` runs the whole pipeline again as a classification task, into
``data/classify/`` and ``reports/classify/``: prepare -> degrade -> train_detector (D a
classifier) -> train_restorer -> restore -> pseudolabel (soft labels) -> train (VaT) ->
each ablation row named in ``classify.rows`` -> evaluate (accuracy, ROC AUC per class,
roc.png). Every sub-stage is the main stage with the main params, except what
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
         reports/classify/metrics.json   the summary: accuracy and mean AUC of each method,
                                         the sub-stages' warnings (vat/eval/weak_links.py)
         (the trainings' resume states in data/classify.resume/ while they run)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer

from stages import _compose
from stages._ui import console, finish, friendly_errors, rich_track, sayer, shout
from vat.config import CommonParams, from_dict, merge, read_yaml
from vat.data.degradations import DegradeParams
from vat.data.sources import PrepareParams
from vat.errors import ParamsError, VatError
from vat.eval.paper import TABLE4
from vat.eval.scoring import EvaluateParams
from vat.eval.summary import write_metrics
from vat.io import atomic_dir, write_json
from vat.labels.rules import PseudolabelParams
from vat.layout import MAIN, Layout
from vat.models.restorers.running import RestoreParams
from vat.models.restorers.training import TrainRestorerParams
from vat.models.training import TrainDetectorParams
from vat.train.config import TrainParams, ablation_row

# The stages run again, in order (stages/_compose.py), and the params class of each section
# that `classify.changes` may rewrite.
RUNS = (
    "prepare",
    "degrade",
    "train_detector",
    "train_restorer",
    "restore",
    "pseudolabel",
    "train",
    "evaluate",
)
SECTIONS = {
    "common": CommonParams,
    "prepare": PrepareParams,
    "degrade": DegradeParams,
    "train_detector": TrainDetectorParams,
    "train_restorer": TrainRestorerParams,
    "restore": RestoreParams,
    "pseudolabel": PseudolabelParams,
    "train": TrainParams,
    "evaluate": EvaluateParams,
}
PSEUDOLABEL_KEYS = ("accuracy_before_filter", "accuracy_after_filter", "kept", "labels")
DEVICE_FREE = ("prepare", "degrade")  # stages that take no --device


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
    loaded["ablate"] = ablations
    return cp, loaded


def task_layout(layout: Layout) -> Layout:
    """Every stage under ``data/classify/`` and ``reports/classify/``."""
    return Layout(layout.out("classify"), layout.report("classify"), resume_root=layout.resume("classify"))


def run(params_file: Path = Path("params.yaml"), layout: Layout = MAIN, *, device: str = "auto",
        track=rich_track) -> dict:  # fmt: skip
    """Run Task 2 end to end; returns the summary written to ``reports/classify/metrics.json``.
    With params ``classify: null`` Task 2 is off: an empty output says so."""
    if read_yaml(params_file).get("classify", {}) is None:
        return _not_run(task_layout(layout), f"{params_file}: classify is null (Task 2 off)")
    cp, p = task_params(params_file)
    common: CommonParams = p["common"]
    cl = task_layout(layout)
    m = {}
    say = sayer("classify")
    try:
        for stage in RUNS[:-1]:
            kw = {"track": track} | ({} if stage in DEVICE_FREE else {"device": device})
            kw |= {"say": say} if stage == "train" else {}
            m[stage] = _compose.run(stage, common, p[stage], cl, **kw)
        for row in cp.rows:
            tp, changes = ablation_row(p["ablate"], row, p["train_dict"], str(params_file))
            moved = cl.ablation(row)
            mr = _compose.run("train", common, tp, moved, device=device, track=track, say=say)
            mr = {"row": row, "changes": changes, "label": TABLE4.get(row)} | mr
            write_metrics("ablate", mr, moved.report("train"))
        result = _compose.run("evaluate", common, p["evaluate"], cl, device=device, track=track)
    except VatError as e:
        raise type(e)(full_keys(str(e), cp.changes)) from e
    scores = ("accuracy", "mean_auc")
    summary = {
        "task": "classify",
        "source": p["prepare"].source,
        "classes": common.classes,
        "degradation": p["degrade"].method,
        "restorer": json.loads(cl.restorer_spec.read_text())["arch"],
        "vision_model": p["train_detector"].model,
        "translator": m["train"]["translator"],
        "images": {s: v["images"] for s, v in m["prepare"]["splits"].items()},
        "split": result["split"],
        "scored_images": result["images"],
        "clean_test_accuracy_of_D": m["train_detector"].get("test_clean_accuracy"),
        "restorer_test": m["restore"].get("test", {}),
        "pseudolabels": {k: m["pseudolabel"].get(k) for k in PSEUDOLABEL_KEYS},
        "selected": m["train"]["selected"],
        "rows": list(cp.rows),
        "methods": {k: {key: v[key] for key in scores} for k, v in result["methods"].items()},
        "warnings": [f"{s}: {w}" for s in RUNS[:-1] for w in m[s].get("warnings") or []],
    }
    write_metrics("classify", summary, cl.reports)
    return summary


def full_keys(message: str, changes: dict[str, dict[str, Any]]) -> str:
    """A sub-stage's message with each key it names that ``classify.changes`` set written in
    full (``prepare.root`` -> ``classify.changes.prepare.root``): that is the key to edit."""

    def full(match: re.Match) -> str:
        section, key = match.group(1), match.group(2)
        return f"classify.changes.{section}.{key}" if key in changes.get(section, {}) else match.group(0)

    return re.sub(rf"(?<![\w.])({'|'.join(SECTIONS)})\.(\w+)", full, message)


def _not_run(cl: Layout, why: str) -> dict:
    """Task 2 off: data/classify/ and reports/classify/metrics.json say so (DVC's outputs exist)."""
    summary = {"task": "classify", "run": False, "why": why}
    with atomic_dir(cl.data) as tmp:
        write_json(summary, tmp / "not_run.json")
    write_metrics("classify", summary, cl.reports)
    return summary


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Task 2: the whole pipeline again as low-light classification (the paper's Fig. 6, Table 4 Task 2)."""
    m = run(params_file, device=device)
    if not m.get("run", True):
        finish(f"classify: not run ({m['why']}) -> {task_layout(MAIN).reports}/metrics.json")
        return
    shout("classify", m)
    for name, v in m["methods"].items():
        auc = "-" if v["mean_auc"] is None else f"{v['mean_auc']:.4f}"
        console.print(f"classify: {name:45s} accuracy {v['accuracy']:.4f}, mean AUC {auc}")
    rep = task_layout(MAIN).report("evaluate")
    finish(f"classify: -> {rep}/ (table.md, roc.png), {task_layout(MAIN).reports}/metrics.json")
