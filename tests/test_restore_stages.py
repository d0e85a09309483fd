"""train_restorer / restore / evaluate as plain functions, on a few tiny embedded scenes."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import at

from stages import degrade, prepare, restore, train_restorer
from vat.config import CommonParams, load_section
from vat.data.manifest import read_manifest
from vat.errors import DataError, ParamsError
from vat.eval.scoring import EvaluateParams, evaluate
from vat.io import load_rgb, save_png

ROOT = Path(__file__).resolve().parents[1]
COMMON = CommonParams(
    seed=1, task="haze", profile="tiny", classes=["bicycle", "bus", "car", "motorbike", "person"]
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from stages.tools import profile

    base = tmp_path_factory.mktemp("stages")
    p = base / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, width=64, height=48, n_train=4, n_val=2, n_test=2))
    prepare.run(COMMON, pp, at(base))
    degrade.run(COMMON, load_section(degrade.DegradeParams, "degrade", p), at(base))
    params = {s: load_section(c, s, p) for c, s in [
        (train_restorer.TrainRestorerParams, "train_restorer"), (restore.RestoreParams, "restore"),
        (EvaluateParams, "evaluate")]}  # fmt: skip
    return base, params


def _train(base, params, **change):
    tp = replace(params["train_restorer"], **change)
    return train_restorer.run(COMMON, tp, at(base), device="cpu")


def _restore(base, params, out="restore"):
    L = at(base).moved("restore", base / out, base / f"r{out}")
    return restore.run(COMMON, params["restore"], L, device="cpu")


def test_identity_restore_reproduces_the_degraded_images(data):
    base, params = data
    m = _train(base, params, arch="identity")
    assert not m["trained"] and m["psnr_restored"] == m["psnr_degraded"]
    _restore(base, params)
    low = read_manifest(base / "degrade/manifest.parquet")
    out = read_manifest(base / "restore/manifest.parquet")
    assert [r.image_id for r in out.records] == [r.image_id for r in low.records]
    for a, b in zip(low.records, out.records, strict=True):
        assert np.array_equal(load_rgb(a.path), load_rgb(b.path))
        assert b.boxes == a.boxes


def test_a_restorer_that_lowers_psnr_warns_or_stops_keeping_the_previous_output(data, tmp_path):
    """#20: R's test PSNR below the degraded input's is never used silently: a warning in the
    metrics (train_restorer.if_worse: warn), or an error that leaves the previous R (stop)."""
    import torch

    from vat.models.restorers import AODNet

    base, params = data
    weights = tmp_path / "dehazer.pth"  # random AOD-Net weights in the public file's format
    net = AODNet().init_weights(torch.Generator().manual_seed(0))
    torch.nn.init.zeros_(net.e_conv5.bias)  # the public port's init: J = b, far below the input's PSNR
    torch.save(net.state_dict(), weights)
    _train(base, params, arch="identity")
    before = at(base).restorer_spec.read_text()
    with pytest.raises(DataError, match="lowers test PSNR.*if_worse: warn"):
        _train(base, params, arch="aodnet", weights=str(weights), if_worse="stop")
    assert at(base).restorer_spec.read_text() == before
    m = _train(base, params, arch="aodnet", weights=str(weights), if_worse="warn")
    assert m["psnr_restored"] < m["psnr_degraded"] and "lowers test PSNR" in m["warnings"][0]
    assert json.loads((base / "reports/train_restorer/metrics.json").read_text())["warnings"] == m["warnings"]
    assert _train(base, params, arch="identity")["warnings"] == []


def test_aodnet_training_writes_a_loadable_checkpoint(data):
    base, params = data
    m = _train(base, params, arch="aodnet", epochs=2)
    assert m["trained"] and [h["epoch"] for h in m["history"]] == [1, 2]
    spec = json.loads((at(base).restorer_spec).read_text())
    assert spec["arch"] == "aodnet" and Path(spec["weights"]).name == "restorer.pt"
    from vat.models.restorers.running import load_spec

    r = load_spec(at(base).restorer_spec)
    assert not any(p.requires_grad for p in r.parameters())


def test_folder_restorer_names_missing_ids_and_writes_nothing(data, tmp_path):
    base, params = data
    low = read_manifest(base / "degrade/manifest.parquet")
    for r in low.records[2:]:  # two training images were never restored
        save_png(load_rgb(r.path), tmp_path / f"{r.image_id}.png")
    _train(base, params, arch="folder", folder=str(tmp_path))
    with pytest.raises(DataError, match=f"2 .*{low.records[0].image_id}"):
        _restore(base, params, out="folder_out")
    assert not (base / "folder_out").exists()


def test_params_errors_are_named(data):
    base, params = data
    with pytest.raises(ValueError, match="folder"):
        replace(params["train_restorer"], arch="folder", folder=None)
    with pytest.raises(ParamsError, match="takes no weights"):
        _train(base, params, arch="dcp", weights="x.pt")


def test_evaluate_table_has_one_row_per_method(data):
    base, params = data
    from vat.models.detectors import FrozenDetector, save_detector

    det = FrozenDetector("yolov8n.yaml", nc=5, imgsz=64, names=COMMON.classes)
    L = at(base)
    L.models.mkdir(exist_ok=True)
    save_detector(det, L.models / "detector.pt")
    inputs = {"Clean": L.clean, "Vanilla": L.degraded}
    result = evaluate(COMMON, params["evaluate"], inputs, L, base / "rev", device="cpu")
    assert set(result["methods"]) == {"Clean", "Vanilla"} and result["images"] == 2
    assert "no clean train image of at least 64 px" in result["niqe"]["skipped"]  # 64 x 48 images: too small
    table = (base / "rev/table.md").read_text()
    assert "| Clean |" in table and "| Vanilla |" in table and "bicycle" in table


def test_classify_variant_with_sci_and_a_small_cnn(tmp_path):
    """Low-light classification: SCI trained unsupervised, a small CNN as D, accuracy table."""
    from stages import train_detector
    from stages.tools import profile

    p = tmp_path / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    common = replace(COMMON, task="classify")
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, n_train=12, n_val=4, n_test=4, crop_size=32))
    L = at(tmp_path)
    prepare.run(common, pp, L)
    dp = replace(load_section(degrade.DegradeParams, "degrade", p), method="lowlight")
    degrade.run(common, dp, L)
    tp = replace(load_section(train_restorer.TrainRestorerParams, "train_restorer", p), arch="sci", crop=32)
    m = train_restorer.run(common, tp, L, device="cpu")
    assert m["trained"] and m["arch"] == "sci"
    assert json.loads(L.restorer_spec.read_text())["arch"] == "sci"
    dtp = replace(load_section(train_detector.TrainDetectorParams, "train_detector", p), model="small_cnn",
                  epochs=2, imgsz=32)  # fmt: skip
    d = train_detector.run(common, dtp, L, device="cpu")
    assert d["trained"] and len(d["history"]) == 2 and 0 <= d["test_clean_accuracy"] <= 1
    inputs = {"Clean": L.clean, "Vanilla": L.degraded}
    result = evaluate(common, params_eval(p), inputs, L, tmp_path / "rev", device="cpu")
    assert result["metric"] == "accuracy" and result["images"] == 4
    assert "| Vanilla |" in (tmp_path / "rev/table.md").read_text()
    van = result["methods"]["Vanilla"]
    assert set(van["auc"]) == set(COMMON.classes) and "_roc" not in van
    known = [v for v in van["auc"].values() if v is not None]
    assert van["mean_auc"] == (round(sum(known) / len(known), 4) if known else None)
    assert (tmp_path / "rev/roc.png").is_file()  # Vanilla's curves (Fig. 6)


def params_eval(p):
    return load_section(EvaluateParams, "evaluate", p)
