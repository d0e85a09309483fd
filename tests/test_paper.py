"""`vat profile paper` and `vat profile paper_dark` end to end, shrunk to CPU size, on a researcher's
own copy of the paper's data (tests/paper_folders.py): VOC images of mixed sizes and aspect ratios
without ImageSets, RTTS and ExDark as real sets, CIFAR-10 batches, and stand-in files in the public
weights' formats. What is tested is that every stage works on mixed sizes and that the run says
what it is; the scores of random stand-in models mean nothing."""

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import copy_repo
from paper_folders import make_cifar10, make_exdark, make_voc, save_public_weights

from vat.data.manifest import read_manifest

pytestmark = pytest.mark.e2e


def _sh(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def shrink(params: Path, profile: str) -> None:
    """The profile at CPU size: few images (the folders), small inputs, one epoch, vat-w4, one
    ablation row, one study restorer; restore in tiles smaller than the images.
    ``paper`` takes the stand-in dehazer.pth and YOLO weights as given and runs Task 2 on the
    CIFAR-10 batches with a small CNN as D (CLIP ViT-B/32 is too large for a CPU test);
    ``paper_dark`` trains its YOLOv5nu for one epoch on SCI's stand-in and scores ExDark; its
    optional parts (Task 2, ablation rows, restorer study) are `paper`'s code and run there only."""
    p = yaml.safe_load(params.read_text())
    p["prepare"]["split_ratios"] = [0.6, 0.2, 0.2]
    p["restore"] |= {"tile": 64, "overlap": 8}
    p["train_detector"] |= {"imgsz": 96, "epochs": 1, "batch": 8, "warmup_epochs": 0.0, "close_mosaic": 0}
    p["pseudolabel"] |= {"k": 3, "conf": 0.3 if profile == "paper" else 0.001}
    p["train"] |= {"translator": "vat-w4", "epochs": 1, "batch": 2, "crop": 64, "lr": 0.001,
                   "checkpoint_every": 4, "log_every": 2}  # fmt: skip
    p["ablate"] = {"gate": {"mixup": "none"}}
    p["evaluate"]["niqe_patch"] = 16
    if profile == "paper":
        p["train_restorer"]["weights"] = "data/external/dehazer.pth"
        p["train_detector"]["weights"] = "data/external/yolo/detector.pt"
        p["study"]["restorers"] = ["dcp"]
        ch = p["classify"]["changes"]
        ch["train_detector"] = {"model": "small_cnn", "weights": None, "imgsz": 32, "epochs": 1, "batch": 16}
        ch["train"] = {"crop": None, "batch": 4, "epochs": 1}
        p["classify"]["rows"] = ["gate"]
    else:  # what paper_dark adds is its data, R and D: the optional parts run in `paper` only
        p["classify"], p["ablate"], p["study"]["restorers"] = None, {}, []
    params.write_text(yaml.safe_dump(p, sort_keys=False))


def _external(root: Path) -> None:
    make_voc(root / "VOC2007", 20)
    make_voc(root / "RTTS", 5, seed=3, haze=True)
    make_exdark(root / "ExDark", 5)
    make_cifar10(root / "cifar10", 40, 12)
    save_public_weights(root)


@pytest.fixture(scope="module")
def external(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    _external(root)
    return root


def _run(tmp_path_factory, external, profile):
    dst = tmp_path_factory.mktemp(profile)
    env = copy_repo(dst)
    (dst / "data/external").symlink_to(external, target_is_directory=True)
    _sh(f"vat profile {profile}", dst, env)
    shrink(dst / "params.yaml", profile)
    out = _sh("dvc repro", dst, env)
    return dst, env, out


@pytest.fixture(scope="module")
def paper(tmp_path_factory, external):
    return _run(tmp_path_factory, external, "paper")


@pytest.fixture(scope="module")
def paper_dark(tmp_path_factory, external):
    return _run(tmp_path_factory, external, "paper_dark")


def _metrics(dst: Path, stage: str) -> dict:
    return json.loads((dst / "reports" / stage / "metrics.json").read_text())


def test_paper_runs_on_mixed_sizes(paper):
    dst, _, out = paper
    m = read_manifest(dst / "data/prepare/manifest.parquet")
    assert len({(r.width, r.height) for r in m.records}) >= 4
    for stage in ("train", "unpaired", "evaluate", "real", "study/dcp"):
        assert (dst / "reports" / stage / "metrics.json").is_file(), stage
    assert _metrics(dst, "real")["RTTS"]["images"] == 5
    assert _metrics(dst, "classify")["source"] == "cifar10"
    assert (dst / "reports/report/report.md").is_file()


def test_paper_says_its_weak_links_where_they_happen_and_in_the_report(paper):
    """Random stand-in weights: R lowers PSNR and D scores 0 on clean images; VOC without
    ImageSets is split by ratios. Each is a warning in its stage's metrics, printed loudly, and
    a row of the report's weak-links table."""
    dst, _, out = paper
    assert "ImageSets" in _metrics(dst, "prepare")["warnings"][0]
    rs = _metrics(dst, "train_restorer")
    assert rs["psnr_restored"] < rs["psnr_degraded"] and "lowers test PSNR" in rs["warnings"][0]
    assert "min_clean_score" in _metrics(dst, "train_detector")["warnings"][0]
    assert "WARNING train_restorer:" in out and "WARNING train_detector:" in out
    report = (dst / "reports/report/report.md").read_text()
    weak = report[report.index("## Weak links") :].split("\n## ")[0]
    for stage in ("prepare", "train_restorer", "train_detector"):
        assert f"`{stage}`" in weak
    assert "the cifar10 source" in report and "real test sets without clean pairs are not built" not in report
    assert "R: aodnet, given (used as is: `data/external/dehazer.pth`)" in report
    assert "the voc dataset" in report and "embedded road scenes" not in report


def test_paper_dark_runs_on_mixed_sizes(paper_dark):
    dst, _, out = paper_dark
    m = read_manifest(dst / "data/degrade/manifest.parquet")
    assert len({(r.width, r.height) for r in m.records}) >= 4
    assert _metrics(dst, "train_detector")["trained"] and _metrics(dst, "train_restorer")["arch"] == "sci"
    assert _metrics(dst, "real")["ExDark"]["images"] == 5
    report = (dst / "reports/report/report.md").read_text()
    assert "Profile `paper_dark`, task dark" in report and "R: sci, given (used as is" in report
    assert "`ExDark`: 5 images" in report and "Not run: Task 2 is off" in report
    assert "(add gate to classify.rows)" not in report
