"""prepare and degrade as plain functions: determinism, atomic outputs, named errors."""

import hashlib
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import at

from stages import degrade, prepare
from vat.config import CommonParams, load_section
from vat.data.manifest import read_manifest, write_manifest
from vat.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
COMMON = CommonParams(
    seed=3, task="haze", profile="tiny", classes=["bicycle", "bus", "car", "motorbike", "person"]
)


def _params(tmp_path):
    from stages.tools import profile

    p = tmp_path / "params.yaml"
    profile.run("tiny", ROOT / "profiles", p)
    pp = load_section(prepare.PrepareParams, "prepare", p)
    small = replace(pp.embedded, width=96, height=64, n_train=5, n_val=2, n_test=2)
    return replace(pp, embedded=small), load_section(degrade.DegradeParams, "degrade", p)


def _digest(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.suffix in (".png", ".npy")
    }


def _run_both(tmp_path, common, pp, dp, name):
    base = tmp_path / name
    prepare.run(common, pp, at(base))
    degrade.run(common, dp, at(base))
    return base


def test_same_seed_gives_byte_identical_files(tmp_path):
    pp, dp = _params(tmp_path)
    a = _run_both(tmp_path, COMMON, pp, dp, "a")
    b = _run_both(tmp_path, COMMON, pp, dp, "b")
    da, db = _digest(a / "prepare") | _digest(a / "degrade"), _digest(b / "prepare") | _digest(b / "degrade")
    assert len(da) == 9 * 3 and da == db  # image + depth + degraded per image
    c = _run_both(tmp_path, replace(COMMON, seed=4), pp, dp, "c")
    dc = _digest(c / "prepare") | _digest(c / "degrade")
    assert all(da[k] != dc[k] for k in da)


def test_degrade_draw_does_not_depend_on_other_images(tmp_path):
    pp, dp = _params(tmp_path)
    base = _run_both(tmp_path, COMMON, pp, dp, "all")
    only_test = replace(dp, splits=("test",))
    degrade.run(COMMON, only_test, at(base).moved("degrade", tmp_path / "t", tmp_path / "rt"))
    full, part = _digest(base / "degrade"), _digest(tmp_path / "t")
    assert part and all(full[k] == v for k, v in part.items())


def test_haze_depth_without_depth_names_the_image_and_keeps_old_output(tmp_path):
    pp, dp = _params(tmp_path)
    base = _run_both(tmp_path, COMMON, pp, dp, "x")
    before = _digest(base / "degrade")
    m = read_manifest(base / "prepare/manifest.parquet")
    m.records[0].depth_path = None
    write_manifest(m, tmp_path / "nodepth.parquet")
    with pytest.raises(DataError, match=rf"{m.records[0].path}: method haze_depth needs a depth map"):
        (tmp_path / "nodepth").mkdir()
        (tmp_path / "nodepth.parquet").rename(tmp_path / "nodepth/manifest.parquet")
        L = at(base).moved("prepare", tmp_path / "nodepth", tmp_path / "r2")
        degrade.run(COMMON, replace(dp, method="haze_depth"), L)
    assert _digest(base / "degrade") == before


def test_lowlight_and_classify_variants(tmp_path):
    pp, dp = _params(tmp_path)
    common = replace(COMMON, task="classify")
    prepare.run(common, pp, at(tmp_path))
    m = read_manifest(at(tmp_path).clean)
    assert len(m.records) == 9 and all(r.label >= 0 and not r.boxes for r in m.records)
    assert all((r.width, r.height) == (pp.embedded.crop_size,) * 2 for r in m.records)
    metrics = degrade.run(common, replace(dp, method="lowlight"), at(tmp_path))
    assert 1.5 <= metrics["gamma_min"] <= metrics["gamma_max"] <= 5.0


def test_embedded_classes_must_be_listed(tmp_path):
    pp, _ = _params(tmp_path)
    from vat.errors import ParamsError

    with pytest.raises(ParamsError, match="common.classes"):
        prepare.run(replace(COMMON, classes=["car", "person"]), pp, at(tmp_path))
    assert not at(tmp_path).out("prepare").exists()


def test_prepare_metrics_name_the_converted_images_where_they_end_up(tmp_path):
    """#19 item 6: the report names data/prepare/..., not the temporary folder it was built in."""
    from PIL import Image
    from test_readers import voc_dataset

    from vat.io import load_rgb

    pp, _ = _params(tmp_path)
    gray = Image.fromarray(np.arange(48 * 64, dtype=np.uint32).reshape(48, 64).astype(np.uint8), "L")
    images = {
        f"img{i}": (Image.new("RGB", (64, 48), (40 * i, 90, 150)), [("car", 5, 5, 30, 30)]) for i in range(5)
    }
    images["gray"] = (gray, [("person", 2, 2, 20, 20)])
    root = voc_dataset(tmp_path / "voc", images)
    prepare.run(
        COMMON, replace(pp, source="voc", root=str(root), split_ratios=(0.5, 0.25, 0.25)), at(tmp_path)
    )
    text = (tmp_path / "reports/prepare/metrics.json").read_text()
    assert ".tmp-" not in text
    converted = [
        r for r in read_manifest(tmp_path / "prepare/manifest.parquet").records if r.image_id == "gray"
    ]
    assert len(converted) == 1 and str(tmp_path / "prepare") in converted[0].path
    assert converted[0].path in text and load_rgb(converted[0].path).shape == (48, 64, 3)
