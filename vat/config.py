"""Typed parameters: ``params.yaml`` sections loaded into frozen dataclasses.

Each stage declares a frozen ``<Stage>Params`` dataclass (in ``stages/<stage>.py``) and
loads its section with :func:`load_section`. Loading is strict: an unknown key, a missing
key or a value of the wrong type stops with a :class:`~vat.errors.ParamsError` naming the
key, e.g. ``params.yaml: degrade.gamma_range: expected a list of 2 numbers, got 'x'``.

Profiles: ``profiles/default.yaml`` is a complete params file; ``profiles/tiny.yaml``,
``profiles/paper.yaml`` and ``profiles/paper_dark.yaml`` hold only what differs from it.
:func:`profile_params` merges them, and ``vat profile NAME`` writes the result to ``params.yaml``.
"""

from __future__ import annotations

import dataclasses
import io
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vat.errors import DataError, ParamsError
from vat.io import read_text

TASKS = ("haze", "dark", "classify")
PROFILES = ("tiny", "default", "paper", "paper_dark", "own")


@dataclass(frozen=True)
class CommonParams:
    """``common``: shared by every stage."""

    seed: int  # global seed; every random draw derives from it
    task: Literal["haze", "dark", "classify"]  # haze / low-light detection, or classification
    profile: Literal["tiny", "default", "paper", "paper_dark", "own"]  # which profile these params came from
    classes: list[str] = field(default_factory=list)  # class names, index = class id

    def __post_init__(self) -> None:
        if not self.classes:
            raise ParamsError("common.classes: must list at least one class")
        if len(set(self.classes)) != len(self.classes):
            raise ParamsError(f"common.classes: names repeat in {self.classes}")


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: params file not found")
    try:
        data = yaml.safe_load(read_text(path))
    except DataError as e:
        raise ParamsError(str(e)) from e
    except yaml.YAMLError as e:
        raise ParamsError(yaml_problem(path, e)) from e
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping of sections at the top level")
    return data


def yaml_problem(path: str | Path, e: yaml.YAMLError) -> str:
    """One line: the file, where in it, and what PyYAML found (its own text spans lines)."""
    mark = getattr(e, "problem_mark", None)
    at = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = " ".join(str(getattr(e, "problem", None) or e).split())
    return f"{path}: {at}not valid YAML ({what})"


T = typing.TypeVar("T")
# A decimal number as text, e.g. 1e-3: YAML 1.1 (PyYAML) reads exponents without a dot as strings.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?")


