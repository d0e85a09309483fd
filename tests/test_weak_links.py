"""Weak links (vat/eval/weak_links.py): each check, the report's block, and classify's full keys."""

import json

import pytest

from vat.errors import DataError, ParamsError
from vat.eval import weak_links as wl


def test_split_fallback_says_how_many_images_were_split_by_ratios():
    (w,) = wl.split_fallback({"n_images": 20, "n_ratio_split": 20}, (0.6, 0.2, 0.2))
    assert "20 of 20" in w and "prepare.split_ratios [0.6, 0.2, 0.2]" in w
    assert wl.split_fallback({"n_images": 20, "n_ratio_split": 0}, (0.8, 0.1, 0.1)) == []
    assert wl.split_fallback({}, (0.8, 0.1, 0.1)) == []  # embedded: no read report


def test_restorer_that_lowers_psnr_warns_or_stops():
    worse = {"psnr_degraded": 13.96, "psnr_restored": 12.05}
    (w,) = wl.restorer_worse(worse, "aodnet", "warn")
    assert "13.96 dB -> restored 12.05 dB" in w
    with pytest.raises(DataError, match="train_restorer.if_worse: warn"):
        wl.restorer_worse(worse, "aodnet", "stop")
    assert wl.restorer_worse({"psnr_degraded": 13.0, "psnr_restored": 15.0}, "aodnet", "stop") == []
    assert wl.restorer_worse({}, "identity", "stop") == []  # no clean pairs: nothing to compare


def test_detector_below_its_floor_warns_on_test_else_val():
    (w,) = wl.detector_floor({"test_clean_map50": 0.0, "val_clean_map50": 0.5}, 0.05)
    assert "clean_map50 is 0.0" in w and "min_clean_score 0.05" in w
    assert wl.detector_floor({"val_clean_map50": 0.01}, 0.05) != []
    assert wl.detector_floor({"test_clean_map50": 0.3}, 0.05) == []
    assert wl.detector_floor({"test_clean_map50": 0.0}, None) == []  # floor off
    (w,) = wl.detector_floor({"test_clean_accuracy": 0.02}, 0.05, "clean_accuracy")
    assert "clean_accuracy is 0.02" in w


def test_pseudolabel_precision_near_zero_warns_only_where_measured():
    assert wl.pseudolabel_precision({"after_filter": {"boxes": 83, "precision": 0.0}}) != []
    assert wl.pseudolabel_precision({"after_filter": {"boxes": 83, "precision": 0.4}}) == []
    assert wl.pseudolabel_precision({"after_filter": {"boxes": 83}, "quality": "no labels"}) == []
    # a long tail of wrong boxes (a low conf) does not warn while the most confident are right
    tail = {"boxes": 9959, "precision": 0.03, "precision_top": 0.6}
    assert wl.pseudolabel_precision({"after_filter": tail}) == []
    assert "most confident" in wl.pseudolabel_precision({"after_filter": tail | {"precision_top": 0.01}})[0]


def test_report_block_gathers_every_stages_warnings_in_pipeline_order(tmp_path):
    for stage, warnings in (("train_detector", ["D is weak"]), ("prepare", ["split by ratios"]),
                            ("evaluate", ["not a stage that warns"]), ("train_restorer", [])):  # fmt: skip
        (tmp_path / stage).mkdir()
        (tmp_path / stage / "metrics.json").write_text(json.dumps({"warnings": warnings}))
    assert wl.collect(tmp_path) == {"prepare": ["split by ratios"], "train_detector": ["D is weak"]}
    blocks = wl.block(tmp_path)
    table = next(b for b in blocks if b[0] == "table")
    assert table[2] == [["`prepare`", "split by ratios"], ["`train_detector`", "D is weak"]]
    none = wl.block(tmp_path / "nothing")
    assert none[0] == ("h", 2, "Weak links") and "No stage reported" in none[1][1]


def test_classify_names_the_full_key_it_changed():
    from stages.classify import full_keys

    changes = {"prepare": {"root": "data/external/cifar10"}, "train_detector": {"weights": "x.bin"}}
    msg = "prepare.root: data/external/cifar10: no cifar-10-batches-py; train_detector.weights missing"
    out = full_keys(msg, changes)
    assert "classify.changes.prepare.root: data/external/cifar10" in out
    assert "classify.changes.train_detector.weights missing" in out
    # a key classify.changes did not set is the main section's: left as it is
    assert full_keys("prepare.split_ratios: bad", changes) == "prepare.split_ratios: bad"
    assert full_keys("classify.changes.prepare.root: x", changes) == "classify.changes.prepare.root: x"


def test_classify_errors_from_its_sub_stages_name_the_full_key(tmp_path):
    import yaml

    from stages import classify
    from vat.config import profile_params
    from vat.layout import Layout

    p = profile_params("tiny", __import__("pathlib").Path("profiles"))
    p["classify"]["changes"]["prepare"] = {"source": "cifar10", "root": str(tmp_path / "nowhere"),
                                           "keep_empty": True}  # fmt: skip
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(p))
    with pytest.raises((DataError, ParamsError), match=r"classify\.changes\.prepare\.root"):
        classify.run(
            params, Layout(tmp_path / "data", tmp_path / "reports"), device="cpu", track=lambda x, *a: x
        )


def test_evaluate_progress_moves_per_image_over_every_method():
    from vat.eval.scoring import _Ticker, _ticking

    seen = []

    def track(items, description, total):
        seen.append((description, total))
        for item in items:
            seen.append(item)
            yield item

    tick = _Ticker(track, 3 * 4)  # 3 methods x 4 images
    groups = list(_ticking(tick)([[1, 2], [3], [4]]))  # one method, batched by size
    assert groups == [[1, 2], [3], [4]] and tick.done == 4
    tick.upto(8)  # a method that did not tick
    assert tick.done == 8
    tick.finish()
    assert seen[0] == ("evaluate", 12) and seen[1:] == list(range(12))
