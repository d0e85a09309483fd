"""Shared test helpers (pytest puts tests/ on sys.path, so modules `from conftest import ...`)."""

import math

import pytest
import torch
from torch import nn

F32_EPS = torch.finfo(torch.float32).eps  # 1.19e-7


def f32_close(got: torch.Tensor, want: torch.Tensor, terms: int, rtol: float = 1e-5) -> bool:
    """Whether two float32 tensors are the same quantity computed in another summation order
    (a batch split or joined, another thread count, a layer recomputed): each value is a sum
    of about ``terms`` rounded terms, so the two may differ by a few eps * sqrt(terms) of the
    values' scale (the largest ``|want|``), not of each value (one near 0 is the difference
    of large terms). A wrong result differs by the scale itself."""
    atol = 8 * F32_EPS * math.sqrt(terms) * float(want.abs().max())
    return torch.allclose(got, want, rtol=rtol, atol=atol)


def lively_detector(yaml: str = "yolov8n.yaml", nc: int = 5, imgsz: int = 96, seed: int = 0):
    """A random-weight FrozenDetector that behaves like a trained one in two ways that matter
    for tests: BatchNorm statistics calibrated on one random batch (fresh ones make every
    activation vanish, so the output would not depend on the input), and class logits
    starting near 0 (scores around 0.5 rather than ultralytics' 1e-4 prior)."""
    from vat.models.detectors import FrozenDetector

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        det = FrozenDetector(yaml, nc=nc, imgsz=imgsz)
        with torch.no_grad():
            for m in det.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None  # cumulative average over the calibration batch
            nn.Module.train(det.model, True)  # bypass the wrapper's guard, on purpose, to calibrate
            det.model(torch.rand(4, 3, imgsz, imgsz))
            det.model.eval()
            for seq in det.head.cv3:
                seq[-1].bias.zero_()
    return det


def at(base):
    """A :class:`vat.layout.Layout` with every stage's data under ``base`` and its reports
    under ``base/reports``: the stages' own layout, in a test's folder."""
    from vat.layout import Layout

    return Layout(base, base / "reports")


def copy_repo(dst):
    """A copy of the repository's tracked and untracked (not ignored) files in ``dst``, as a
    new git repository, without the committed results under data/ and reports/ (their
    READMEs come along: they keep folders the pipeline needs); returns the environment that
    runs this venv's ``vat`` and ``dvc`` there."""
    import os
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    for f in files:
        # reports/seeds/ is an input (the report's measured spread, scripts/seeds.py), not an output
        committed_output = f.startswith(("data/", "reports/")) and not f.endswith("README.md")
        committed_output = committed_output and not f.startswith("reports/seeds/")
        if (root / f).is_file() and not committed_output:
            (dst / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / f, dst / f)
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    subprocess.run("git init -q && git add -A && git -c user.name=t -c user.email=t@t commit -qm init",
                   cwd=dst, env=env, shell=True, check=True, capture_output=True)  # fmt: skip
    return env


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny convolutions on a shared 2-core machine, where waking a second OpenMP thread per op costs
    more than the op (measured 6 s with one thread against 50-90 s with two while other jobs run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
