"""Each stage's few headline numbers: ``reports/<stage>/summary.json`` beside its full record.

A stage's ``metrics.json`` is its complete record (per class, per epoch, per row): what the
report and the tests read. ``dvc.yaml`` declares the ``summary.json`` beside it as the DVC
metric instead, so that ``dvc metrics show`` and ``dvc exp show`` print one short row per
stage: DVC's table has one column per distinct key over every declared file.

:data:`RULES` says, per stage, which numbers of the full record are lifted and under which
short name. A name means the same in every stage that uses it (``psnr_restored``, ``vat``,
``steps``), so the columns of all stages together stay few; tests/test_summary.py keeps
them few. A stage writes both files with :func:`write_metrics`.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from pathlib import Path

from vat.io import write_json
from vat.layout import METRICS, SUMMARY


def _scores(method: str) -> tuple[str, ...]:
    """Where a method's headline score is in an evaluate record: mAP@0.5, or accuracy (Task 2)."""
    return tuple(f"methods/{method}/{score}" for score in ("map50", "accuracy"))


# One method per short name: the rows every run scores (vat/eval/scoring.py:methods).
METHODS = {
    "clean": _scores("Clean D(I_HQ)"),
    "vanilla": _scores("Vanilla D(I_LQ)"),
    "baseline": _scores("Baseline D(R(I_LQ))*"),  # ", R=<arch>" (not the study's rows)
    "unpaired": _scores("Unpaired CycleGAN-style D(T_A(I_F))"),
    "vat": _scores("VaT D(T_A(I_F)), val-selected"),
}
TRAIN = {
    "steps": ("steps",),
    "train_seconds": ("train_seconds",),
    "images_per_second": ("images_per_second",),
    "val_score": ("selected/val_map50", "selected/val_accuracy"),  # of the translator kept
}
PSEUDOLABELS = {  # Task 2 has one label per image: its accuracy is the labels' precision
    "precision_before": ("before_filter/precision", "accuracy_before_filter"),
    "precision_after": ("after_filter/precision", "accuracy_after_filter"),
    # how well the uncertainty tells wrong labels: total, or epistemic (all Task 2 has)
    "auroc": ("auroc_correct_vs_wrong/total", "auroc_correct_vs_wrong/epistemic"),
}

# stage -> short name -> where the number is in the stage's metrics.json: paths of keys joined
# by "/", each key a glob (fnmatch); the first path that reaches a number wins.
RULES: dict[str, dict[str, tuple[str, ...]]] = {
    "prepare": {"images": ("images",)},
    "degrade": {"images": ("images",), "psnr_degraded": ("psnr_to_clean_mean",)},  # over every image
    # PSNR to clean on the test split (restore, study too)
    "train_restorer": {"psnr_degraded": ("psnr_degraded",), "psnr_restored": ("psnr_restored",)},
    "restore": {
        "images": ("images",),
        "images_per_second": ("images_per_s",),
        "psnr_restored": ("test/psnr_restored",),
    },
    "train_detector": {"clean": ("test_clean_map50", "test_clean_accuracy")},  # D on the clean test split
    "pseudolabel": PSEUDOLABELS,
    "train": TRAIN,
    "unpaired": TRAIN,
    "ablate": TRAIN,  # train's record plus the row
    "study": {
        "psnr_restored": ("test/psnr_restored",),
        "precision_before": ("pseudolabels/before_filter/precision",),
        "precision_after": ("pseudolabels/after_filter/precision",),
        "val_score": TRAIN["val_score"],
        "steps": ("steps",),
    },
    "evaluate": METHODS,
    "classify": METHODS,
    "real": METHODS,  # per test set: {set: {vanilla, baseline, ...}}
}
PER_SET = ("real",)  # stages whose record is {name: record}: summarised name by name


def summary(stage: str, metrics: dict) -> dict:
    """The headline numbers of ``stage``'s full record ``metrics`` under their short names;
    a number the record lacks (a method not run, a stage not run) is left out."""
    if stage in PER_SET:
        return {k: _lift(RULES[stage], v) for k, v in metrics.items() if isinstance(v, dict)}
    return _lift(RULES[stage], metrics)


def _lift(rule: dict[str, tuple[str, ...]], metrics: dict) -> dict:
    out = {}
    for name, paths in rule.items():
        for path in paths:
            value = _find(metrics, path.split("/"))
            if value is not None:
                out[name] = value
                break
    return out


def _find(obj, keys: list[str]) -> int | float | None:
    """The number at ``keys`` (globs) in ``obj``, the first match where a glob matches several."""
    if not keys:
        return obj if isinstance(obj, int | float) and not isinstance(obj, bool) else None
    if not isinstance(obj, dict):
        return None
    for k, v in obj.items():
        if fnmatchcase(k, keys[0]) and (found := _find(v, keys[1:])) is not None:
            return found
    return None


def write_metrics(stage: str, metrics: dict, folder: Path) -> None:
    """Write ``stage``'s full record to ``folder/metrics.json`` and its summary to
    ``folder/summary.json`` (the folder a stage's reports are built in, or their final place)."""
    write_json(metrics, Path(folder) / METRICS)
    write_json(summary(stage, metrics), Path(folder) / SUMMARY)
