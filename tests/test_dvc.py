"""dvc.yaml against the code: every stage lists the code it runs, and writes where vat/layout.py says."""

import importlib.util
from pathlib import Path

import yaml

from vat.layout import DATA_ONLY, MAIN, METRICS, REPORTS_ONLY, SUMMARY

ROOT = Path(__file__).resolve().parents[1]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())


def _deps_tool():
    spec = importlib.util.spec_from_file_location("dvc_deps", ROOT / "scripts" / "dvc_deps.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_stage_lists_the_code_it_imports():
    tool = _deps_tool()
    missing = {}
    for name, deps in tool.stage_deps().items():
        files = tool.closure(name)
        assert f"stages/{name}.py" in files and "vat/layout.py" in files  # the closure is really found
        if gap := tool.uncovered(files, deps):
            missing[name] = gap
    assert not missing, f"dvc.yaml lacks deps (python3 scripts/dvc_deps.py --write): {missing}"


def test_a_missing_dep_is_found():
    """The check above fails on a planted gap: train's deps without its loss, or without its folder."""
    tool = _deps_tool()
    deps = tool.stage_deps()["train"]
    files = tool.closure("train")
    assert "vat/train/losses.py" in files and "vat/train/graph.py" in files
    assert tool.uncovered(files, [d for d in deps if d != "vat/train/losses.py"]) == ["vat/train/losses.py"]
    assert tool.uncovered(files, ["vat", "stages"]) == []  # a folder covers what is under it
    # a composite stage runs the stages of its RUNS: study's closure holds pseudolabel's rules
    assert "vat/labels/rules.py" in tool.closure("study")
    assert "vat/labels/rules.py" not in tool.closure("unpaired")


def test_outputs_are_where_the_layout_puts_them():
    for name, spec in DVC["stages"].items():
        body = spec.get("do", spec)
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
        outs += [next(iter(o)) for o in body.get("metrics", []) + body.get("plots", [])]
        if "foreach" in spec:  # one stage per row: under the stage's own folders
            home = [str(MAIN.out(name)), str(MAIN.report(name))]
            assert all(any(o.startswith(h + "/") for h in home) for o in outs), (name, outs)
            continue
        expected = [str(MAIN.out(name)), str(MAIN.report(name))]
        if name in REPORTS_ONLY:
            expected = [str(MAIN.report(name))]
        elif name in DATA_ONLY:
            expected = [str(MAIN.out(name))]
        assert outs == expected, name


def _out_covers(outs: list[str], path: str) -> bool:
    return any(path == o or path.startswith(o + "/") for o in outs)


def test_every_stage_summary_is_declared_and_its_full_record_is_an_out():
    """DVC's metrics are the summaries (vat/eval/summary.py: a short `dvc metrics show`); each
    full record, metrics.json beside its summary, is a stage's out (not a DVC metric)."""
    declared = set(DVC["metrics"])
    for name, spec in DVC["stages"].items():
        body = spec.get("do", spec)
        declared |= {next(iter(m)) for m in body.get("metrics", [])}
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]
        summary, metrics = str(MAIN.summary(name)), str(MAIN.metrics(name))
        if "foreach" in spec:
            row = f"{MAIN.report(name)}/${{{'key' if name == 'ablate' else 'item'}}}"
            summary, metrics = f"{row}/{SUMMARY}", f"{row}/{METRICS}"
        if name not in ("report", *DATA_ONLY):
            assert summary in declared, name
            assert _out_covers(outs, metrics), name
    assert all(Path(m).name == SUMMARY for m in declared), sorted(declared)
    plots = {next(iter(p)) for p in DVC["plots"]}
    for stage in ("train", "unpaired", "classify/train"):
        assert f"reports/{stage}/live/plots/metrics" in plots
