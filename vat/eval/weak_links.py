"""Weak links: what makes a run's numbers mean little, said where it happens and in the report.

Each check takes a stage's own metrics and returns warnings (one sentence each, naming the
param that changes it). A stage stores them in its metrics.json under ``warnings`` (the
stage's summary prints them loudly: stages/_ui.py ``shout``); the report gathers every stage's
warnings into one block (:func:`block`). R lowering PSNR can stop the stage instead
(``train_restorer.if_worse: stop``).

- ``prepare``: the dataset defines no split (VOC without ImageSets, ...): split by ratios;
- ``train_restorer``: R's test PSNR below the degraded input's (R makes the images worse);
- ``train_detector``: D's clean test (or val) mAP@0.5 below ``train_detector.min_clean_map50``;
- ``pseudolabel``: the pseudo-labels' precision near zero where labels exist to measure it.
"""

from __future__ import annotations

import json
from pathlib import Path

from vat.errors import DataError

# Pseudo-labels this imprecise teach the translator D's mistakes; only where labels measure it.
PRECISION_FLOOR = 0.05
# Stages whose metrics.json may carry warnings, in pipeline order.
STAGES = ("prepare", "train_restorer", "train_detector", "pseudolabel", "classify")
IF_WORSE = ("warn", "stop")


def split_fallback(read: dict, ratios) -> list[str]:
    """``prepare``: images split by ``prepare.split_ratios`` because the dataset lists none."""
    n = read.get("n_ratio_split", 0)
    if not n:
        return []
    return [
        f"{n} of {read.get('n_images', n)} images have no split in the dataset (no ImageSets / split lists): "
        f"split train/val/test by prepare.split_ratios {list(ratios)}"
    ]


def restorer_worse(scores: dict, arch: str, if_worse: str) -> list[str]:
    """``train_restorer``: R's output further from the clean images than its input (PSNR).
    With ``if_worse: stop`` this raises instead (nothing of the stage is kept)."""
    before, after = scores.get("psnr_degraded"), scores.get("psnr_restored")
    if before is None or after is None or after >= before:
        return []
    text = (
        f"R ({arch}) lowers test PSNR: degraded {before} dB -> restored {after} dB; the Baseline and VaT "
        "sit behind a restorer that makes these images worse (check train_restorer.weights / arch)"
    )
    if if_worse == "stop":
        raise DataError(f"train_restorer: {text}; set train_restorer.if_worse: warn to go on anyway")
    return [text]


def detector_floor(metrics: dict, floor: float | None, key: str = "clean_map50") -> list[str]:
    """``train_detector``: D's clean score ``key`` below ``floor`` (test split, else val)."""
    score = metrics.get(f"test_{key}", metrics.get(f"val_{key}"))
    if floor is None or score is None or score >= floor:
        return []
    return [
        f"D's {key} is {score}, below train_detector.min_clean_score {floor}: D barely "
        "works on clean images, so its pseudo-labels and every score after it mean little "
        "(train longer, or give trained weights in train_detector.weights)"
    ]


def pseudolabel_precision(metrics: dict) -> list[str]:
    """``pseudolabel``: precision near zero, where labels on the training images measure it: of
    the most confident kept boxes, as many as true ones (a low ``conf`` adds a long tail of
    wrong boxes by design; the head is what must be right), else of all kept boxes."""
    after = metrics.get("after_filter", {})
    p = after.get("precision_top", after.get("precision"))
    if p is None or p >= PRECISION_FLOOR:
        return []
    which = "of its most confident kept boxes" if "precision_top" in after else "after the filter"
    return [
        f"pseudo-label precision {p} {which} (below {PRECISION_FLOOR}): nearly every box D "
        "gives the translator is wrong (check D's clean mAP, pseudolabel.conf)"
    ]


def collect(reports: Path) -> dict[str, list[str]]:
    """Every stage's warnings (``reports/<stage>/metrics.json`` ``warnings``), stages in order."""
    out = {}
    for stage in STAGES:
        p = reports / stage / "metrics.json"
        if p.is_file():
            warnings = json.loads(p.read_text()).get("warnings") or []
            if warnings:
                out[stage] = list(warnings)
    return out


def block(reports: Path) -> list[tuple]:
    """The report's block of weak links: a heading and one row per warning, or one line saying none."""
    found = collect(reports)
    out: list[tuple] = [("h", 2, "Weak links")]
    if not found:
        return out + [("p", "No stage reported a weak link (D's clean score, R's PSNR, pseudo-label "
                            "precision, the dataset's split).")]  # fmt: skip
    rows = [[f"`{stage}`", w] for stage, ws in found.items() for w in ws]
    out.append(("p", "Read the numbers below with these in mind (each stage said them when it ran):"))
    out.append(("table", ["stage", "warning"], rows))
    return out
