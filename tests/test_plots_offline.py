"""`dvc plots show` offline: the page from vat/plots_template.py renders in headless Chromium
with every network request refused; DVC's own page (vega from a CDN) renders nothing there."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.skipif(
    shutil.which("chromium") is None,
    reason="no chromium binary; install Debian's chromium: apt-get install -y chromium",
)

ROOT = Path(__file__).resolve().parents[1]


def _sh(cmd, cwd):
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, shell=True, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout}\n{proc.stderr}"


def _render(html: Path, tmp: Path) -> tuple[np.ndarray, str]:
    """Screenshot (grey levels) and Chromium's log of ``html`` with the network unreachable."""
    png = tmp / f"{html.parent.name}.png"
    proc = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        + ["--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>"]  # no network at all
        + ["--disable-background-networking", "--disable-component-update", "--disable-sync"]
        + ["--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp / 'chromium'}"]
        + [f"--screenshot={png}", "--window-size=900,700", "--virtual-time-budget=15000", html.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert png.is_file(), f"chromium wrote no screenshot:\n{proc.stderr[-2000:]}"
    return np.asarray(Image.open(png).convert("L"), dtype=np.float32), proc.stderr


def test_dvc_plots_show_renders_with_no_network(tmp_path):
    from vat.plots_template import write

    repo = tmp_path / "repo"
    repo.mkdir()
    _sh("git init -q && dvc init -q", repo)
    rows = "\n".join(f"{s}\t{1.0 / (s + 1):.4f}" for s in range(20))
    (repo / "loss.tsv").write_text("step\tloss\n" + rows + "\n")
    (repo / "dvc.yaml").write_text("plots:\n  - loss.tsv:\n      x: step\n      y: loss\n")
    _sh("dvc plots show -o cdn", repo)  # DVC's own page: vega from a CDN
    assert "cdn.jsdelivr.net" in (repo / "cdn/index.html").read_text()
    shutil.copy(ROOT / ".dvc/config", repo / ".dvc/config")  # the repository's: our template
    write(repo / ".dvc/plots/offline.html")
    _sh("dvc plots show -o offline", repo)
    page = (repo / "offline/index.html").read_text()
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed" in page
    ours, log = _render(repo / "offline/index.html", tmp_path)
    theirs, _ = _render(repo / "cdn/index.html", tmp_path)
    drawn = (ours < 200).mean()  # axes, labels and the line: dark pixels on white
    assert drawn > 0.002 and ours.std() > 5, "the offline page drew nothing"
    assert (theirs < 200).mean() < drawn / 5  # the CDN page, offline, stays blank: the check can fail
    assert "Uncaught" not in log and "ERR_" not in log.replace("ERR_PROXY_CONNECTION_FAILED", "")
