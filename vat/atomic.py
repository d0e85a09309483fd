"""Atomic writes: a killed stage leaves every output as it was, or every output new.

- :func:`atomic_path`: one file, written beside its final name and renamed onto it.
- :func:`atomic_dirs`: a stage's folders (``data/<stage>`` and ``reports/<stage>``), built
  in temporary folders beside them and swapped in together as one commit. The commit is a
  few renames; before the first, a journal listing them is written, so a process killed
  between two renames is finished by the next run of that stage (rolled forward: the new
  outputs were complete), which never sees new data beside old reports.
  :func:`atomic_dir` is the one-folder case.

Every transient name is ``.<name>.tmp-<pid>-...`` beside ``<name>`` (git-ignored): the
temporary folders, the journal (``...-commit.json``) and the outputs being replaced
(``...-old``). The next run of a stage removes those of its own folders left by a process
that is gone (its pid is not running); it never touches another stage's, nor those of a
run still going.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TMP = ".tmp-"  # every transient name is .<name>.tmp-<pid>-<...>


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _tag(path: Path) -> str:
    """The prefix of every transient name of ``path``'s, without the pid."""
    return f".{path.name}{TMP}"


def _mine(path: Path) -> str:
    """The prefix of this process's transient names of ``path``."""
    return f"{_tag(path)}{os.getpid()}-"


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The file gets the permissions of a plain ``open()`` (0666 less the umask), not the
    owner-only 0600 of ``mkstemp``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=_mine(path), suffix=path.suffix)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """Yield a fresh temporary folder beside ``path``; swap it into place on success
    (:func:`atomic_dirs` with one folder)."""
    with atomic_dirs(Path(path)) as (tmp,):
        yield tmp


@contextmanager
def atomic_dirs(*swap: Path, merge: Sequence[Path] = ()) -> Iterator[tuple[Path, ...]]:
    """Yield one fresh temporary folder per folder of ``swap`` and ``merge`` (in that order);
    on success commit them all together, on failure remove them and change nothing.

    A folder of ``swap`` is replaced whole by its temporary folder. A folder of ``merge``
    keeps what it holds: each entry of its temporary folder replaces the same name in it
    (for a reports folder that other stages' reports live in). Leftovers of a killed earlier
    run of these folders are finished or removed first (see the module docstring).
    """
    dests = [Path(p) for p in (*swap, *merge)]
    for d in dests:
        recover(d)
    tmps = []
    try:
        for d in dests:
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=_mine(d)))
            os.chmod(tmp, 0o777 & ~_umask())  # as mkdir would, not mkdtemp's owner-only 0700
            tmps.append(tmp)
        yield tuple(tmps)
    except BaseException:
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    n = len(swap)
    pairs = list(zip(tmps[:n], dests[:n], strict=True))
    for t, d in zip(tmps[n:], dests[n:], strict=True):
        d.mkdir(parents=True, exist_ok=True)
        pairs += [(e, d / e.name) for e in sorted(t.iterdir())]
    _commit(pairs, shells=tmps[n:], journal=dests[0].parent / f"{_mine(dests[0])}commit.json")


def _commit(pairs: list[tuple[Path, Path]], shells: list[Path], journal: Path) -> None:
    """Move each new ``pairs[i][0]`` onto ``pairs[i][1]``, as one step once the journal is written."""
    rel = journal.parent
    steps = [
        [os.path.relpath(p, rel) for p in (new, dst, dst.parent / f"{_mine(dst)}old")] for new, dst in pairs
    ]
    record = {"steps": steps, "shells": [os.path.relpath(s, rel) for s in shells]}
    part = journal.with_suffix(".part")  # a stray of this stage's if killed while written
    part.write_text(json.dumps(record))
    os.replace(part, journal)
    _roll_forward(record, rel)
    journal.unlink()


def _roll_forward(record: dict, rel: Path) -> None:
    """Do the renames of a commit ``record`` that are not done yet, then remove what they replaced.
    Idempotent: a process killed half way through leaves a state this finishes."""
    for new, dst, old in ([rel / p for p in step] for step in record["steps"]):
        if not os.path.lexists(new):
            continue  # moved already
        if os.path.lexists(dst):
            if os.path.lexists(old):
                _remove(old)
            os.replace(dst, old)
        os.replace(new, dst)
    for _, _, old in record["steps"]:
        _remove(rel / old)
    for shell in record["shells"]:
        _remove(rel / shell)


def recover(path: Path) -> None:
    """Finish a commit of ``path`` that a killed process left half done, then remove the
    transient files and folders of ``path`` that processes no longer running left."""
    path = Path(path)
    if not path.parent.is_dir():
        return
    tag = _tag(path)
    strays = [e for e in path.parent.iterdir() if e.name.startswith(tag) and not _alive(e.name[len(tag) :])]
    for journal in (e for e in strays if e.name.endswith("-commit.json")):
        try:
            record = json.loads(journal.read_text())
        except (OSError, ValueError):
            record = None  # unreadable (cannot happen: written atomically): nothing to finish
        if record is not None:
            _roll_forward(record, journal.parent)
        journal.unlink()
    for e in strays:
        _remove(e)


def _alive(rest: str) -> bool:
    """Whether the process whose pid starts ``rest`` (``<pid>-...``) is still running."""
    head = rest.split("-", 1)[0]
    if not head.isdigit():
        return False  # not one of ours: a leftover of an older version
    pid = int(head)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove(path: Path) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def rebase(path: str | Path, root: Path, to: Path) -> Path:
    """``path`` with its leading folder ``root`` replaced by ``to`` (as is if not under ``root``):
    where a file bound for ``root`` is while ``to`` is its temporary folder."""
    try:
        return Path(to) / Path(path).relative_to(root)
    except ValueError:
        return Path(path)


def final_names(obj, tmp: Path, out: Path):
    """``obj`` (nested dicts, lists, strings) with the temporary folder ``tmp`` named as ``out``,
    its final place, in every string: what a stage reports must not name a folder that is gone."""
    if isinstance(obj, str):
        return obj.replace(str(tmp), str(out))
    if isinstance(obj, dict):
        return {k: final_names(v, tmp, out) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return type(obj)(final_names(v, tmp, out) for v in obj)
    return obj