def from_dict(cls: type[T], data: Any, where: str) -> T:
    """Build dataclass ``cls`` from ``data``, rejecting unknown and missing keys."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(fields))})")
    kwargs = {}
    for name in fields:
        if name not in data:
            raise ParamsError(f"{where}.{name}: missing key")
        kwargs[name] = _convert(hints[name], data[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:  # a dataclass's own __post_init__ check
        raise ParamsError(_at(where, str(e))) from e


def _at(where: str, message: str) -> str:
    """``message`` placed at ``where`` (``params.yaml: train``), without saying the key twice
    when the message starts with it (``train: lr must be ...``, ``embedded.width ...``)."""
    file, sep, keys = where.rpartition(": ")
    last = keys.rsplit(".", 1)[-1]
    if message.startswith((f"{last}:", f"{last}.", f"{last} ")):
        return f"{file}{sep}{keys[: len(keys) - len(last)]}{message}"
    return f"{where}: {message}"


# One branch per params type; splitting it would scatter the one table of rules.
def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(a, value, where)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {tp}")
    if origin is Literal:
        if value not in args:
            raise ParamsError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ParamsError(f"{where}: expected a list of {len(args)} items, got {value!r}")
            return tuple(
                _convert(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
            )
        item = args[0] if args else Any
        out = [_convert(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(out) if origin is tuple else out
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args or (Any, Any)
        return {_convert(kt, k, where): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
            return float(value)  # YAML 1.1 reads 1e-3 (no dot) as a string
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a string, got {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected a path string, got {value!r}")
        return Path(value)
    raise TypeError(f"{where}: unsupported params type {tp}")


def load_section(cls: type[T], section: str, path: str | Path = "params.yaml") -> T:
    data = read_yaml(path)
    if section not in data:
        raise ParamsError(f"{path}: missing section {section!r}")
    return from_dict(cls, data[section], f"{path}: {section}")


def load_common(path: str | Path = "params.yaml") -> CommonParams:
    return load_section(CommonParams, "common", path)


# Sections whose keys are names the user chooses (rows), so a profile may add new ones.
OPEN_SECTIONS = ("ablate", "real")
# Mappings under which a profile may set any key: their stage checks them (classify.changes
# rewrites other sections; stages/classify.py names a key no section has).
FREE_PATHS = (("classify", "changes"),)


def merge(
    base: dict,
    overlay: dict,
    where: str = "",
    _path: tuple[str, ...] = (),
    unknown: str = "profile sets a key the default profile does not have",
) -> dict:
    """Deep-merge ``overlay`` onto ``base``; overlay keys must exist in base (else ParamsError
    ``<where><key path>: <unknown>``), except directly under an open section
    (``OPEN_SECTIONS``: its keys are row names a profile may add) and anywhere under a
    ``FREE_PATHS`` mapping. An open section set to ``{}`` is emptied (no ablation rows, no real
    sets), not merged; a row of it set to null is dropped (the others stay)."""
    out = dict(base)
    free = (len(_path) == 1 and _path[0] in OPEN_SECTIONS) or any(_path[: len(p)] == p for p in FREE_PATHS)
    for k, v in overlay.items():
        if k not in base and not free:
            raise ParamsError(f"{where}{'.'.join((*_path, k))}: {unknown}")
        if _dropped(_path, v):
            out.pop(k, None)
        elif _emptied(_path, k, v):
            out[k] = {}
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            out[k] = merge(base[k], v, where, (*_path, k), unknown)
        else:
            out[k] = v
    return out


def profile_params(name: str, profiles_dir: str | Path = "profiles") -> dict:
    """The complete params mapping of profile ``name``."""
    if name not in PROFILES:
        raise ParamsError(f"unknown profile {name!r} (known: {', '.join(PROFILES)})")
    profiles_dir = Path(profiles_dir)
    base = read_yaml(profiles_dir / "default.yaml")
    if name == "default":
        return base
    return merge(base, read_yaml(profiles_dir / f"{name}.yaml"), f"{profiles_dir / name}.yaml: ")


def render_profile(name: str, profiles_dir: Path) -> str:
    """The text of ``params.yaml`` for profile ``name``: default.yaml with the overlay's values
    written in, keeping default.yaml's comments."""
    from ruamel.yaml import YAML

    rt = YAML()
    rt.width = 120
    rt.representer.add_representer(
        type(None), lambda r, _: r.represent_scalar("tag:yaml.org,2002:null", "null")
    )
    base = rt.load((profiles_dir / "default.yaml").read_text())
    if name != "default":
        overlay = rt.load((profiles_dir / f"{name}.yaml").read_text()) or {}
        _overlay(base, overlay)
        if getattr(overlay, "ca", None) is not None:
            base.ca.comment = overlay.ca.comment  # the profile's own header, not the default's
    buf = io.StringIO()
    buf.write(f"# Written by `vat profile {name}` from {profiles_dir}/default.yaml")
    buf.write(f" and {profiles_dir}/{name}.yaml.\n" if name != "default" else ".\n")
    rt.dump(base, buf)
    return buf.getvalue()


def _dropped(path: tuple[str, ...], value) -> bool:
    """A row of an open section set to null by a profile: dropped from the params it writes."""
    return len(path) == 1 and path[0] in OPEN_SECTIONS and value is None


def _emptied(path: tuple[str, ...], key: str, value) -> bool:
    """An open section set to ``{}`` by a profile: emptied, not merged."""
    return not path and key in OPEN_SECTIONS and isinstance(value, dict) and not value


def _comment(base, overlay, k) -> None:
    """The comment beside a key the profile sets: the profile's own; with none, the default's
    is kept for a plain value (it says what the key is) and dropped for an inline mapping (it
    describes the default's value, e.g. classify.changes' "D: a small CNN")."""
    mine = getattr(overlay, "ca", None) and overlay.ca.items.get(k)
    if mine:
        old = getattr(base, "ca", None) and base.ca.items.get(k)
        if (
            old
            and old[2]
            and mine[2]
            and old[2].value.endswith("\n\n")
            and not mine[2].value.endswith("\n\n")
        ):
            mine[2].value += "\n"  # keep the blank line that ended the default's section
        base.ca.items[k] = mine
    elif hasattr(base, "ca") and isinstance(base.get(k), dict):
        flow = getattr(base[k], "fa", None)
        if flow is not None and flow.flow_style():
            base.ca.items.pop(k, None)
            base[k].ca.comment = None  # ruamel keeps a flow mapping's end-of-line comment here too


def _overlay(base, overlay, _path: tuple[str, ...] = ()) -> None:
    for k, v in overlay.items():
        if _dropped(_path, v):
            base.pop(k, None)
            continue
        _comment(base, overlay, k)
        if _emptied(_path, k, v):
            base[k] = v
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            _overlay(base[k], v, (*_path, k))
        else:
            base[k] = v
