"""The summaries DVC shows (vat/eval/summary.py) stay short, and say what the full records say."""

import json
from pathlib import Path

import yaml

from vat.eval.summary import RULES, summary, write_metrics
from vat.layout import METRICS, STAGES, SUMMARY

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "reports"
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
MAX_NUMBERS = 8  # per summary: one row of `dvc metrics show`
MAX_COLUMNS = 24  # over every declared summary: the columns of `dvc metrics show`


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v}
    return out


def _stage(path: Path) -> str | None:
    """The rule of a committed full record: reports/.../<stage>/metrics.json, a row of ablate or
    study, a test set of real (evaluate's record); None for DVCLive's live/metrics.json."""
    parts = path.relative_to(REPORTS).parts[:-1]
    if parts[-1] in STAGES:
        return parts[-1]
    if len(parts) > 1 and parts[-2] in ("ablate", "study"):
        return parts[-2]
    if len(parts) > 1 and parts[-2] == "real":
        return "evaluate"
    return None


def _records() -> dict[Path, tuple[str, dict]]:
    """Every committed full record with its stage."""
    out = {}
    for p in sorted(REPORTS.rglob(METRICS)):
        if (stage := _stage(p)) is not None:
            out[p] = stage, json.loads(p.read_text())
    assert len(out) > 20, "the committed reports are missing"
    return out


def _declared() -> list[Path]:
    """The committed full records whose summaries dvc.yaml declares as metrics (foreach rows globbed)."""
    names = list(DVC["metrics"])
    for spec in DVC["stages"].values():
        names += [next(iter(m)) for m in spec.get("do", spec).get("metrics", [])]
    out = []
    for name in names:
        pattern = name.replace("${key}", "*").replace("${item}", "*").replace(SUMMARY, METRICS)
        out += sorted(ROOT.glob(pattern))
    return out


def test_every_summary_is_a_few_numbers_of_its_full_record():
    for path, (stage, record) in _records().items():
        flat = _flat(summary(stage, record))
        assert 0 < len(flat) <= MAX_NUMBERS, (path, flat)
        leaves = _flat(record)  # lists are left whole: a summary number is never in one
        for key, value in flat.items():
            assert isinstance(value, int | float) and not isinstance(value, bool), (path, key)
            assert value in leaves.values(), (path, key, value)


def test_the_declared_summaries_share_few_columns():
    declared = _declared()
    assert len(declared) >= 11, declared
    records, columns = _records(), set()
    for path in declared:
        stage, record = records[path]
        columns |= set(_flat(summary(stage, record)))
    assert len(columns) <= MAX_COLUMNS, sorted(columns)


def test_every_rule_finds_its_numbers_somewhere():
    """A rule's path with a typo finds nothing: each short name is found in some committed record
    (but the rows a stage does not score: Task 2 has no unpaired baseline, a real set no clean pair)."""
    found: dict[str, set[str]] = {s: set() for s in RULES}
    for stage, record in _records().values():
        s = summary(stage, record)
        for v in s.values() if stage == "real" else [s]:
            found[stage] |= set(v)
    not_scored = {"classify": {"unpaired"}, "real": {"clean"}}
    # the default trains one epoch, which selects without validating: no val score to find there
    not_scored |= {stage: {"val_score"} for stage in ("train", "unpaired", "ablate", "study")}
    for stage, rule in RULES.items():
        assert set(rule) - found[stage] == not_scored.get(stage, set()), stage
    for key in ("val_map50", "val_accuracy"):  # what a run of several epochs records
        assert summary("train", {"steps": 4, "selected": {"epoch": 2, key: 0.25}})["val_score"] == 0.25


def test_summary_values_by_hand():
    ev = json.loads((REPORTS / "evaluate" / METRICS).read_text())
    s = summary("evaluate", ev)
    assert s["vat"] == ev["methods"]["VaT D(T_A(I_F)), val-selected"]["map50"]
    baseline = next(v for k, v in ev["methods"].items() if k.startswith("Baseline D(R(I_LQ)), R="))
    assert s["baseline"] == baseline["map50"]
    record = {"methods": {"Clean D(I_HQ)": {"accuracy": 0.5, "mean_auc": 0.9}}, "steps": True}
    assert summary("classify", record) == {"clean": 0.5}  # Task 2 scores accuracy
    assert summary("train", record) == {}  # a bool is not a number
    real = {"fog": {"methods": {"Vanilla D(I_LQ)": {"map50": 0.2, "niqe": 4.0}}}}
    assert summary("real", real) == {"fog": {"vanilla": 0.2}}  # per test set


def test_write_metrics_writes_the_record_and_its_summary(tmp_path):
    record = {"steps": 3, "val": [{"epoch": 1, "val_map50": 0.1}], "selected": {"epoch": 1, "val_map50": 0.1}}
    write_metrics("train", record, tmp_path)
    assert json.loads((tmp_path / METRICS).read_text()) == record
    assert json.loads((tmp_path / SUMMARY).read_text()) == {"steps": 3, "val_score": 0.1}
