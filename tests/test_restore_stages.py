"""train_restorer / restore / evaluate as plain functions, on a few tiny embedded scenes."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from stages import degrade, evaluate, prepare, restore, train_restorer
from vat.config import CommonParams, load_section
from vat.errors import DataError, ParamsError
from vat.io import load_rgb, save_png
from vat.manifest import read_manifest

ROOT = Path(__file__).resolve().parents[1]
COMMON = CommonParams(
    seed=1, task="haze", profile="tiny", classes=["bicycle", "bus", "car", "motorbike", "person"]
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from stages import profile

    base = tmp_path_factory.mktemp("stages")
    p = base / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, width=64, height=48, n_train=4, n_val=2, n_test=2))
    prepare.run(COMMON, pp, out=base / "prepare", reports=base / "rp")
    dp = load_section(degrade.DegradeParams, "degrade", p)
    degrade.run(
        COMMON, dp, manifest_path=base / "prepare/manifest.parquet", out=base / "degrade", reports=base / "rd"
    )
    params = {s: load_section(c, s, p) for c, s in [
        (train_restorer.TrainRestorerParams, "train_restorer"), (restore.RestoreParams, "restore"),
        (evaluate.EvaluateParams, "evaluate")]}  # fmt: skip
    return base, params


def _train(base, params, **change):
    tp = replace(params["train_restorer"], **change)
    return train_restorer.run(COMMON, tp, clean_path=base / "prepare/manifest.parquet",
                              degraded_path=base / "degrade/manifest.parquet", out=base / "tr",
                              reports=base / "rtr", device="cpu")  # fmt: skip


def _restore(base, params, out="restore"):
    return restore.run(COMMON, params["restore"], degraded_path=base / "degrade/manifest.parquet",
                       clean_path=base / "prepare/manifest.parquet", spec_path=base / "tr/restorer.json",
                       out=base / out, reports=base / f"r{out}", device="cpu")  # fmt: skip


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


def test_aodnet_training_writes_a_loadable_checkpoint(data):
    base, params = data
    m = _train(base, params, arch="aodnet", epochs=2)
    assert m["trained"] and [h["epoch"] for h in m["history"]] == [1, 2]
    spec = json.loads((base / "tr/restorer.json").read_text())
    assert spec["arch"] == "aodnet" and Path(spec["weights"]).name == "restorer.pt"
    r = restore.load_spec(base / "tr/restorer.json")
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
    from vat.models.detector import FrozenDetector, save_detector

    det = FrozenDetector("yolov8n.yaml", nc=5, imgsz=64, names=COMMON.classes)
    (base / "models").mkdir(exist_ok=True)
    save_detector(det, base / "models/detector.pt")
    inputs = {"Clean": base / "prepare/manifest.parquet", "Vanilla": base / "degrade/manifest.parquet"}
    result = evaluate.run(
        COMMON, params["evaluate"], inputs=inputs, truth_path=base / "prepare/manifest.parquet",
        models=base / "models", reports=base / "rev", device="cpu",
    )  # fmt: skip
    assert set(result["methods"]) == {"Clean", "Vanilla"} and result["images"] == 2
    assert "no clean train image of at least 64 px" in result["niqe"]["skipped"]  # 64 x 48 images: too small
    table = (base / "rev/table.md").read_text()
    assert "| Clean |" in table and "| Vanilla |" in table and "bicycle" in table


def test_classify_variant_with_sci_and_a_small_cnn(tmp_path):
    """Low-light classification: SCI trained unsupervised, a small CNN as D, accuracy table."""
    from stages import profile, train_detector

    p = tmp_path / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    common = replace(COMMON, task="classify")
    pp = load_section(prepare.PrepareParams, "prepare", p)
    pp = replace(pp, embedded=replace(pp.embedded, n_train=12, n_val=4, n_test=4, crop_size=32))
    prepare.run(common, pp, out=tmp_path / "prepare", reports=tmp_path / "rp")
    dp = replace(load_section(degrade.DegradeParams, "degrade", p), method="lowlight")
    degrade.run(common, dp, manifest_path=tmp_path / "prepare/manifest.parquet", out=tmp_path / "degrade",
                reports=tmp_path / "rd")  # fmt: skip
    tp = replace(load_section(train_restorer.TrainRestorerParams, "train_restorer", p), arch="sci", crop=32)
    m = train_restorer.run(common, tp, clean_path=tmp_path / "prepare/manifest.parquet",
                           degraded_path=tmp_path / "degrade/manifest.parquet", out=tmp_path / "tr",
                           reports=tmp_path / "rtr", device="cpu")  # fmt: skip
    assert m["trained"] and m["arch"] == "sci"
    assert json.loads((tmp_path / "tr/restorer.json").read_text())["arch"] == "sci"
    dtp = replace(load_section(train_detector.TrainDetectorParams, "train_detector", p), model="small_cnn",
                  epochs=2, imgsz=32)  # fmt: skip
    clean = tmp_path / "prepare/manifest.parquet"
    d = train_detector.run(common, dtp, clean_path=clean, out=tmp_path / "models", reports=tmp_path / "rtd",
                           device="cpu")  # fmt: skip
    assert d["trained"] and len(d["history"]) == 2 and 0 <= d["test_clean_accuracy"] <= 1
    inputs = {
        "Clean": tmp_path / "prepare/manifest.parquet",
        "Vanilla": tmp_path / "degrade/manifest.parquet",
    }
    result = evaluate.run(common, params_eval(p), inputs=inputs, truth_path=clean, models=tmp_path / "models",
                          reports=tmp_path / "rev", device="cpu")  # fmt: skip
    assert result["metric"] == "accuracy" and result["images"] == 4
    assert "| Vanilla |" in (tmp_path / "rev/table.md").read_text()
    van = result["methods"]["Vanilla"]
    assert set(van["auc"]) == set(COMMON.classes) and "_roc" not in van
    known = [v for v in van["auc"].values() if v is not None]
    assert van["mean_auc"] == (round(sum(known) / len(known), 4) if known else None)
    assert (tmp_path / "rev/roc.png").is_file()  # Vanilla's curves (Fig. 6)


def params_eval(p):
    return load_section(evaluate.EvaluateParams, "evaluate", p)
