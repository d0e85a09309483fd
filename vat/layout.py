"""Where each stage reads and writes: the ``data/`` and ``reports/`` layout, in one place.

Every stage ``S`` writes its data to ``data/S/`` (tracked by DVC), its metrics, plots and
pictures to ``reports/S/`` (git), and, while a resumable training runs, its state to
``data/S.resume/`` (outside DVC's outputs, so a killed run finds it again). ``dvc.yaml``'s
``outs`` mirror this (a test checks it); the files inside each folder are named here too,
so a stage asks :class:`Layout` for a path instead of writing one.

The composite stages run other stages again with their outputs elsewhere: ``classify``
runs the whole pipeline under ``data/classify/``; ``study`` runs four stages under
``data/study/R/`` while reading the main run's ``prepare``, ``degrade`` and
``train_detector``; ``ablate`` writes a ``train`` into ``data/ablate/ROW/``. Each builds a
:class:`Layout` with those stages moved (:meth:`Layout.within`, :meth:`Layout.moved`) and
passes it to the stages it runs; a stage never knows where it was moved.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

# The pipeline's stages, in dvc.yaml's order; each has data/<stage>/ (evaluate and report
# write reports only).
STAGES = (
    "inputs", "prepare", "degrade", "train_restorer", "restore", "train_detector", "pseudolabel", "train",
    "unpaired", "ablate", "study", "classify", "real", "evaluate", "report",
)  # fmt: skip
REPORTS_ONLY = ("evaluate", "report")
DATA_ONLY = ("inputs",)  # fingerprints, no metrics

MANIFEST = "manifest.parquet"  # prepare, degrade, restore (schema: vat/data/manifest.py)
RESTORER_SPEC = "restorer.json"  # train_restorer: what restore builds
TRANSLATOR = "translator.pt"  # train, unpaired, ablate ROW: the selected translator
LAST = "last.pt"  # ... and the last epoch's
REFERENCE = "reference.npz"  # pseudolabel: NUQ's reference set and epsilon (train.labels: online)
METRICS = "metrics.json"  # every stage's full record, under reports/<stage>/
SUMMARY = "summary.json"  # ... and beside it its headline numbers, DVC's metric (vat/eval/summary.py)
INPUTS = "inputs.json"  # prepare, train_restorer, train_detector, real: your files' fingerprint


@dataclass(frozen=True)
class Home:
    """One stage's three folders."""

    data: Path  # its DVC output
    reports: Path  # metrics, plots, pictures
    resume: Path  # a resumable training's state while it runs


@dataclass(frozen=True)
class Layout:
    """The folders of every stage: ``data/<stage>``, ``reports/<stage>``, ``data/<stage>.resume``
    under ``data`` and ``reports``, except the stages ``homes`` moves elsewhere."""

    data: Path = Path("data")
    reports: Path = Path("reports")
    resume_root: Path | None = None  # None: data/<stage>.resume; else resume_root/<stage>
    homes: tuple[tuple[str, Home], ...] = ()

    def home(self, stage: str) -> Home:
        for name, home in self.homes:
            if name == stage:
                return home
        if self.resume_root is None:
            resume = self.data / f"{stage}.resume"
        else:
            resume = self.resume_root / stage
        return Home(self.data / stage, self.reports / stage, resume)

    def out(self, stage: str) -> Path:
        return self.home(stage).data

    def report(self, stage: str) -> Path:
        return self.home(stage).reports

    def resume(self, stage: str) -> Path:
        return self.home(stage).resume

    def moved(self, stage: str, data: Path, reports: Path, resume: Path | None = None) -> Layout:
        """This layout with ``stage`` writing to ``data`` and ``reports`` (its resume state to
        ``resume``, default ``<data>.resume``)."""
        home = Home(Path(data), Path(reports), Path(resume) if resume else Path(f"{data}.resume"))
        kept = tuple((n, h) for n, h in self.homes if n != stage)
        return replace(self, homes=kept + ((stage, home),))

    def within(self, stages: Iterable[str], data: Path, reports: Path, resume_root: Path) -> Layout:
        """This layout with each of ``stages`` writing to ``data/<stage>`` and ``reports/<stage>``
        (resume state in ``resume_root/<stage>``); the other stages stay where they are."""
        out = self
        for s in stages:
            out = out.moved(s, Path(data) / s, Path(reports) / s, Path(resume_root) / s)
        return out

    def ablation(self, row: str) -> Layout:
        """This layout with ``train`` writing ablation ``row``: ``data/ablate/ROW``,
        ``reports/ablate/ROW``, its resume state in ``data/ablate.resume/ROW``."""
        return self.moved("train", self.out("ablate") / row, self.report("ablate") / row,
                          self.resume("ablate") / row)  # fmt: skip

    # -- the files stages hand to each other ------------------------------------------------

    def manifest(self, stage: str) -> Path:
        """The image manifest of ``prepare`` (clean), ``degrade`` or ``restore``."""
        return self.out(stage) / MANIFEST

    @property
    def clean(self) -> Path:
        return self.manifest("prepare")

    @property
    def degraded(self) -> Path:
        return self.manifest("degrade")

    @property
    def restored(self) -> Path:
        return self.manifest("restore")

    @property
    def restorer_spec(self) -> Path:
        return self.out("train_restorer") / RESTORER_SPEC

    @property
    def models(self) -> Path:
        """The folder holding the frozen D (``detector.pt``, or a classifier's files)."""
        return self.out("train_detector")

    @property
    def pseudolabels(self) -> Path:
        return self.out("pseudolabel")

    def translator(self, stage: str = "train", last: bool = False) -> Path:
        return self.out(stage) / (LAST if last else TRANSLATOR)

    def metrics(self, stage: str) -> Path:
        return self.report(stage) / METRICS

    def summary(self, stage: str) -> Path:
        return self.report(stage) / SUMMARY


MAIN = Layout()
