"""The ``vat`` command: one subcommand per DVC stage, plus helpers (profile, bench)."""

from __future__ import annotations

import typer

import vat  # noqa: F401  (sets the offline environment before any third-party import)
from stages import (
    ablate,
    bench,
    browse,
    classify,
    degrade,
    evaluate,
    prepare,
    profile,
    pseudolabel,
    real,
    report,
    restore,
    study,
    train,
    train_detector,
    train_restorer,
    translate,
    unpaired,
)

app = typer.Typer(
    name="vat",
    help=(
        "VaT: train a label-free translator between a frozen restorer and a frozen vision model.\n\n"
        "Each stage command reads params.yaml (its own section plus `common`) and writes "
        "data/<stage>/ and reports/<stage>/. `dvc repro` runs them in order; run one alone "
        "to inspect it. Pipeline: prepare -> degrade -> train_restorer -> restore, "
        "train_detector -> pseudolabel -> train, unpaired, ablate ROW; study R; classify (Task 2); real "
        "(test sets without clean pairs) -> evaluate -> report. "
        "`vat browse` opens the pseudo-labels in the FiftyOne app."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command("prepare")(prepare.command)
app.command("degrade")(degrade.command)
app.command("train_restorer")(train_restorer.command)
app.command("restore")(restore.command)
app.command("train_detector")(train_detector.command)
app.command("pseudolabel")(pseudolabel.command)
app.command("train")(train.command)
app.command("unpaired")(unpaired.command)
app.command("ablate")(ablate.command)
app.command("study")(study.command)
app.command("classify")(classify.command)
app.command("real")(real.command)
app.command("evaluate")(evaluate.command)
app.command("report")(report.command)
app.command("translate")(translate.command)
app.command("browse")(browse.command)
app.command("profile")(profile.command)
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
