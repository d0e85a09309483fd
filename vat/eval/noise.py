"""What a run can resolve, and orderings and trends stated only above it (the report's wording).

A difference between two test scores counts only when it exceeds the run's resolution:
the spread of that score over seeds where ``reports/seeds/metrics.json`` measured one for
the run's profile (``{"profile": ..., "spread": {"map50": ...}}``, a standard deviation as a
fraction; scripts/seeds.py), else one standard error
of a proportion on the test set's N objects (or images), 0.5 / sqrt(N), a stated bound rather
than a measurement. Anything closer is "within noise", never an ordering.
"""

from __future__ import annotations

import json
import math
from pathlib import Path


def resolution(reports: Path, prep: dict | None, ev: dict | None, key: str = "map50") -> tuple[float, str]:
    """(the smallest difference in ``key`` this run resolves, as a fraction; how it was found)."""
    seeds = reports / "seeds" / "metrics.json"
    if seeds.is_file():
        measured = json.loads(seeds.read_text())
        spread = (measured.get("spread") or {}).get(key)
        n = len(measured.get("seeds", []))
        if spread and measured.get("profile") == (prep or {}).get("profile"):  # not another profile's
            return float(spread), f"the spread measured over {n} seeds (reports/seeds)"
    split = (ev or {}).get("split", "test")
    s = ((prep or {}).get("splits") or {}).get(split) or {}
    n, what = (
        (s.get("boxes"), "objects")
        if s.get("boxes")
        else (s.get("images") or (ev or {}).get("images"), "images")
    )
    if not n:
        return 0.0, "unknown (no test size recorded)"
    return 0.5 / math.sqrt(
        n
    ), f"0.5 / sqrt(N) on the {split} set's N = {n} {what}, a stated bound, not measured"


def header(profile: str | None, prep: dict | None, ev: dict | None, res: tuple[float, str]) -> str:
    """The report's first line: which profile, how big the run is, what it can resolve."""
    splits = (prep or {}).get("splits") or {}
    sizes = ", ".join(f"{k} {v.get('images')}" for k, v in splits.items() if isinstance(v, dict))
    size = f"{(prep or {}).get('images', '?')} images ({sizes})" if sizes else "size not recorded"
    return (
        f"Profile `{profile or 'unknown'}`: {size}; scored on {(ev or {}).get('images', '?')} "
        f"{(ev or {}).get('split', 'test')} images. Differences under {100 * res[0]:.2f} points "
        f"({res[1]}) are called within noise: no ordering or trend is claimed from them."
    )


def ordering(scores: dict[str, float], res: float) -> str:
    """``scores`` best first, ``>`` where the gap exceeds ``res``, ``≈`` (within noise) where not."""
    items = sorted(scores.items(), key=lambda kv: -kv[1])
    text = ""
    for i, (k, v) in enumerate(items):
        if i:
            text += " > " if items[i - 1][1] - v > res else " ≈ "
        text += f"{k} ({100 * v:.2f})"
    return text


def beats(a: float, b: float, res: float) -> bool | None:
    """True: ``a`` above ``b`` by more than ``res``; False: below by more; None: within noise."""
    return None if abs(a - b) <= res else a > b


def trend(values: list[float], res: float, what: str) -> str:
    """How ``values`` (in the order of ``what``) move: rising, falling or within noise, at ``res``."""
    if len(values) < 2:
        return f"one point only: no trend in {what}"
    steps = [beats(b, a, res) for a, b in zip(values, values[1:], strict=False)]
    if all(s is None for s in steps):
        return f"all within noise of each other: no trend with {what}"
    if all(s is not False for s in steps):
        return f"it rises with {what} (no step down beyond noise)"
    if all(s is not True for s in steps):
        return f"it falls with {what} (no step up beyond noise)"
    return f"it does not move monotonically with {what}"


def of_run(reports: Path, key: str = "map50") -> tuple[float, str]:
    """:func:`resolution` of the run whose metrics are under ``reports``."""

    def load(stage: str) -> dict | None:
        p = reports / stage / "metrics.json"
        return json.loads(p.read_text()) if p.is_file() else None

    return resolution(reports, load("prepare"), load("evaluate"), key)
