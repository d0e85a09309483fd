"""report: the paper-shaped summary of a run, as Markdown and HTML, from the stages' metrics.

Tables shaped like the paper's Table 1 (detection, per class, mAP@0.5), Table 2 (image
quality), Table 4 (ablations, both tasks) and Task 2's accuracy and ROC (Fig. 6), with the
paper's own numbers beside ours (vat/eval/report.py, vat/eval/report_sections.py).

Reads:   params.yaml [common] (the profile's name);
         reports/<stage>/metrics.json of prepare, degrade, train_restorer, train_detector,
         pseudolabel, restore, train, unpaired, evaluate; reports/{ablate,study}/*/metrics.json;
         reports/evaluate/grid.png, reports/train/samples.png, reports/unpaired/samples.png;
         reports/classify/ (Task 2: metrics.json, evaluate/metrics.json, evaluate/roc.png);
         reports/real/ (test sets without clean pairs: metrics.json, NAME/metrics.json, NAME/grid.png);
         reports/seeds/metrics.json (scripts/seeds.py: the spread over seeds, for the noise rule)
Writes:  reports/report/report.md, reports/report/report.html, and the studies' plots
         reports/report/fig8_width.png, fig8_restorers.png (where their rows exist)
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages._ui import finish, friendly_errors
from vat.config import load_common
from vat.eval.render import to_html, to_markdown
from vat.eval.report import blocks
from vat.io import atomic_dir, write_text
from vat.layout import MAIN, Layout


def run(layout: Layout = MAIN, profile: str | None = None) -> dict:
    """Write the report from ``layout``'s reports, naming ``profile``; returns where it went."""
    from vat.eval.viz import scatter_plot

    bs = blocks(layout.reports, profile)
    out = layout.report("report")
    with atomic_dir(out) as tmp:
        for b in bs:
            if b[0] == "plot":
                scatter_plot(tmp / b[1], b[2], b[3], b[4], b[5], xlog=b[6])
        write_text(to_markdown(bs), tmp / "report.md")
        write_text(to_html(bs), tmp / "report.html")
    return {"blocks": len(bs), "markdown": str(out / "report.md"), "html": str(out / "report.html")}


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
) -> None:
    """Write reports/report/report.md and report.html: paper-shaped tables from the stages' metrics."""
    r = run(profile=load_common(params_file).profile)
    finish(f"report: {r['blocks']} blocks -> {r['markdown']}, {r['html']}")
