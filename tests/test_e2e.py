"""One end-to-end `dvc repro` on the tiny profile, in a temporary copy of the repository."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import copy_repo

from vat.data.manifest import read_manifest
from vat.models.translator import load_translator

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _sh(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A copy of the tracked and untracked (not ignored) files, run on the tiny profile."""
    dst = tmp_path_factory.mktemp("repo")
    env = copy_repo(dst)
    _sh("vat profile tiny", dst, env)
    out = _sh("dvc repro", dst, env)
    return dst, env, out


def test_dag_has_every_stage_in_order(repo):
    dst, env, _ = repo
    dag = _sh("dvc dag --dot", dst, env)
    for edge in [
        ("prepare", "degrade"),
        ("degrade", "train_restorer"),
        ("train_restorer", "restore"),
        ("degrade", "restore"),
        ("prepare", "train_detector"),
        ("restore", "evaluate"),
        ("train_detector", "evaluate"),
        ("restore", "pseudolabel"),
        ("train_detector", "pseudolabel"),
        ("pseudolabel", "train"),
        ("train", "evaluate"),
        ("pseudolabel", "unpaired"),
        ("unpaired", "evaluate"),
        ("pseudolabel", "ablate@no_mle"),
        ("ablate@no_mle", "evaluate"),
        ("ablate@online", "report"),
        ("train_detector", "study@dcp"),
        ("study@dcp", "evaluate"),
        ("evaluate", "report"),
        ("classify", "report"),
        ("train", "real"),
        ("unpaired", "real"),
        ("real", "report"),
    ]:
        assert f'"{edge[0]}" -> "{edge[1]}";' in dag


def test_outputs_are_consistent(repo):
    dst, _, _ = repo
    clean = read_manifest(dst / "data/prepare/manifest.parquet")
    low = read_manifest(dst / "data/degrade/manifest.parquet")
    assert len(clean.records) == 24 + 8 + 8
    assert [r.image_id for r in low.records] == [r.image_id for r in clean.records]
    assert [r.boxes for r in low.records] == [r.boxes for r in clean.records]
    assert sum(len(r.boxes) for r in clean.records) > 0
    for r in low.records:
        assert (dst / r.path).is_file() and r.path.startswith(f"data/degrade/images/{r.split}/")
    metrics = json.loads((dst / "reports/degrade/metrics.json").read_text())
    assert metrics["images"] == 40 and 0.05 <= metrics["beta_min"] <= metrics["beta_max"] <= 0.14
    assert (dst / "reports/prepare/samples.png").stat().st_size > 1000
    # haze brightens dark pixels towards the airlight: degraded differs from clean
    from vat.io import load_rgb

    a, b = load_rgb(dst / clean.records[0].path), load_rgb(dst / low.records[0].path)
    assert a.shape == b.shape and np.abs(a.astype(int) - b.astype(int)).mean() > 5


