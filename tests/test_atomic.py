"""vat/atomic.py: a stage's folders change all together or not at all, even under SIGKILL."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from vat.atomic import atomic_dir, atomic_dirs, recover

ROOT = Path(__file__).resolve().parents[1]


def _tree(path: Path) -> dict[str, str]:
    """Every file under ``path`` (relative name -> text), hidden ones included."""
    return {str(p.relative_to(path)): p.read_text() for p in sorted(path.rglob("*")) if p.is_file()}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid runs nothing now
    return proc.pid


def _old_outputs(base: Path) -> None:
    """A stage's previous outputs: data/s (swapped whole) and reports/s, which holds another
    stage's reports (kept: merged into)."""
    (base / "data/s").mkdir(parents=True)
    (base / "data/s/a.txt").write_text("old a")
    (base / "data/s/gone.txt").write_text("old only")
    (base / "reports/s/other").mkdir(parents=True)
    (base / "reports/s/other/m.json").write_text("another stage's")
    (base / "reports/s/metrics.json").write_text("old metrics")


KEPT = {"other/m.json": "another stage's"}
OLD = {"data": {"a.txt": "old a", "gone.txt": "old only"}, "reports": KEPT | {"metrics.json": "old metrics"}}
NEW = {"data": {"a.txt": "new a", "b/c.txt": "new c"},
       "reports": KEPT | {"metrics.json": "new metrics", "samples.txt": "new"}}  # fmt: skip


def _write_new(data: Path, reports: Path) -> None:
    (data / "b").mkdir()
    (data / "a.txt").write_text("new a")
    (data / "b/c.txt").write_text("new c")
    (reports / "metrics.json").write_text("new metrics")
    (reports / "samples.txt").write_text("new")


def _state(base: Path) -> dict:
    return {"data": _tree(base / "data/s"), "reports": _tree(base / "reports/s")}


def _leftovers(base: Path) -> list[str]:
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if ".tmp-" in p.name)


def test_atomic_dirs_swap_and_merge_only_on_success(tmp_path):
    _old_outputs(tmp_path)
    with pytest.raises(ValueError):
        with atomic_dirs(tmp_path / "data/s", merge=[tmp_path / "reports/s"]) as (data, reports):
            _write_new(data, reports)
            raise ValueError
    assert _state(tmp_path) == OLD and _leftovers(tmp_path) == []
    with atomic_dirs(tmp_path / "data/s", merge=[tmp_path / "reports/s"]) as (data, reports):
        _write_new(data, reports)
    assert _state(tmp_path) == NEW and _leftovers(tmp_path) == []
    with atomic_dirs(tmp_path / "data/s", tmp_path / "reports/s") as (data, reports):  # both whole
        (data / "x").write_text("x")
    assert _state(tmp_path) == {"data": {"x": "x"}, "reports": {}}


# The commit's renames, in order: the journal into place, then (old aside, new in) per output:
# data/s, reports/s/metrics.json, reports/s/samples.txt (new: nothing to set aside).
COMMIT_RENAMES = 6
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    import vat.atomic as atomic

    base, kill_at = Path(sys.argv[1]), int(sys.argv[2])
    real, calls = os.replace, [0]

    def replace(src, dst):  # SIGKILL this process just before rename number kill_at
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        real(src, dst)

    with atomic.atomic_dirs(base / "data/s", merge=[base / "reports/s"]) as (data, reports):
        sys.path.insert(0, sys.argv[3])
        from test_atomic import _write_new
        _write_new(data, reports)
        atomic.os.replace = replace  # only the commit's renames are counted
""")


@pytest.mark.parametrize("kill_at", range(1, COMMIT_RENAMES + 2))
def test_a_commit_killed_at_any_rename_is_finished_or_undone_by_the_next_run(tmp_path, kill_at):
    """SIGKILL before each rename of the commit (and not at all): the next run of the stage sees
    the old outputs (killed before the journal) or the new ones, never a mix; nothing stays."""
    _old_outputs(tmp_path)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(tmp_path), str(kill_at), str(ROOT / "tests")],
                          cwd=ROOT, capture_output=True, text=True)  # fmt: skip
    killed = kill_at <= COMMIT_RENAMES
    assert proc.returncode == (-9 if killed else 0), proc.stderr
    recover(tmp_path / "data/s")  # what the next run of the stage does first
    recover(tmp_path / "reports/s")
    assert _state(tmp_path) == (OLD if kill_at == 1 else NEW)
    assert _leftovers(tmp_path) == []


def test_strays_of_dead_runs_are_removed_never_a_live_runs_or_another_stages(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    (tmp_path / "train").mkdir()
    strays = [f".train.tmp-{dead}-abc", f".train.tmp-{dead}-old", ".train.tmp-legacy"]
    kept = [f".train.tmp-{live}-abc", f".train_detector.tmp-{dead}-abc", f".train.resume.tmp-{dead}-x"]
    for name in strays + kept:
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text("x")
    (tmp_path / f".train.tmp-{dead}-commit.part").write_text("{")  # a journal killed while written
    with atomic_dir(tmp_path / "train") as tmp:
        (tmp / "new").write_text("y")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["train", *kept])
    assert _tree(tmp_path / "train") == {"new": "y"}


def test_a_journal_names_paths_relative_to_its_folder(tmp_path, monkeypatch):
    """The next run may start in another working directory (an absolute path, a moved checkout)."""
    _old_outputs(tmp_path)
    dead = _dead_pid()
    new = tmp_path / "data" / f".s.tmp-{dead}-xyz"
    new.mkdir()
    (new / "a.txt").write_text("new a")
    journal = tmp_path / "data" / f".s.tmp-{dead}-commit.json"
    journal.write_text(json.dumps({"steps": [[new.name, "s", f".s.tmp-{dead}-old"]], "shells": []}))
    monkeypatch.chdir(tmp_path / "reports")
    recover(Path("../data/s"))
    assert _tree(tmp_path / "data/s") == {"a.txt": "new a"} and _leftovers(tmp_path) == []


def test_a_state_file_half_written_by_a_killed_training_is_removed_and_the_whole_one_kept(tmp_path):
    from vat.io import save_torch
    from vat.train.resume import STATE_FORMAT, load_state

    resume = tmp_path / "train.resume"
    save_torch({"format": STATE_FORMAT, "fingerprint": "fp", "step": 4}, resume / "state.pt")
    half = resume / f".state.pt.tmp-{_dead_pid()}-abc.pt"
    half.write_bytes(b"PK\x03\x04 cut")
    state, stale = load_state(resume / "state.pt", "fp", fresh=False)
    assert state["step"] == 4 and stale is None
    assert sorted(p.name for p in resume.iterdir()) == ["state.pt"]
