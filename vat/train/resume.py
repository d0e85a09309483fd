"""A training's resume state: what it must match, reading it, and setting an unusable one aside.

The state is ``<resume>/state.pt`` (written by :mod:`vat.train.loop`). It is used when its
fingerprint (params, inputs) matches the run's. A state for other params or inputs, or any
state when the run is told to start over (``--fresh``), is moved to the first free
``<resume>.stale-N`` beside it: stale states are never deleted. A state that cannot be read
stops the run with one line saying how to start over.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from vat.errors import VatError

STATE_FORMAT = "vat-train-state/2"


class TrainingError(VatError):
    """Training cannot go on (a non-finite loss, a resume state that cannot be read); the last
    good checkpoint is kept."""


def fingerprint(parts: list, inputs: list[Path]) -> str:
    """What a resumable state must match: ``parts`` (params, speed settings that change
    results) and the bytes of every input file."""
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    for p in inputs:
        h.update(str(p).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"-")
    return h.hexdigest()


def load_state(path: Path, fp: str, fresh: bool) -> tuple[dict | None, str | None]:
    """The resume state at ``path`` if it matches ``fp`` (else None), and where a state that
    is not used (``fresh``, or for other params or inputs) was moved."""
    from vat.atomic import recover
    from vat.models.checkpoints import read_checkpoint

    recover(path)  # a state file half written by a killed run: removed, the last whole one kept
    if not path.is_file():
        return None, None
    if fresh:
        return None, set_aside(path.parent)
    try:
        state = read_checkpoint(path)
    except VatError as e:
        raise TrainingError(f"{e}. {restart_hint(path.parent)}") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("fingerprint") != fp:
        return None, set_aside(path.parent)
    return state, None


def set_aside(resume: Path) -> str:
    """Move the folder ``resume`` to the first free ``<resume>.stale-N``: stale states are kept,
    never deleted (delete them yourself when you no longer want them)."""
    n = 1
    while (stale := resume.with_name(f"{resume.name}.stale-{n}")).exists():
        n += 1
    resume.rename(stale)
    return str(stale)


def restart_hint(resume: Path) -> str:
    return (
        f"To start over, run with --fresh (vat train, vat unpaired, vat ablate ROW), which moves {resume} "
        f"to {resume.name}.stale-N beside it, or move {resume} away yourself"
    )


def saved_step(path: Path) -> int | str:
    from vat.models.checkpoints import read_checkpoint

    try:
        return int(read_checkpoint(path)["step"])
    except (VatError, KeyError, TypeError):
        return "?"
