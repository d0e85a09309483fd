"""Your files outside ``data/``: which params point at them, and their content fingerprints.

A run reads files it does not make: your dataset folder (``prepare.root``; the ``folder``
source's subfolders), your restorer's and detector's weights (``train_restorer.weights``,
``train_restorer.folder``, ``train_detector.weights``, a model yaml given as a path), the
real test sets' folders (``real.NAME.root``) and Task 2's versions of them
(``classify.changes``). DVC sees a stage's params change, not the files they name, so:

- the ``inputs`` stage (always run: it is cheap) writes ``data/inputs/<stage>.json``, the
  fingerprint of the files each stage reads; each of those stages lists its file as a DVC
  dependency, so DVC reruns it, and what follows it, exactly when those files change;
- the stage writes the same fingerprint into its own output (``inputs.json``), so its output
  changes with its inputs even where it only records their paths (the manifest points at
  your images; it does not copy them), and DVC reruns the stages after it too.

A fingerprint is, per path, the number of files under it, their bytes and one MD5 over every
file's relative path and MD5 (a missing path is recorded as missing; the stage reading it
says so). File MD5s are cached by (size, modification time) in ``data/inputs.cache.json``,
as DVC does, so an unchanged dataset is not read again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from vat.io import write_json
from vat.layout import INPUTS

__all__ = ["SECTIONS", "fingerprint", "record", "section_paths", "stage_paths"]

# The stages that read files of yours, each through its own params section.
SECTIONS = ("prepare", "train_restorer", "train_detector", "real", "classify")
CACHE = "inputs.cache.json"  # under data/: file MD5s by (size, mtime), outside every DVC output
MODEL_FILES = (".yaml", ".yml", ".pt", ".pth")


def _get(values: Any, key: str) -> Any:
    if isinstance(values, Mapping):
        return values.get(key)
    return getattr(values, key, None)


def section_paths(section: str, values: Any) -> list[str]:
    """The paths of your files that params ``section`` (a mapping, or its loaded dataclass) names."""
    if values is None:
        return []
    if section == "prepare":
        root, source = _get(values, "root"), _get(values, "source")
        if source == "embedded" or not root:
            return []
        if source != "folder":
            return [str(root)]
        folder = _get(values, "folder") or {}
        subs = [_get(folder, "degraded"), _get(folder, "clean")]
        subs += [_get(_get(folder, k), "root") for k in ("val", "test") if _get(folder, k)]
        return [str(Path(root) / s) for s in subs if s]
    if section == "train_restorer":
        paths = [_get(values, "weights")]
        if _get(values, "arch") == "folder":
            paths.append(_get(values, "folder"))
        return [str(p) for p in paths if p]
    if section == "train_detector":
        paths = [_get(values, "weights")]
        model = str(_get(values, "model") or "")
        if model.endswith(MODEL_FILES) and Path(model).is_file():  # a path, not a shipped yaml's name
            paths.append(model)
        return [str(p) for p in paths if p]
    raise ValueError(f"section_paths: {section!r} is not a section that names files")


def stage_paths(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """Per stage of :data:`SECTIONS`, the paths of your files it reads, from the whole params."""
    out = {s: section_paths(s, params.get(s)) for s in ("prepare", "train_restorer", "train_detector")}
    real = params.get("real") or {}
    out["real"] = [str(v["root"]) for v in real.values() if isinstance(v, Mapping) and v.get("root")]
    classify = params.get("classify")
    changes = (classify or {}).get("changes") or {} if isinstance(classify, Mapping) else {}
    paths: list[str] = []
    if classify is not None:
        for s in ("prepare", "train_restorer", "train_detector"):
            section = dict(params.get(s) or {}) | dict(changes.get(s) or {})
            paths += section_paths(s, section)
    out["classify"] = paths
    return out


def _files(path: Path) -> Iterable[Path]:
    if path.is_file():
        yield path
        return
    for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            yield Path(dirpath) / name


def _md5(path: Path, cache: dict[str, list], stat: os.stat_result) -> str:
    key = str(path.resolve())
    hit = cache.get(key)
    if hit and hit[0] == stat.st_size and hit[1] == stat.st_mtime_ns:
        return hit[2]
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    cache[key] = [stat.st_size, stat.st_mtime_ns, h.hexdigest()]
    return cache[key][2]


def _read_cache(path: Path) -> dict[str, list]:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # no cache, or a broken one: hash again


def fingerprint(paths: Iterable[str], cache_file: Path | None = None) -> dict[str, dict]:
    """Per path: ``{"files", "bytes", "md5"}`` over every file under it, or ``{"missing": true}``."""
    cache = _read_cache(cache_file) if cache_file else {}
    before = dict(cache)
    out: dict[str, dict] = {}
    for p in paths:
        path = Path(p)
        if not path.exists():
            out[p] = {"missing": True}
            continue
        total, n, h = 0, 0, hashlib.md5()
        for f in _files(path):
            stat = f.stat()
            rel = f.relative_to(path).as_posix() if path.is_dir() else f.name
            h.update(f"{rel}\0{_md5(f, cache, stat)}\n".encode())
            total, n = total + stat.st_size, n + 1
        out[p] = {"files": n, "bytes": total, "md5": h.hexdigest()}
    if cache_file and cache != before:
        write_json(cache, cache_file)
    return out


def record(paths: Iterable[str], folder: Path, data: Path) -> dict[str, dict]:
    """Write the fingerprint of ``paths`` to ``folder/inputs.json`` (a stage's output being
    built; ``data``: the layout's data folder, whose cache it uses); returns it."""
    fp = fingerprint(list(paths), Path(data) / CACHE)
    write_json(fp, Path(folder) / INPUTS)
    return fp
