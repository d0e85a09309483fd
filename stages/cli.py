"""The ``vat`` command: one subcommand per DVC stage, plus helpers (profile, bench)."""

from __future__ import annotations

import inspect
import re
import textwrap

import typer

import vat  # noqa: F401  (sets the offline environment before any third-party import)
from stages import (
    ablate,
    classify,
    degrade,
    evaluate,
    inputs,
    prepare,
    pseudolabel,
    real,
    report,
    restore,
    study,
    train,
    train_detector,
    train_restorer,
    unpaired,
)
from stages.tools import bench, browse, profile, translate

app = typer.Typer(
    name="vat",
    help=(
        "VaT: train a label-free translator between a frozen restorer and a frozen vision model.\n\n"
        "Each stage command reads params.yaml (its own section plus `common`) and writes "
        "data/<stage>/ and reports/<stage>/. `dvc repro` runs them in order; run one alone "
        "to inspect it. Pipeline: inputs (fingerprints of your files) -> prepare -> degrade -> "
        "train_restorer -> restore, train_detector -> pseudolabel -> train, unpaired, ablate ROW; "
        "study R; classify (Task 2); real "
        "(test sets without clean pairs) -> evaluate -> report. "
        "`vat browse` opens the pseudo-labels in the FiftyOne app."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help: no markup eating [brackets], wraps at the terminal
)


def _help(module) -> str:
    """A stage's help: its command's one-line summary, then what its module docstring says it
    reads and writes (written once, there)."""
    summary = inspect.getdoc(module.command).split("\n\n")[0]
    doc = inspect.getdoc(module) or ""
    io = doc[doc.index("Reads:") :] if "Reads:" in doc else ""
    return summary + ("\n\n\b\n" + _fit(io) if io else "")  # \b: click keeps these lines as they are


def _fit(block: str, width: int = 78) -> str:
    """``block``'s lines wrapped to ``width`` (click indents by 2: 80 columns), each continuation
    under its line's text column (after ``Reads:`` or a path and its spaces)."""
    out = []
    for line in block.splitlines():
        col = re.match(r"^\s*(\S+:\s+|\S+\s{2,})?", line).end() if len(line) > width else 0
        out += textwrap.wrap(line, width, subsequent_indent=" " * min(col, width // 2)) or [""]
    return "\n".join(out)


for _stage in (inputs, prepare, degrade, train_restorer, restore, train_detector, pseudolabel, train,
               unpaired, ablate, study, classify, real, evaluate, report):  # fmt: skip
    app.command(_stage.__name__.rsplit(".", 1)[1], help=_help(_stage))(_stage.command)
for _tool in (translate, browse, profile):
    app.command(_tool.__name__.rsplit(".", 1)[1], help=_help(_tool))(_tool.command)
app.add_typer(bench.app, name="bench")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
