"""study: restorer quality against VaT's mAP (the paper's Fig. 8 left), one DVC ``foreach`` stage per R.

For each restorer named in ``study.restorers`` (``identity``, ``dcp``, ``aodnet``, ``sci``,
where they apply to the task), ``vat study R`` runs the part of the pipeline that depends
on R again, behind that R and with everything else as in the main run: train_restorer
(with ``arch: R``, trained on the same pairs where R learns; the main run's
``train_restorer`` params otherwise), restore, pseudolabel (the same D) and train (the same
``train`` params). The evaluate stage then scores, for each R, the baseline D(R(I_LQ)) and
VaT on the test split, and the report plots VaT's mAP against R's PSNR, the main run's R
being one more point. The paper's claim: a better restorer gives a better VaT.

Reads:   params.yaml [common, train_restorer, restore, pseudolabel, train, study];
         data/prepare/, data/degrade/, data/train_detector/
Writes:  data/study/R/{train_restorer,restore,pseudolabel,train}/   as the main stages' data/<stage>/
         (train's resume state in data/study.resume/R/ while it runs)
         reports/study/R/{train_restorer,restore,pseudolabel,train}/ as their reports/<stage>/
         reports/study/R/metrics.json                                 R, its test PSNR / SSIM, VaT's selection
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import typer

from stages import _compose
from stages._ui import finish, friendly_errors, rich_track, sayer
from vat.config import load_common, load_section
from vat.errors import ParamsError
from vat.eval.summary import write_metrics
from vat.labels.rules import PseudolabelParams
from vat.layout import MAIN, Layout
from vat.models.restorers.running import RestoreParams
from vat.models.restorers.training import TrainRestorerParams
from vat.train.config import TrainParams

RUNS = ("train_restorer", "restore", "pseudolabel", "train")  # run again behind each R (stages/_compose.py)
ARCHES = ("identity", "dcp", "aodnet", "sci")


@dataclass(frozen=True)
class StudyParams:
    """``study``: the restorers the pipeline is run behind again (Fig. 8 left)."""

    restorers: list[str]  # each of identity | dcp | aodnet | sci; one DVC stage each

    def __post_init__(self) -> None:
        bad = [r for r in self.restorers if r not in ARCHES]
        if bad:
            raise ValueError(f"study.restorers: {bad[0]!r} is not one of {', '.join(ARCHES)}")
        if len(set(self.restorers)) != len(self.restorers):
            raise ValueError(f"study.restorers: names repeat in {self.restorers}")


def study_layout(layout: Layout, restorer: str) -> Layout:
    """``layout`` with the stages of ``RUNS`` writing under ``data/study/R/`` and ``reports/study/R/``."""
    return layout.within(RUNS, layout.out("study") / restorer, layout.report("study") / restorer,
                         layout.resume("study") / restorer)  # fmt: skip


def run(restorer: str, params_file: Path = Path("params.yaml"), layout: Layout = MAIN, *,
        device: str = "auto", track=rich_track) -> dict:  # fmt: skip
    """Run train_restorer -> restore -> pseudolabel -> train behind ``restorer``; returns the summary."""
    common = load_common(params_file)
    study = load_section(StudyParams, "study", params_file)
    if restorer not in study.restorers:
        raise ParamsError(f"{params_file}: study.restorers has no {restorer!r} (it has {study.restorers})")
    rp = load_section(TrainRestorerParams, "train_restorer", params_file)
    params = {
        "train_restorer": replace(rp, arch=restorer, weights=None, folder=None),
        "restore": load_section(RestoreParams, "restore", params_file),
        "pseudolabel": load_section(PseudolabelParams, "pseudolabel", params_file),
        "train": load_section(TrainParams, "train", params_file),
    }
    moved = study_layout(layout, restorer)  # each stage writes its own folder atomically
    say = {"train": {"say": sayer(f"study {restorer}")}}  # resumed, or a state moved aside
    m = {
        s: _compose.run(s, common, params[s], moved, device=device, track=track, **say.get(s, {}))
        for s in RUNS
    }
    summary = {
        "restorer": restorer,
        "trained": bool(m["train_restorer"].get("trained")),
        "test": m["restore"].get("test", {}),
        "pseudolabels": {k: m["pseudolabel"].get(k) for k in ("before_filter", "after_filter")},
        "translator": m["train"]["translator"],
        "selected": m["train"]["selected"],
        "steps": m["train"]["steps"],
    }
    write_metrics("study", summary, layout.report("study") / restorer)
    return summary


@friendly_errors
def command(
    restorer: str = typer.Argument(
        ..., help="a restorer of params study.restorers: identity, dcp, aodnet, sci"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Run restore, pseudolabel and train again behind another restorer R (the paper's Fig. 8 left)."""
    m = run(restorer, params_file, device=device)
    t = m["test"]
    finish(
        f"study {restorer}: test PSNR {t.get('psnr_degraded')} -> {t.get('psnr_restored')} dB; VaT selected "
        f"epoch {m['selected']['epoch']} -> {study_layout(MAIN, restorer).translator()}"
    )
