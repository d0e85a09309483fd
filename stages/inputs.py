"""inputs: fingerprint your files outside data/, so DVC reruns what reads them when they change.

DVC sees params change, not the files they name. This stage runs on every ``dvc repro``
(``always_changed``; it reads only what changed since the last run, vat/inputs.py) and
writes, per stage that reads files of yours, the fingerprint (files, bytes, MD5) of those
files; that stage depends on its fingerprint, so a fixed image in your dataset, or a new
detector checkpoint under the same name, reruns it and everything after it. The embedded
default reads no files of yours: every fingerprint is empty.

Reads:   params.yaml [prepare, train_restorer, train_detector, real, classify]; the files and
         folders those sections name (prepare.root, *.weights, real.NAME.root, ...)
Writes:  data/inputs/<stage>.json   per stage of prepare, train_restorer, train_detector, real,
                                    classify: {path: {files, bytes, md5}} (or {missing: true})
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

from stages._ui import finish, friendly_errors
from vat.config import read_yaml
from vat.inputs import CACHE, SECTIONS, fingerprint, stage_paths
from vat.io import atomic_dir, write_json
from vat.layout import MAIN, Layout


def run(params_file: Path = Path("params.yaml"), layout: Layout = MAIN) -> dict:
    """Write ``data/inputs/<stage>.json`` for each stage of :data:`vat.inputs.SECTIONS`; returns them."""
    paths = stage_paths(read_yaml(params_file))
    prints = {s: fingerprint(paths[s], layout.data / CACHE) for s in SECTIONS}
    with atomic_dir(layout.out("inputs")) as tmp:
        for s, fp in prints.items():
            write_json(fp, tmp / f"{s}.json")
    return prints


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
) -> None:
    """Fingerprint the files of yours that the stages read (dataset folders, weights)."""
    t0 = time.perf_counter()
    prints = run(params_file)
    found = {p: v for fp in prints.values() for p, v in fp.items()}
    files = sum(v.get("files", 0) for v in found.values())
    size = sum(v.get("bytes", 0) for v in found.values()) / 1e6
    missing = sorted(p for p, v in found.items() if v.get("missing"))
    note = f"; missing: {', '.join(missing)}" if missing else ""
    finish(
        f"inputs: {len(found)} paths, {files} files, {size:.1f} MB fingerprinted in "
        f"{time.perf_counter() - t0:.1f} s{note} -> {MAIN.out('inputs')}/"
    )
