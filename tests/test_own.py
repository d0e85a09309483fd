"""`vat profile own` end to end: a user's photographs without labels, their detector with its
own classes, their restorer's weights; labels only to select on and to score on."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import copy_repo
from own_folders import D_NAMES, make_own, save_own_models, save_yolov5_repository_detector
from PIL import Image
from test_yolov5 import needs_reference

from vat.data.manifest import read_manifest
from vat.models.translator import load_translator

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.e2e


def _sh(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, shell=True)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _small(params: Path) -> None:
    data = yaml.safe_load(params.read_text())
    data["prepare"]["folder"]["test"] = {
        "source": "yolo",
        "root": "test",
        "annotations": None,
        "split": "all",
    }
    data["train_detector"]["imgsz"] = 128
    data["pseudolabel"] |= {"k": 3, "conf": 0.3}
    data["train"] |= {"translator": "vat-w4", "epochs": 2, "batch": 2, "crop": 64, "lr": 0.001}
    data["evaluate"]["niqe_patch"] = 16
    params.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def own(tmp_path_factory):
    dst = tmp_path_factory.mktemp("own")
    env = copy_repo(dst)
    make_own(dst / "data/own")
    save_own_models(dst / "data/own")
    _sh("vat profile own", dst, env)
    _small(dst / "params.yaml")
    out = _sh("dvc repro", dst, env)
    return dst, env, out


def test_the_training_images_are_unlabelled_folders_and_the_rest_is_scored(own):
    dst, _, out = own
    m = read_manifest(dst / "data/prepare/manifest.parquet")
    train = m.split("train")
    assert {r.domain for r in train} == {"degraded", "clean"} and not any(r.boxes for r in train)
    assert len(m.split("val")) == 4 and len(m.split("test")) == 4 and all(r.boxes for r in m.split("test"))
    low = read_manifest(dst / "data/degrade/manifest.parquet")  # method none: the photographs as given
    assert {r.image_id for r in low.records} == {r.image_id for r in m.records if r.domain != "clean"}
    assert all(r.path.startswith("data/own/") for r in low.records)
    td = json.loads((dst / "reports/train_detector/metrics.json").read_text())
    assert td["class_map"]["mapped"]["motorcycle"] == "motorbike" and td["class_map"]["dropped"] == 2
    assert json.loads((dst / "data/train_detector/class_map.json").read_text())["d_names"] == D_NAMES
    pl = json.loads((dst / "reports/pseudolabel/metrics.json").read_text())
    assert pl["images"] == {"degraded": 12, "clean": 12} and "no labels" in pl["quality"]
    tr = json.loads((dst / "reports/train/metrics.json").read_text())
    assert tr["selected"]["selected"] == "val" and tr["degraded_images"] == 12


def test_evaluation_scores_the_labelled_test_set_without_clean_pictures(own):
    dst, _, out = own
    ev = json.loads((dst / "reports/evaluate/metrics.json").read_text())
    names = set(ev["methods"])
    assert "Clean D(I_HQ)" not in names and {"Vanilla D(I_LQ)", "VaT D(T_A(I_F)), val-selected"} <= names
    assert "Unpaired CycleGAN-style D(T_A(I_F))" in names and ev["images"] == 4
    vat = ev["methods"]["VaT D(T_A(I_F)), val-selected"]
    assert "psnr" not in vat and set(vat["ap50"]) == {"bicycle", "bus", "car", "motorbike", "person"}
    md = (dst / "reports/report/report.md").read_text()
    assert "Task 2 is off" in md and "motorcycle -> motorbike" in md and "12 degraded" in md
    assert "data/ablate" not in out or "ablate@" not in out  # no ablation row ran


def test_no_label_of_the_training_folders_is_ever_read(own, tmp_path):
    """Label files beside the unlabelled photographs (nonsense boxes) change nothing: the same
    manifest and, trained again, the same translator."""
    dst, env, _ = own
    make_own(dst / "data/own", scramble=True)  # the same images, plus label files
    assert list((dst / "data/own/degraded").glob("*.xml"))
    before = {k: v.clone() for k, v in load_translator(dst / "data/train/last.pt")[0].state_dict().items()}
    _sh("vat prepare && vat train --fresh", dst, env)
    after = load_translator(dst / "data/train/last.pt")[0].state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert not any(r.boxes for r in read_manifest(dst / "data/prepare/manifest.parquet").split("train"))


def test_browse_shows_the_unlabelled_photographs_with_d_own_pseudo_labels(own, tmp_path):
    """`vat browse` on a run without training labels: samples, pseudo-labels named by D's class
    map (motorcycle shows as the task's motorbike, a truck as a truck), no ground truth there."""
    import uuid

    dst, env, _ = own
    env = env | {"FIFTYONE_DATABASE_DIR": str(tmp_path / "db"), "FIFTYONE_DO_NOT_TRACK": "true",
                 "FIFTYONE_DATABASE_NAME": f"vat-test-{uuid.uuid4().hex[:8]}"}  # fmt: skip
    out = _sh("vat browse --no-launch --name own-run", dst, env)
    assert "browse: dataset 'own-run': 36 samples" in out  # 12 degraded x (degraded, restored) + 12 clean
    from vat.browse.dataset import pseudo_label_names

    names = pseudo_label_names(dst / "data/train_detector")
    assert names == ["person", "bicycle", "car", "motorbike", "airplane", "bus", "truck"]


def test_a_changed_photograph_reruns_what_reads_it(own, tmp_path):
    """DVC sees your files, not only the params naming them (stages/inputs.py): nothing changed,
    nothing reruns; one photograph fixed in place, prepare and what follows it rerun."""
    src, env, _ = own
    dst = tmp_path / "run"
    shutil.copytree(src, dst, symlinks=True)
    _sh("dvc repro degrade", dst, env)  # the other tests may have changed the folders: catch up
    out = _sh("dvc repro degrade", dst, env)
    assert "Stage 'prepare' didn't change" in out and "Stage 'degrade' didn't change" in out
    before = (dst / "data/prepare/inputs.json").read_text()
    photo = dst / "data/own/degraded/photo_000.jpg"
    pixels = np.asarray(Image.open(photo)).copy()
    pixels[:8, :8] = 255  # a corner fixed, the file rewritten under its name
    Image.fromarray(pixels).save(photo, quality=95)
    out = _sh("dvc repro degrade", dst, env)
    assert "Running stage 'prepare'" in out and "Running stage 'degrade'" in out
    assert (dst / "data/prepare/inputs.json").read_text() != before


@needs_reference
def test_an_original_yolov5_checkpoint_is_d(own, tmp_path):
    """The user's D is the YOLOv5 repository's own best.pt (COCO-style names, pickled modules):
    it loads through the restricted unpickler, its classes map, it pseudo-labels, and the
    translator trains through its anchor-based loss (in a copy of the run: the others keep theirs)."""
    src, env, _ = own
    dst = tmp_path / "run"
    shutil.copytree(src, dst, symlinks=True)
    save_yolov5_repository_detector(dst / "data/own/detector.pt")
    out = _sh("dvc repro train", dst, env)
    assert "Running stage 'train_detector'" in out and "Running stage 'train'" in out
    td = json.loads((dst / "reports/train_detector/metrics.json").read_text())
    assert td["family"] == "YOLOv5Detector" and td["class_map"]["mapped"]["motorcycle"] == "motorbike"
    pl = json.loads((dst / "reports/pseudolabel/metrics.json").read_text())
    assert pl["boxes"] > 0
    tr = json.loads((dst / "reports/train/metrics.json").read_text())
    assert 0 < tr["final_loss"]["mle"] < float("inf") and tr["steps"] > 0
    before = load_translator(src / "data/train/last.pt")[0].state_dict()
    after = load_translator(dst / "data/train/last.pt")[0].state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
