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
         (train's resume state in data/study.resume/R while it runs)
         reports/study/R/{train_restorer,restore,pseudolabel,train}/ as their reports/<stage>/
         reports/study/R/metrics.json                                 R, its test PSNR / SSIM, VaT's selection
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import typer

from stages import pseudolabel, restore, train, train_restorer
from stages._ui import console, friendly_errors, rich_track
from vat.config import load_common, load_section
from vat.errors import ParamsError
from vat.io import write_json

OUT = Path("data/study")
REPORTS = Path("reports/study")
CLEAN = Path("data/prepare/manifest.parquet")
DEGRADED = Path("data/degrade/manifest.parquet")
MODELS = Path("data/train_detector")
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


def run(restorer: str, params_file: Path = Path("params.yaml"), device: str = "auto", out: Path = OUT,
        reports: Path = REPORTS, clean_path: Path = CLEAN, degraded_path: Path = DEGRADED,
        models: Path = MODELS) -> dict:  # fmt: skip
    """Run train_restorer -> restore -> pseudolabel -> train behind ``restorer``; returns the summary."""
    common = load_common(params_file)
    study = load_section(StudyParams, "study", params_file)
    if restorer not in study.restorers:
        raise ParamsError(f"{params_file}: study.restorers has no {restorer!r} (it has {study.restorers})")
    rp = load_section(train_restorer.TrainRestorerParams, "train_restorer", params_file)
    rp = replace(rp, arch=restorer, weights=None, folder=None)
    rest = load_section(restore.RestoreParams, "restore", params_file)
    pl = load_section(pseudolabel.PseudolabelParams, "pseudolabel", params_file)
    tp = load_section(train.TrainParams, "train", params_file)
    d, r = out / restorer, reports / restorer  # each stage below writes its own folder atomically
    spec = d / "train_restorer/restorer.json"
    m_r = train_restorer.run(common, rp, clean_path, degraded_path, out=d / "train_restorer",
                             reports=r / "train_restorer", device=device, track=rich_track)  # fmt: skip
    m_rest = restore.run(common, rest, degraded_path, clean_path, spec_path=spec, out=d / "restore",
                         reports=r / "restore", device=device, track=rich_track)  # fmt: skip
    restored = d / "restore/manifest.parquet"
    m_pl = pseudolabel.run(common, pl, clean_path, degraded_path, restored, models, out=d / "pseudolabel",
                           reports=r / "pseudolabel", device=device, track=rich_track)  # fmt: skip
    m_tr = train.run(common, tp, pseudolabels=d / "pseudolabel", clean_path=clean_path,
                     degraded_path=degraded_path, restored_path=restored, models=models, out=d / "train",
                     resume_dir=out.with_name(out.name + ".resume") / restorer, reports=r / "train",
                     device=device, track=rich_track, restorer_spec=spec)  # fmt: skip
    summary = {
        "restorer": restorer,
        "trained": bool(m_r.get("trained")),
        "test": m_rest.get("test", {}),
        "pseudolabels": {k: m_pl.get(k) for k in ("before_filter", "after_filter")},
        "translator": m_tr["translator"],
        "selected": m_tr["selected"],
        "steps": m_tr["steps"],
    }
    write_json(summary, r / "metrics.json")
    return summary


@friendly_errors
def command(
    restorer: str = typer.Argument(
        ..., help="a restorer of params study.restorers: identity, dcp, aodnet, sci"
    ),
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Run restore, pseudolabel and train again behind another restorer R (the paper's Fig. 8 left).

    Params: common, train_restorer (arch replaced by R), restore, pseudolabel, train, study.
    Reads data/prepare/, data/degrade/, data/train_detector/. Writes data/study/R/ and
    reports/study/R/ (one folder per stage, and metrics.json). `dvc repro` runs every R.
    """
    m = run(restorer, params_file, device=device)
    t = m["test"]
    console.print(
        f"study {restorer}: test PSNR {t.get('psnr_degraded')} -> {t.get('psnr_restored')} dB; VaT selected "
        f"epoch {m['selected']['epoch']} -> {OUT / restorer}/train/translator.pt"
    )
