"""profile: write params.yaml from a named profile (tiny, default, paper, paper_dark).

Reads:  profiles/default.yaml and, for the others, profiles/<name>.yaml (its changes)
Writes: params.yaml (the previous one, when different, is kept as params.yaml.bak)
"""

from __future__ import annotations

import shutil
from pathlib import Path

import typer

from stages._ui import console, friendly_errors
from vat.config import PROFILES, profile_params, render_profile
from vat.errors import ParamsError
from vat.io import write_text


def run(name: str, profiles_dir: Path = Path("profiles"), out: Path = Path("params.yaml")) -> Path | None:
    """Write the profile to ``out``; return the backup path if an older file was kept."""
    data = profile_params(name, profiles_dir)  # validates that the overlay only changes known keys
    if data.get("common", {}).get("profile") != name:
        raise ParamsError(f"{profiles_dir}: profile {name!r} must set common.profile: {name}")
    text = render_profile(name, profiles_dir)
    backup = None
    if out.exists() and out.read_text() != text:
        backup = out.with_name(out.name + ".bak")
        shutil.copyfile(out, backup)
    write_text(text, out)
    return backup


@friendly_errors
def command(
    name: str = typer.Argument(..., help=f"one of: {', '.join(PROFILES)}"),
    out: Path = typer.Option(Path("params.yaml"), "--out", help="params file to write"),
) -> None:
    """Write params.yaml from a profile: tiny (tests), default (embedded demo), paper (VOC haze, GPU),
    paper_dark (VOC low light + ExDark, GPU).

    Reads profiles/default.yaml and profiles/<name>.yaml. Writes params.yaml; a
    different existing params.yaml is kept as params.yaml.bak.
    """
    backup = run(name, out=out)
    console.print(f"profile {name} -> {out}" + (f" (previous kept as {backup})" if backup else ""))
    if name != "default" and Path("reports/report/report.md").is_file():
        console.print(
            "profile: `dvc repro` will replace the committed results (reports/, dvc.lock); "
            "`git checkout -- reports dvc.lock params.yaml` brings them back (README, quick start)"
        )
