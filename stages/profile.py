"""profile: write params.yaml from a named profile (tiny, default, paper, paper_dark).

Reads:  profiles/default.yaml and, for the others, profiles/<name>.yaml (its changes)
Writes: params.yaml (the previous one, when different, is kept as params.yaml.bak)
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import typer

from stages._ui import console, friendly_errors
from vat.config import PROFILES, profile_params
from vat.errors import ParamsError
from vat.io import write_text


def run(name: str, profiles_dir: Path = Path("profiles"), out: Path = Path("params.yaml")) -> Path | None:
    """Write the profile to ``out``; return the backup path if an older file was kept."""
    data = profile_params(name, profiles_dir)  # validates that the overlay only changes known keys
    if data.get("common", {}).get("profile") != name:
        raise ParamsError(f"{profiles_dir}: profile {name!r} must set common.profile: {name}")
    text = _render(name, profiles_dir)
    backup = None
    if out.exists() and out.read_text() != text:
        backup = out.with_name(out.name + ".bak")
        shutil.copyfile(out, backup)
    write_text(text, out)
    return backup


def _render(name: str, profiles_dir: Path) -> str:
    """default.yaml with the overlay's values written in, keeping default.yaml's comments."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 120
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    base = rt.load((profiles_dir / "default.yaml").read_text())
    if name != "default":
        _overlay(base, rt.load((profiles_dir / f"{name}.yaml").read_text()) or {})
    buf = io.StringIO()
    buf.write(f"# Written by `vat profile {name}` from {profiles_dir}/default.yaml")
    buf.write(f" and {profiles_dir}/{name}.yaml.\n" if name != "default" else ".\n")
    rt.dump(base, buf)
    return buf.getvalue()


def _overlay(base, overlay) -> None:
    for k, v in overlay.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            _overlay(base[k], v)
        else:
            base[k] = v


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