def test_models_and_evaluation_are_written(repo):
    dst, _, _ = repo
    restored = read_manifest(dst / "data/restore/manifest.parquet")
    assert len(restored.records) == 40 and all((dst / r.path).is_file() for r in restored.records)
    assert (dst / "data/train_detector/detector.pt").stat().st_size > 100_000
    spec = json.loads((dst / "data/train_restorer/restorer.json").read_text())
    assert spec["arch"] == "aodnet" and (dst / spec["weights"]).is_file()
    t = json.loads((dst / "reports/train/metrics.json").read_text())
    t_params = t["params_inference"]
    tr = json.loads((dst / "reports/train_restorer/metrics.json").read_text())
    assert tr["trained"] and len(tr["history"]) == 2 and tr["images"] == 8
    ev = json.loads((dst / "reports/evaluate/metrics.json").read_text())
    rows = {"no_mle", "w8", "online"}  # tiny's three rows (profiles/tiny.yaml drops the others)
    assert set(yaml.safe_load((dst / "params.yaml").read_text())["ablate"]) == rows
    assert ev["images"] == 8 and len(ev["methods"]) == 6 + len(rows) + 2  # study: dcp
    for r in ("dcp",):
        st = json.loads((dst / f"reports/study/{r}/metrics.json").read_text())
        assert st["restorer"] == r and st["steps"] == 2 * 6 and "psnr_restored" in st["test"]
        _, meta = load_translator(dst / f"data/study/{r}/train/translator.pt")
        assert meta["restorer"]["arch"] == r  # the checkpoint names the R it was trained behind
        assert f"Study R={r}: VaT D(T_A(I_F))" in ev["methods"]
    assert (dst / "reports/report/fig8_restorers.png").is_file() and (
        dst / "reports/report/fig8_width.png"
    ).is_file()
    assert {"VaT D(T_A(I_F)), val-selected", "VaT, last epoch", "Unpaired CycleGAN-style D(T_A(I_F))"} <= set(
        ev["methods"]
    )
    assert {f"Ablation {r}" for r in rows} <= set(ev["methods"])
    for r in rows:
        a = json.loads((dst / f"reports/ablate/{r}/metrics.json").read_text())
        assert a["row"] == r and a["steps"] == 2 * 6 and (dst / f"data/ablate/{r}/translator.pt").is_file()
    assert (
        json.loads((dst / "reports/ablate/no_mle/metrics.json").read_text())["train_params"]["use_mle"]
        is False
    )
    un = json.loads((dst / "reports/unpaired/metrics.json").read_text())
    assert (
        un["steps"] == 2 * 6
        and un["params_inference"] == t_params
        and (dst / "data/unpaired/last.pt").is_file()
    )
    assert t["steps"] == 2 * 6 and len(t["val"]) == 2 and t["selected"]["selected"] == "val"
    assert (dst / "data/train/translator.pt").is_file() and (dst / "data/train/last.pt").is_file()
    assert (dst / "reports/train/live/plots/metrics/train/total.tsv").is_file()
    assert not (dst / "data/train.resume").exists()
    md = (dst / "reports/report/report.md").read_text()
    assert "| VaT |" in md and (dst / "reports/report/report.html").is_file()
    not_run = [line for line in md.splitlines() if "not run" in line]  # only Table 4 rows tiny leaves out
    assert not_run and all("(add ablate." in line or "to classify.rows)" in line for line in not_run), not_run
    assert (
        "| CycleGAN-style unpaired | " in md
        and "| dcp |" in md
        and "`study@dcp`" in md
        and "| vat-w8 |" in md
    )
    assert "`online` (`train.labels: online`" in md
    assert all(0 <= m["map50"] <= 1 for m in ev["methods"].values())
    assert (dst / "reports/evaluate/grid.png").stat().st_size > 10_000
    assert ev["niqe"]["patch"] == 32 and all(m["niqe"] > 0 for m in ev["methods"].values())
    assert "| Vanilla D(I_LQ) |" in (dst / "reports/evaluate/table.md").read_text()
    pl = json.loads((dst / "reports/pseudolabel/metrics.json").read_text())
    assert pl["images"] == {"degraded": 12, "clean": 12}
    import pyarrow.parquet as pq

    boxes = pq.read_table(dst / "data/pseudolabel/boxes.parquet").to_pylist()
    assert {b["domain"] for b in boxes} <= {"degraded", "clean"} and len(boxes) == pl["boxes"]
    assert all(b["weight"] == 0 for b in boxes if not b["kept"])


def _tiles_show_images(png: Path, ncols: int) -> None:
    """Each picture column's first tile has structure (pixel std) and is not a white page (the
    gate map, column 2, may be flat)."""
    from vat.io import load_rgb

    img = load_rgb(png).astype(float)
    w = img.shape[1] // ncols
    for c in (0, 1, 3):
        tile = img[6:50, c * w + 6 : (c + 1) * w - 6]
        assert tile.std() > 8 and tile.mean() < 240, f"{png.name} column {c}: std {tile.std():.1f}"


def test_tiny_gives_small_but_real_results(repo):
    """Loose floors that a broken stage cannot pass (a zero mAP, an R worse than its input,
    no pseudo-labels, white sample pictures)."""
    dst, _, _ = repo
    det = json.loads((dst / "reports/train_detector/metrics.json").read_text())
    assert det["test_clean_map50"] > 0.005 and det["val_clean_map50"] > 0.005
    details = json.loads((dst / "reports/train_detector/details.json").read_text())
    assert "history" not in det and len(details["history"]) == 40  # long tables beside the metrics
    tr = json.loads((dst / "reports/train_restorer/metrics.json").read_text())
    assert tr["psnr_restored"] > tr["psnr_degraded"]
    pl = json.loads((dst / "reports/pseudolabel/metrics.json").read_text())
    assert pl["after_filter"]["boxes"] > 0 and pl["auroc_correct_vs_wrong"]["epistemic"] is not None
    for stage in ("train", "unpaired"):
        _tiles_show_images(dst / f"reports/{stage}/samples.png", ncols=4)
    md = (dst / "reports/report/report.md").read_text()
    assert "Profile `tiny`: 40 images" in md


