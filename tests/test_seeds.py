"""scripts/seeds.py and vat/eval/seeds.py: per-seed scores gathered into mean, sd and targets."""

from __future__ import annotations

import importlib.util
import json
import statistics
from pathlib import Path

import pytest

from vat.eval.seeds import BASELINE, UNPAIRED, VANILLA, VAT, collect, plot, summarise, table

ROOT = Path(__file__).resolve().parents[1]
B = f"{BASELINE}, R=aodnet"


def _run(tmp: Path, vat: float, base: float, fog_vat: float) -> Path:
    rep = tmp / "reports"
    for stage, obj in {
        "evaluate": {"methods": {VAT: {"map50": vat}, B: {"map50": base}, VANILLA: {"map50": 0.30},
                                 UNPAIRED: {"map50": base - 0.01}, "Clean D(I_HQ)": {"map50": 0.8}}},
        "real": {"fog": {"methods": {VAT: {"map50": fog_vat}, B: {"map50": 0.29}}}},
        "classify": {"methods": {VAT: {"accuracy": 0.4}, VANILLA: {"accuracy": 0.3}}},
    }.items():  # fmt: skip
        (rep / stage).mkdir(parents=True)
        (rep / stage / "metrics.json").write_text(json.dumps(obj))
    return rep


def test_summary_means_sds_targets_and_spread(tmp_path):
    vats, bases, fogs = [0.46, 0.48, 0.50], [0.42, 0.41, 0.45], [0.28, 0.30, 0.31]
    per_seed = zip((0, 1, 2), vats, bases, fogs, strict=True)
    runs = {s: collect(_run(tmp_path / str(s), v, b, f)) for s, v, b, f in per_seed}
    assert set(runs[0]) == {"test", "fog", "task2"}
    s = summarise(runs, "default")
    assert s["seeds"] == [0, 1, 2] and s["profile"] == "default"
    v = s["sets"]["test"][VAT]
    assert v["mean"] == pytest.approx(0.48) and v["sd"] == pytest.approx(statistics.stdev(vats))
    t = s["targets"]["vat_over_best_of_vanilla_baseline"]  # per seed: VaT - max(Vanilla 0.30, Baseline)
    assert t["values"] == pytest.approx([0.04, 0.07, 0.05]) and t["mean"] == pytest.approx(0.16 / 3)
    assert s["targets"]["vat_over_unpaired"]["mean"] == pytest.approx(0.48 - (sum(bases) / 3 - 0.01))
    assert s["targets"]["fog_vat_over_baseline"]["values"] == pytest.approx([-0.01, 0.01, 0.02])
    # paired: VaT - Baseline per seed (0.04, 0.07, 0.05); Unpaired - Baseline is -0.01 in each
    assert s["spread"]["map50"] == pytest.approx(statistics.stdev([0.04, 0.07, 0.05]))
    md = table(s)
    assert f"| {VAT} | 48.00 | {100 * statistics.stdev(vats):.2f} | 46.00 48.00 50.00 |" in md
    assert "- fog_vat_over_baseline: 0.67 points (sd 1.53; within the seeds spread)" in md
    assert "- vat_over_best_of_vanilla_baseline: 5.33 points (sd 1.53; resolved)" in md
    plot(s, tmp_path / "seeds.png")
    assert (tmp_path / "seeds.png").stat().st_size > 1000


def test_a_method_missing_from_one_run_is_left_out_and_a_target_without_it_is_none(tmp_path):
    a = collect(_run(tmp_path / "a", 0.5, 0.4, 0.3))
    b = collect(_run(tmp_path / "b", 0.5, 0.4, 0.3))
    del b["test"][UNPAIRED]
    s = summarise({0: a, 1: b})
    assert UNPAIRED not in s["sets"]["test"] and s["targets"]["vat_over_unpaired"] is None
    assert "- vat_over_unpaired: not measured" in table(s)


def test_seed_line_of_the_real_params_is_found_and_replaced():
    spec = importlib.util.spec_from_file_location("seeds_script", ROOT / "scripts" / "seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = (ROOT / "profiles" / "default.yaml").read_text()
    assert mod.workspace_seed(text) == 0
    changed = mod.SEED_LINE.sub(lambda m: f"{m.group(1)}7", text, count=1)
    assert mod.workspace_seed(changed) == 7
    assert [a for a, b in zip(text.splitlines(), changed.splitlines(), strict=True) if a != b] == [
        next(line for line in text.splitlines() if line.startswith("  seed:"))
    ]
    with pytest.raises(SystemExit, match="no common.seed"):
        mod.workspace_seed("common:\n  task: haze\n")


def test_collect_summarises_the_copies_without_running_anything(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("seeds_script", ROOT / "scripts" / "seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    for s, v in ((0, 0.46), (1, 0.50)):
        _run(tmp_path / "work" / f"seed-{s}", v, 0.42, 0.3)
    monkeypatch.setattr(mod, "run_seed", lambda *a, **k: pytest.fail("--collect ran a seed"))
    out = tmp_path / "out"
    argv = ["seeds.py", "--collect", "--seeds", "0", "1", "--work", str(tmp_path / "work"), "--out", str(out)]
    monkeypatch.setattr("sys.argv", argv)
    mod.main()
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["seeds"] == [0, 1] and (out / "table.md").is_file()
    argv[4] = "7"  # a seed with no copy: said, not summarised as zeros
    with pytest.raises(SystemExit, match="seed-7/reports: no evaluation to collect"):
        mod.main()


def test_the_workspace_counts_as_up_to_date_when_only_inputs_would_run(monkeypatch):
    """`inputs` always runs (always_changed): that alone must not send seed 0 into a copy."""
    import subprocess
    from types import SimpleNamespace

    spec = importlib.util.spec_from_file_location("seeds_script", ROOT / "scripts" / "seeds.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    changed = '{"inputs": ["always changed"], "train": [{"changed deps": {}}]}'
    for status, rc, expected in (('{"inputs": ["always changed"]}', 0, True), ("{}", 0, True),
                                 (changed, 0, False), ("", 255, False)):  # fmt: skip
        result = SimpleNamespace(returncode=rc, stdout=status)
        monkeypatch.setattr(subprocess, "run", lambda *a, r=result, **k: r)
        assert mod.up_to_date(ROOT) is expected, status
