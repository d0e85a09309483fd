"""SIGKILL a stage mid-write, run it again: its outputs are as an uninterrupted run left them.

On the tiny profile in a temporary copy of the repository. Each stage runs in a child process
that kills itself (SIGKILL) while its Nth file is written, after the file's bytes are in a
temporary file and before the rename: deterministic, no sleep. Then the previous outputs
must be untouched, and the next run must leave outputs equal to the uninterrupted run's
and no temporary file or folder anywhere (a commit killed between its renames is tested
in test_atomic.py).
"""

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from conftest import copy_repo

pytestmark = pytest.mark.e2e

CHILD = """
import contextlib, os, signal, sys
import vat.io
from stages.cli import app

kill_at, stages = int(sys.argv[1]), sys.argv[2:]
real, calls = vat.io.atomic_path, [0]

@contextlib.contextmanager
def dying(path):  # every vat.io writer (images, json, torch) goes through atomic_path
    with real(path) as tmp:
        yield tmp
        calls[0] += 1
        if calls[0] == kill_at:  # the file is written under its temporary name, not renamed
            os.kill(os.getpid(), signal.SIGKILL)

vat.io.atomic_path = dying
for stage in stages:
    code = app(args=stage.split(), standalone_mode=False)  # friendly_errors' exit 2 is returned
    if code:
        sys.exit(code)
"""

# Where each stage is killed: the Nth file written by vat.io. prepare, degrade, restore: an
# image of 16; train: after its first resume state, so the next run resumes from it.
KILLS = {"prepare": 5, "degrade": 5, "restore": 3, "train": 2}
SMALLER = {
    "prepare": {"embedded": {"n_train": 8, "n_val": 4, "n_test": 4}},
    "pseudolabel": {"conf": 0.001},  # D trained on 8 images finds no box at tiny's 0.01
    "train": {"epochs": 1, "checkpoint_every": 2},  # as tiny had it: the kill finds a resume state
}
UPSTREAM = ["prepare", "degrade", "train_restorer", "restore", "train_detector", "pseudolabel"]
TIMES = (
    "seconds",
    "train_seconds",
    "images_per_s",
    "images_per_second",
    "d_images_per_s",
    "timestamp",
)  # change run to run
RESUMED = ("resumed_at_step",)  # the rerun of a killed train says it resumed; the first did not


def _vat(dst, env, kill_at, *stages):
    return subprocess.run([sys.executable, "-c", CHILD, str(kill_at), *stages], cwd=dst, env=env,
                          capture_output=True, text=True)  # fmt: skip


def _json(path: Path):
    def clean(o):
        if isinstance(o, dict):
            return {k: clean(v) for k, v in o.items() if k not in TIMES + RESUMED}
        return [clean(v) for v in o] if isinstance(o, list) else o

    return clean(json.loads(path.read_text()))


def _content(path: Path):
    """What must be equal between runs: tensors of a checkpoint (torch.save's bytes name the
    temporary file), JSON without timings, DVCLive's tables without their timestamps."""
    if path.suffix == ".pt":
        obj = torch.load(path, map_location="cpu", weights_only=True)
        sd = obj.get("state_dict", obj.get("model", obj)) if isinstance(obj, dict) else obj
        return {k: v.tolist() for k, v in sd.items() if isinstance(v, torch.Tensor)}
    if path.suffix == ".json":
        return _json(path)
    if path.suffix == ".tsv":
        rows = [r.split("\t") for r in path.read_text().splitlines()]
        keep = [i for i, h in enumerate(rows[0]) if h != "timestamp"]
        return [[r[i] for i in keep] for r in rows]
    return path.read_bytes()


def _number(x):
    if isinstance(x, bool) or not isinstance(x, (int, float, str)):
        return None
    try:
        return float(x)
    except ValueError:
        return None


def _same(a, b) -> bool:
    """Equal, except that float numbers may differ by float32 rounding: the resumed process
    recomputes the steps after its state in another process, where the CPU kernels may sum in
    another order (weights and logged losses then differ in the 7th digit; DVCLive keeps 6
    decimals). In-process resume is bit-identical (tests/test_train.py)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    x, y = _number(a), _number(b)
    if x is not None and y is not None and isinstance(a, str) == isinstance(b, str):
        return math.isclose(x, y, rel_tol=1e-5, abs_tol=2e-6)
    return a == b


def _outputs(dst: Path, stage: str) -> dict:
    folders = [dst / "data" / stage, dst / "reports" / stage]
    return {
        str(p.relative_to(dst)): _content(p) for f in folders for p in sorted(f.rglob("*")) if p.is_file()
    }


def _temporaries(dst: Path) -> list[str]:
    return sorted(str(p.relative_to(dst)) for p in (dst / "data").rglob("*") if ".tmp-" in p.name) + sorted(
        str(p.relative_to(dst)) for p in (dst / "reports").rglob("*") if ".tmp-" in p.name
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    dst = tmp_path_factory.mktemp("kill")
    env = copy_repo(dst)
    assert _vat(dst, env, 0, "profile tiny").returncode == 0
    params = yaml.safe_load((dst / "params.yaml").read_text())  # the tiny profile, smaller still
    for section, change in SMALLER.items():
        for k, v in change.items():
            params[section][k] = params[section][k] | v if isinstance(v, dict) else v
    (dst / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    proc = _vat(dst, env, 0, *UPSTREAM, "train")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dst, env


@pytest.mark.parametrize("stage", list(KILLS))
def test_a_stage_killed_mid_write_keeps_the_old_outputs_and_the_next_run_completes_them(repo, stage):
    dst, env = repo
    before = _outputs(dst, stage)
    assert len(before) >= 3
    killed = _vat(dst, env, KILLS[stage], stage)
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert _outputs(dst, stage) == before  # nothing new beside the old, nothing lost
    assert any(f".{stage}.tmp-" in t for t in _temporaries(dst))  # it was killed mid-write
    again = _vat(dst, env, 0, stage)
    assert again.returncode == 0, again.stderr[-3000:]
    after = _outputs(dst, stage)
    assert after.keys() == before.keys()
    assert _same(after, before)
    assert _temporaries(dst) == []
    if stage == "train":
        said = re.search(
            r"train: resuming at step (\d+) of (\d+) from data/train\.resume/state\.pt",
            again.stdout + again.stderr,
        )
        assert said and 0 < int(said[1]) <= int(said[2]), again.stderr
        assert json.loads((dst / "reports/train/metrics.json").read_text())["resumed_at_step"] == int(said[1])
        assert not (dst / "data/train.resume").exists()