def test_second_repro_runs_nothing(repo):
    """Only `inputs` runs again (it always does: it looks at your files), and its fingerprints
    come out the same, so nothing after it reruns."""
    import re

    dst, env, _ = repo
    out = _sh("dvc repro", dst, env)
    assert re.findall(r"Running stage '(\w+)'", out) == ["inputs"]
    status = _sh("dvc status", dst, env)
    assert "always changed" in status and not re.search(r"^(?!inputs:)\w+:", status, re.M), status


def test_the_same_training_under_torchrun_with_two_processes(repo):
    """`torchrun --nproc_per_node 2 -m stages train` (DDP, gloo) ends near the single-process
    weights: the same global batches, gradients equal up to float rounding (runs last: it
    rewrites data/train of the copy)."""
    import torch

    from vat.models.translator import load_translator

    dst, env, _ = repo
    single = {k: v.clone() for k, v in load_translator(dst / "data/train/last.pt")[0].state_dict().items()}
    env = env | {"OMP_NUM_THREADS": "1"}
    _sh(f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2 -m stages train "
        "--device cpu --fresh", dst, env)  # fmt: skip
    ddp, meta = load_translator(dst / "data/train/last.pt")
    assert meta["epoch"] == 2
    metrics = json.loads((dst / "reports/train/metrics.json").read_text())
    assert metrics["device"] == "2 x cpu" and metrics["steps"] == 12
    for k, v in ddp.state_dict().items():
        scale = float(single[k].abs().max()) + 1e-8
        assert torch.allclose(v, single[k], rtol=0, atol=2e-3 * scale), k


def test_task2_classification_runs_the_pipeline_again_and_is_reported(repo):
    """The classify stage: low-light crops, SCI, a small CNN, VaT and its Table 4 rows, accuracy and ROC."""
    dst, _, _ = repo
    s = json.loads((dst / "reports/classify/metrics.json").read_text())
    assert s["task"] == "classify" and s["restorer"] == "sci" and s["vision_model"] == "small_cnn"
    assert s["images"] == {"train": 24, "val": 8, "test": 8} and s["scored_images"] == 8
    rows = ["no_mle"]  # tiny's Task 2 row
    assert s["rows"] == rows and "val_accuracy" in s["selected"]
    names = {"Clean D(I_HQ)", "Vanilla D(I_LQ)", "Baseline D(R(I_LQ)), R=sci"}
    names |= {"VaT D(T_A(I_F)), val-selected"}
    assert names | {f"Ablation {r}" for r in rows} <= set(s["methods"])
    assert all(0 <= m["accuracy"] <= 1 for m in s["methods"].values())
    ev = json.loads((dst / "reports/classify/evaluate/metrics.json").read_text())
    assert ev["metric"] == "accuracy" and set(ev["methods"]["Vanilla D(I_LQ)"]["auc"]) == set(s["classes"])
    for r in rows:
        m = json.loads((dst / f"reports/classify/ablate/{r}/metrics.json").read_text())
        assert m["row"] == r and m["steps"] == 2 * 3
        assert (dst / f"data/classify/ablate/{r}/translator.pt").is_file()
    clean = read_manifest(dst / "data/classify/prepare/manifest.parquet")
    assert all(r.label >= 0 and not r.boxes for r in clean.records)
    assert (dst / "reports/classify/evaluate/roc.png").stat().st_size > 10_000
    assert not list((dst / "data").glob("classify.resume/**/*.pt"))  # resume states go when done
    md = (dst / "reports/report/report.md").read_text()
    assert "## Low-light classification, Task 2" in md and "../classify/evaluate/roc.png" in md
    assert "Task 2. The paper's ordering, step by step" in md


def test_real_set_without_clean_pairs_is_scored_and_reported(repo):
    dst, _, _ = repo
    m = json.loads((dst / "reports/real/metrics.json").read_text())
    assert set(m) == {"fog"} and m["fog"]["images"] == 8 and m["fog"]["degrade"] == "haze_depth"
    rows = m["fog"]["methods"]
    names = {"Vanilla D(I_LQ)", "Unpaired CycleGAN-style D(T_A(I_F))", "VaT D(T_A(I_F)), val-selected"}
    assert names <= set(rows)
    assert all(0 <= v["map50"] <= 1 and v["niqe"] > 0 for v in rows.values())
    assert (dst / "reports/real/fog/grid.png").is_file()
    md = (dst / "reports/report/report.md").read_text()
    assert "## Test sets without clean pairs" in md and "### `fog`: 8 images" in md
