"""Scores over seeds: mean and spread of every method's test score across whole runs.

``scripts/seeds.py`` runs the pipeline once per seed (each in its own copy of the
workspace) and hands the runs' ``reports/`` folders here; :func:`collect` reads each run's
test scores (detection on the synthetic test split, the ``fog`` set and every other real
set, Task 2's accuracy), :func:`summarise` gives mean and standard deviation per method
(sample sd, ``n - 1``) and the targets of the embedded default, :func:`table` and :func:`plot`
write them. ``spread`` (the largest sd over seeds of a row's mAP@0.5 minus the baseline's, as
a fraction) is what :mod:`vat.eval.noise` reads as the run's resolution.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from vat.eval.report import load_metrics, pct

VAT = "VaT D(T_A(I_F)), val-selected"
VANILLA = "Vanilla D(I_LQ)"
UNPAIRED = "Unpaired CycleGAN-style D(T_A(I_F))"
BASELINE = "Baseline D(R(I_LQ))"  # followed by ", R=<arch>"


def collect(reports: Path) -> dict[str, dict[str, float]]:
    """One run's test scores: {set: {method: score}} with sets ``test`` (mAP@0.5), each real
    set by name (mAP@0.5) and ``task2`` (accuracy), where the run has them."""
    out: dict[str, dict[str, float]] = {}
    ev = (load_metrics(reports, "evaluate") or {}).get("methods") or {}
    out["test"] = {k: v["map50"] for k, v in ev.items() if v.get("map50") is not None}
    for name, s in (load_metrics(reports, "real") or {}).items():
        if isinstance(s, dict) and s.get("methods"):
            out[name] = {k: v["map50"] for k, v in s["methods"].items() if v.get("map50") is not None}
    t2 = (load_metrics(reports, "classify") or {}).get("methods") or {}
    if t2:
        out["task2"] = {k: v["accuracy"] for k, v in t2.items() if v.get("accuracy") is not None}
    return {k: v for k, v in out.items() if v}


def _stats(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else None
    return {"mean": statistics.fmean(values), "sd": sd, "values": values}


def _baseline(methods: dict) -> str | None:
    return next((k for k in methods if k.startswith(BASELINE)), None)


def summarise(runs: dict[int, dict[str, dict[str, float]]], profile: str | None = None) -> dict:
    """Mean and sd per set and method over ``runs`` ({seed: :func:`collect`}); methods every
    run has. ``targets``: the issue's three margins on the means, each with the sd of the
    per-seed difference; ``spread``: the largest sd over seeds of a translator row's test score
    minus the baseline's in the same run (VaT, ablation and unpaired rows), what a single run's
    differences are judged against. Differences, not scores: a seed draws new scenes, which
    moves every method's score together (the sd of one method's score is several times larger).
    """
    seeds = sorted(runs)
    sets: dict[str, dict] = {}
    for s in sorted({k for r in runs.values() for k in r}):
        common = set.intersection(*(set(runs[seed].get(s, {})) for seed in seeds))
        sets[s] = {m: _stats([runs[seed][s][m] for seed in seeds]) for m in sorted(common)}

    def margin(s: str, a: str | None, bs: list[str | None]) -> dict | None:
        got = sets.get(s, {})
        if a not in got or not bs or any(b not in got for b in bs):
            return None
        diffs = [runs[seed][s][a] - max(runs[seed][s][b] for b in bs) for seed in seeds]
        return {"of": a, "over": bs} | _stats(diffs)

    test = sets.get("test", {})
    targets = {
        "vat_over_best_of_vanilla_baseline": margin("test", VAT, [VANILLA, _baseline(test)]),
        "vat_over_unpaired": margin("test", VAT, [UNPAIRED]),
        "fog_vat_over_baseline": margin("fog", VAT, [_baseline(sets.get("fog", {}))]),
    }
    base = _baseline(test)
    compared = [m for m in test if m != base and m.startswith(("VaT", "Ablation", "Unpaired"))]
    sds = [statistics.stdev([runs[s]["test"][m] - runs[s]["test"][base] for s in seeds])
           for m in compared if base and len(seeds) > 1]  # fmt: skip
    return {
        "profile": profile,  # the runs' common.profile: the report uses the spread for it only
        "seeds": seeds,
        "sets": sets,
        "targets": targets,
        "spread": {"map50": max(sds) if sds else None},
    }


def table(summary: dict) -> str:
    """Markdown: per set, mean ± sd of each method (points), then the targets."""
    n = len(summary["seeds"])
    lines = [f"# Scores over {n} seeds ({', '.join(map(str, summary['seeds']))})", ""]
    what = {"task2": "Task 2 accuracy (%)"}
    for s, methods in summary["sets"].items():
        lines += [f"## {what.get(s, f'{s}: mAP@0.5 (points)')}", "", "| method | mean | sd | per seed |",
                  "|---|---|---|---|"]  # fmt: skip
        for m, v in sorted(methods.items(), key=lambda kv: -kv[1]["mean"]):
            per_seed = " ".join(pct(x) for x in v["values"])
            lines.append(f"| {m} | {pct(v['mean'])} | {pct(v['sd'])} | {per_seed} |")
        lines.append("")
    lines += ["## Targets (means over seeds; a margin within its sd is not resolved)", ""]
    for name, t in summary["targets"].items():
        if t is None:
            lines.append(f"- {name}: not measured (a method is missing)")
            continue
        resolved = t["sd"] is not None and abs(t["mean"]) > t["sd"]
        lines.append(f"- {name}: {pct(t['mean'])} points (sd {pct(t['sd'])}; "
                     f"{'resolved' if resolved else 'within the seeds spread'})")  # fmt: skip
    spread = pct(summary["spread"]["map50"])
    lines += ["", f"spread (largest sd over seeds of a row's mAP minus the baseline's): {spread} points", ""]
    return "\n".join(lines)


def plot(summary: dict, path: Path) -> None:
    """Bars of the mean with sd whiskers, one panel per set."""
    import matplotlib.pyplot as plt

    sets = summary["sets"]
    fig, axes = plt.subplots(len(sets), 1, figsize=(8, 2.2 + 0.28 * sum(len(m) for m in sets.values())),
                             squeeze=False)  # fmt: skip
    for ax, (s, methods) in zip(axes[:, 0], sets.items(), strict=True):
        names = sorted(methods, key=lambda m: methods[m]["mean"])
        ax.barh(range(len(names)), [100 * methods[m]["mean"] for m in names],
                xerr=[100 * (methods[m]["sd"] or 0) for m in names], color="#4c72b0", capsize=3)  # fmt: skip
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.set_title(f"{s} ({len(summary['seeds'])} seeds: mean, sd)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
