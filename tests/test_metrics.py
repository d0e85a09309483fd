import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vat.data.manifest import Box
from vat.eval.metrics import (
    INTERPOLATIONS,
    accuracy,
    average_precision,
    box_iou,
    evaluate_detections,
    match_detections,
    psnr,
    roc_per_class,
    ssim,
)

REAL = Path(os.environ.get("VAT_REAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "real")
PASCAL_CASE = REAL / "metric_case_pascal"


def _det(boxes, scores, classes):
    return (np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(classes, int))


# ---------------------------------------------------------------- box IoU and matching


def test_box_iou_hand_values_and_pixel_offset():
    a = np.array([[0, 0, 2, 1], [0, 0, 1, 1]], float)
    b = np.array([[1, 0, 3, 1], [0, 0, 2, 1], [5, 5, 6, 6], [1, 1, 2, 2]], float)
    np.testing.assert_allclose(
        box_iou(a, b), [[1 / 3, 1, 0, 0], [0, 1 / 2, 0, 0]], atol=1e-12
    )  # continuous edges: touching boxes do not intersect
    # inclusive pixel indices (VOC devkit): [0,0,1,1] covers 2x2 pixels and shares one with [1,1,2,2]
    assert box_iou(a[1:], b[3:], pixel_offset=1.0)[0, 0] == pytest.approx(1 / 7)
    assert box_iou(np.zeros((0, 4)), b).shape == (0, 4)


def test_box_iou_matches_ultralytics():
    torch = pytest.importorskip("torch")
    um = pytest.importorskip("ultralytics.utils.metrics")
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (2, 30, 2))
    wh = rng.uniform(1, 30, (2, 30, 2))
    a, b = np.concatenate([xy[0], xy[0] + wh[0]], 1), np.concatenate([xy[1], xy[1] + wh[1]], 1)
    theirs = um.box_iou(torch.from_numpy(a), torch.from_numpy(b), eps=0).numpy()  # computed in float32
    np.testing.assert_allclose(box_iou(a, b), theirs, atol=1e-6)


def test_duplicate_detection_is_one_tp_one_fp_whatever_the_input_order():
    gt = [[10, 10, 50, 50]]
    dets = [[11, 11, 50, 50], [10, 10, 50, 50]]  # the lower-scored one is the exact box
    tp, fp, matched = match_detections(gt, [False], dets, [0.4, 0.9])
    np.testing.assert_array_equal(tp, [0, 1])  # the higher score takes the ground truth
    np.testing.assert_array_equal(fp, [1, 0])
    np.testing.assert_array_equal(matched, [-1, 0])


def test_match_below_threshold_and_voc_rule_for_taken_boxes():
    gt = [[0, 0, 10, 10], [6, 0, 16, 10]]
    # det 0 takes gt 0; det 1 overlaps gt 0 best (IoU 0.667) and gt 1 at 0.538 >= 0.5, but
    # VOC matches to the best box only, which is taken -> duplicate, a false positive
    dets = [[0, 0, 10, 10], [2, 0, 12, 10], [40, 40, 50, 50]]
    tp, fp, matched = match_detections(gt, [False, False], dets, [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(tp, [1, 0, 0])
    np.testing.assert_array_equal(fp, [0, 1, 1])
    np.testing.assert_array_equal(matched, [0, -1, -1])
    # IoU exactly at the threshold counts (>=, as pycocotools and ultralytics)
    tp, _, _ = match_detections([[0, 0, 10, 10]], [False], [[0, 0, 10, 5]], [1.0], iou=0.5)
    assert tp[0] == 1


def test_detection_on_difficult_box_is_ignored():
    gt = [[0, 0, 10, 10], [20, 20, 30, 30]]
    dets = [[0, 0, 10, 10], [0, 0, 10, 10], [20, 20, 30, 30]]
    tp, fp, matched = match_detections(gt, [True, False], dets, [0.9, 0.8, 0.7])
    np.testing.assert_array_equal(tp, [0, 0, 1])
    np.testing.assert_array_equal(fp, [0, 0, 0])  # both hits on the difficult box: neither TP nor FP
    np.testing.assert_array_equal(matched, [0, 0, 1])


def test_no_ground_truth_makes_every_detection_a_false_positive():
    tp, fp, matched = match_detections(np.zeros((0, 4)), np.zeros(0, bool), [[0, 0, 1, 1]] * 2, [0.5, 0.6])
    np.testing.assert_array_equal(tp, [0, 0])
    np.testing.assert_array_equal(fp, [1, 1])
    np.testing.assert_array_equal(matched, [-1, -1])


# ---------------------------------------------------------------- average precision


def test_average_precision_hand_values():
    rec, prec = [0.5, 0.5, 1.0], [1.0, 0.5, 2 / 3]
    assert average_precision(rec, prec, "voc_all_point") == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert average_precision(rec, prec, "voc07_11point") == pytest.approx((6 + 5 * 2 / 3) / 11)
    assert average_precision(rec, prec, "coco_101point") == pytest.approx((51 + 50 * 2 / 3) / 101)
    # recall never above 0.5: thresholds beyond count as 0
    assert average_precision([0.25, 0.5], [1.0, 1.0], "coco_101point") == pytest.approx(51 / 101)
    assert average_precision([0.25, 0.5], [1.0, 1.0], "voc07_11point") == pytest.approx(6 / 11)
    for interp in INTERPOLATIONS:
        assert average_precision([], [], interp) == 0.0
    with pytest.raises(ValueError, match="interpolation"):
        average_precision(rec, prec, "voc12")


def _brute_all_point(tp_sorted, n_gt):
    """All-point AP written independently: each TP adds its recall step times the best
    precision at that rank or any later one."""
    ap, hits = 0.0, 0
    precs = [sum(tp_sorted[: i + 1]) / (i + 1) for i in range(len(tp_sorted))]
    for i, t in enumerate(tp_sorted):
        if t:
            hits += 1
            ap += (1 / n_gt) * max(precs[i:])
    return ap


def _brute_11_point(tp_sorted, n_gt):
    pts, hits = [], 0
    for i, t in enumerate(tp_sorted):
        hits += t
        pts.append((hits / n_gt, hits / (i + 1)))
    return sum(max([p for r, p in pts if r >= t] or [0.0]) for t in np.linspace(0, 1, 11)) / 11


@pytest.mark.parametrize("seed", range(5))
def test_average_precision_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n, n_gt = int(rng.integers(1, 40)), int(rng.integers(1, 30))
    tp = (rng.random(n) < 0.5).astype(int)
    tp[np.flatnonzero(np.cumsum(tp) > n_gt)] = 0  # no more TPs than positives
    cum = np.cumsum(tp)
    rec, prec = cum / n_gt, cum / np.arange(1, n + 1)
    assert average_precision(rec, prec, "voc_all_point") == pytest.approx(_brute_all_point(list(tp), n_gt))
    assert average_precision(rec, prec, "voc07_11point") == pytest.approx(_brute_11_point(list(tp), n_gt))


# ---------------------------------------------------------------- evaluate_detections, hand cases


def test_perfect_detections_give_ap_one():
    gts = [[Box(0, 0, 0, 10, 10), Box(1, 20, 20, 40, 40)], [Box(0, 5, 5, 15, 25)]]
    dets = [_det([[0, 0, 10, 10], [20, 20, 40, 40]], [0.9, 0.8], [0, 1]), _det([[5, 5, 15, 25]], [0.7], [0])]
    for interp in INTERPOLATIONS:
        r = evaluate_detections(gts, dets, ["a", "b"], interpolation=interp)
        assert r.ap == {"a": 1.0, "b": 1.0} and r.map == 1.0
        assert r.n_gt == {"a": 2, "b": 1} and r.n_det == {"a": 2, "b": 1}
        assert r.interpolation == interp and r.iou == 0.5


def test_all_false_positives_give_zero_and_missing_detections_give_zero():
    gts = [[Box(0, 0, 0, 10, 10)], [Box(1, 0, 0, 10, 10)]]
    dets = [_det([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [0, 1]), _det([], [], [])]
    for interp in INTERPOLATIONS:
        r = evaluate_detections(gts, dets, ["a", "b"], interpolation=interp)
        assert r.ap == {"a": 0.0, "b": 0.0}  # b: its only detection is on an image without a b box
        assert r.map == 0.0


def test_duplicate_counts_once():
    gts = [[Box(0, 0, 0, 10, 10), Box(0, 30, 30, 40, 40)]]
    dets = [_det([[0, 0, 10, 10], [0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.8, 0.7], [0, 0, 0])]
    r = evaluate_detections(gts, dets, ["a"])
    # ranks: TP (r .5, p 1), FP (r .5, p .5), TP (r 1, p 2/3)
    assert r.ap["a"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_detection_of_class_absent_from_the_image_is_a_false_positive():
    gts = [[Box(0, 0, 0, 10, 10)], [Box(1, 0, 0, 10, 10)]]
    dets = [_det([[0, 0, 10, 10]], [0.9], [0]), _det([[0, 0, 10, 10], [0, 0, 10, 10]], [0.95, 0.5], [0, 1])]
    r = evaluate_detections(gts, dets, ["a", "b"])
    assert r.ap == {"a": pytest.approx(0.5), "b": 1.0}  # a: FP (0.95) before its TP (0.9)


def test_class_without_ground_truth_is_nan_and_left_out_of_the_mean():
    gts = [[Box(0, 0, 0, 10, 10)]]
    dets = [_det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 2])]
    r = evaluate_detections(gts, dets, ["a", "b", "c"])
    assert r.ap["a"] == 1.0 and math.isnan(r.ap["b"]) and math.isnan(r.ap["c"])
    assert r.map == 1.0 and r.n_det == {"a": 1, "b": 0, "c": 1}
    d = r.to_dict()
    assert d["ap"] == {"a": 1.0, "b": None, "c": None}
    json.dumps(d, allow_nan=False)
    assert math.isnan(evaluate_detections([[]], [_det([], [], [])], ["a"]).map)


def test_difficult_ground_truth_is_ignored_unless_asked_for():
    gts = [[Box(0, 0, 0, 10, 10), Box(0, 30, 30, 40, 40, difficult=True)]]
    dets = [_det([[30, 30, 40, 40], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])]
    r = evaluate_detections(gts, dets, ["a"])
    assert r.n_gt == {"a": 1} and r.n_det == {"a": 2}
    assert r.ap["a"] == 1.0  # the hit on the difficult box is neither TP nor FP
    r = evaluate_detections(gts, dets, ["a"], use_difficult=True)
    assert r.n_gt == {"a": 2} and r.ap["a"] == 1.0
    # missing the difficult box costs nothing by default, half the recall with use_difficult
    dets = [_det([[0, 0, 10, 10]], [0.8], [0])]
    assert evaluate_detections(gts, dets, ["a"]).ap["a"] == 1.0
    assert evaluate_detections(gts, dets, ["a"], use_difficult=True).ap["a"] == pytest.approx(0.5)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="interpolation"):
        evaluate_detections([[]], [_det([], [], [])], ["a"], interpolation="all")
    with pytest.raises(ValueError, match="1 images of ground truth but 2"):
        evaluate_detections([[]], [_det([], [], [])] * 2, ["a"])
    with pytest.raises(ValueError, match="detection class outside"):
        evaluate_detections([[]], [_det([[0, 0, 1, 1]], [0.5], [3])], ["a"])


# ---------------------------------------------------------------- real case: Padilla et al.


def _read_pascal_case():
    gts, dets = [], []
    for f in sorted((PASCAL_CASE / "gts").glob("*.txt")):
        rows = [line.split() for line in f.read_text().splitlines() if line.strip()]
        xywh = np.array([[float(v) for v in r[1:5]] for r in rows]).reshape(-1, 4)
        gts.append([Box(0, x, y, x + w, y + h) for x, y, w, h in xywh])  # their x2 = x + w
        rows = [
            line.split() for line in (PASCAL_CASE / "dets" / f.name).read_text().splitlines() if line.strip()
        ]
        xywh = np.array([[float(v) for v in r[2:6]] for r in rows]).reshape(-1, 4)
        xywh[:, 2:] += xywh[:, :2]
        dets.append(_det(xywh, [float(r[1]) for r in rows], [0] * len(rows)))
    return gts, dets


needs_pascal_case = pytest.mark.skipif(
    not (PASCAL_CASE / "gts").is_dir(), reason="shared/real sample data absent"
)

# rafaelpadilla/review_object_detection_metrics tests/test_case_1.py (their IoU uses +1 pixel)
PUBLISHED = {
    ("voc07_11point", 0.1): 0.3333333333,
    ("voc07_11point", 0.3): 0.2683982683,
    ("voc07_11point", 0.5): 0.0303030303,
    ("voc07_11point", 0.75): 0.0,
    ("voc_all_point", 0.1): 0.3371980676,
    ("voc_all_point", 0.3): 0.2456866804,
    ("voc_all_point", 0.5): 0.0222222222,
    ("voc_all_point", 0.75): 0.0,
}


@needs_pascal_case
@pytest.mark.parametrize("interp, iou", list(PUBLISHED))
def test_pascal_case_matches_published_ap(interp, iou):
    gts, dets = _read_pascal_case()
    r = evaluate_detections(gts, dets, ["object"], iou=iou, interpolation=interp, pixel_offset=1.0)
    assert r.n_gt == {"object": 15} and r.n_det == {"object": 24}
    assert r.ap["object"] == pytest.approx(PUBLISHED[interp, iou], rel=1e-6, abs=1e-9)


@needs_pascal_case
def test_pascal_case_pixel_convention_matters_at_low_iou():
    gts, dets = _read_pascal_case()
    ap = {
        off: evaluate_detections(gts, dets, ["object"], iou=0.3, pixel_offset=off).map for off in (0.0, 1.0)
    }
    assert ap[1.0] == pytest.approx(0.2456866804, abs=1e-9)
    assert ap[0.0] == pytest.approx(0.2253968254, abs=1e-9)  # continuous edges: one TP fewer at 0.3


# ---------------------------------------------------------------- cross-check: ultralytics


def _synthetic_scene(seed, n_images=40, n_classes=3):
    """GT boxes in disjoint grid cells (so VOC and best-free-box matching agree), noisy
    detections of most of them, some duplicates and background false positives."""
    rng = np.random.default_rng(seed)
    gts, dets = [], []
    for _ in range(n_images):
        cells = rng.permutation(16)[: rng.integers(1, 7)]
        boxes = []
        for cell in cells:
            cx, cy = (cell % 4) * 100 + 50, (cell // 4) * 100 + 50
            w, h = rng.uniform(30, 90, 2)
            boxes.append(Box(int(rng.integers(n_classes)), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))
        gts.append(boxes)
        db, ds, dc = [], [], []
        for b in boxes:
            for _ in range(1 + (rng.random() < 0.2)):  # some duplicates
                if rng.random() < 0.85:
                    w, h = b.x2 - b.x1, b.y2 - b.y1
                    j = rng.normal(0, 0.12, 4) * [w, h, w, h]
                    db.append([b.x1 + j[0], b.y1 + j[1], b.x2 + j[2], b.y2 + j[3]])
                    ds.append(rng.uniform(0.05, 1.0))
                    dc.append(b.cls if rng.random() < 0.9 else int(rng.integers(n_classes)))
        for _ in range(rng.integers(0, 4)):  # background
            x, y = rng.uniform(0, 350, 2)
            db.append([x, y, x + rng.uniform(10, 50), y + rng.uniform(10, 50)])
            ds.append(rng.uniform(0.0, 0.6))
            dc.append(int(rng.integers(n_classes)))
        db = np.array(db).reshape(-1, 4)
        db[:, 2:] = np.maximum(db[:, 2:], db[:, :2] + 1)
        dets.append(_det(db, ds, dc))
    return gts, dets


@pytest.mark.parametrize("seed", [0, 1])
def test_coco_101point_agrees_with_ultralytics(seed):
    torch = pytest.importorskip("torch")
    um = pytest.importorskip("ultralytics.utils.metrics")
    from ultralytics.engine.validator import BaseValidator

    gts, dets = _synthetic_scene(seed)
    ns = SimpleNamespace(iouv=torch.tensor([0.5]))
    tps, confs, pred_cls, target_cls = [], [], [], []
    for image_gts, (boxes, scores, cls) in zip(gts, dets, strict=True):
        order = np.argsort(-scores, kind="stable")  # ultralytics expects NMS order
        boxes, scores, cls = boxes[order], scores[order], cls[order]
        g = np.array([[b.x1, b.y1, b.x2, b.y2] for b in image_gts]).reshape(-1, 4)
        gc = np.array([b.cls for b in image_gts])
        iou = um.box_iou(torch.from_numpy(g), torch.from_numpy(boxes))  # (M, N)
        correct = BaseValidator.match_predictions(
            ns, torch.from_numpy(cls), torch.from_numpy(gc), iou
        ).numpy()
        # the same per-detection verdicts from our matcher
        ours = np.zeros(len(cls))
        for c in np.unique(cls):
            m = gc == c
            ours[cls == c] = match_detections(
                g[m], np.zeros(m.sum(), bool), boxes[cls == c], scores[cls == c]
            )[0]
        np.testing.assert_array_equal(ours, correct[:, 0])
        tps.append(correct)
        confs.append(scores)
        pred_cls.append(cls)
        target_cls.append(gc)
    out = um.ap_per_class(
        np.concatenate(tps), np.concatenate(confs), np.concatenate(pred_cls), np.concatenate(target_cls)
    )
    theirs = out[5][:, 0].mean()
    r = evaluate_detections(gts, dets, ["a", "b", "c"], interpolation="coco_101point")
    assert 0.3 < r.map < 0.95  # a case where the curve matters
    # Same matches, different reduction: ultralytics integrates the envelope, linearly
    # interpolated at the 101 thresholds, with the trapezoid rule, and np.interp takes the
    # value right of a recall step where a threshold hits one exactly; pycocotools (and we)
    # average the step values, left of a step. Over ~50 positives per class that is a few 1e-3.
    assert abs(r.map - theirs) < 3e-3


def test_coco_101point_agrees_with_ultralytics_after_trapezoid_correction():
    """With ~450 positives per class the step sum and the trapezoid differ by the end
    terms alone: trapezoid = (101 * mean - (q[0] + q[100]) / 2) / 100, with q[0] = 1 (the
    top detection is a hit) and q[100] = 0 (recall never reaches 1). What is left is the
    left/right value at thresholds that hit a recall step exactly."""
    pytest.importorskip("ultralytics")
    from ultralytics.utils.metrics import ap_per_class

    gts, dets = _synthetic_scene(0, n_images=400)
    theirs = ap_per_class(*_ultralytics_inputs(gts, dets))[5][:, 0]
    r = evaluate_detections(gts, dets, ["a", "b", "c"], interpolation="coco_101point")
    ours = np.array([r.ap[k] for k in "abc"])
    assert abs(r.map - theirs.mean()) < 2e-3
    np.testing.assert_allclose((101 * ours - 0.5) / 100, theirs, atol=5e-4)


def _ultralytics_inputs(gts, dets):
    import torch
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.utils.metrics import box_iou as u_box_iou

    ns = SimpleNamespace(iouv=torch.tensor([0.5]))
    tps, confs, pred_cls, target_cls = [], [], [], []
    for image_gts, (boxes, scores, cls) in zip(gts, dets, strict=True):
        order = np.argsort(-scores, kind="stable")
        g = np.array([[b.x1, b.y1, b.x2, b.y2] for b in image_gts]).reshape(-1, 4)
        gc = np.array([b.cls for b in image_gts])
        iou = u_box_iou(torch.from_numpy(g), torch.from_numpy(boxes[order]))
        tps.append(
            BaseValidator.match_predictions(
                ns, torch.from_numpy(cls[order]), torch.from_numpy(gc), iou
            ).numpy()
        )
        confs.append(scores[order])
        pred_cls.append(cls[order])
        target_cls.append(gc)
    return np.concatenate(tps), np.concatenate(confs), np.concatenate(pred_cls), np.concatenate(target_cls)


def test_coco_101point_equals_pycocotools():
    """pycocotools (a dev dependency, so CI runs this) pins our coco_101point to it exactly."""
    import pycocotools  # noqa: F401  (a missing dev install fails here instead of skipping)
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gts, dets = _synthetic_scene(3)
    images = [{"id": i + 1, "width": 400, "height": 400} for i in range(len(gts))]
    anns, res = [], []
    for i, (image_gts, (boxes, scores, cls)) in enumerate(zip(gts, dets, strict=True)):
        for b in image_gts:
            w, h = b.x2 - b.x1, b.y2 - b.y1
            anns.append(
                {"id": len(anns) + 1, "image_id": i + 1, "category_id": b.cls + 1, "iscrowd": 0,
                 "bbox": [b.x1, b.y1, w, h], "area": w * h}
            )  # fmt: skip
        for box, s, c in zip(boxes, scores, cls, strict=True):
            res.append({"image_id": i + 1, "category_id": int(c) + 1, "score": float(s),
                        "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]]})  # fmt: skip
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": k + 1} for k in range(3)]}
    coco.createIndex()
    ev = COCOeval(coco, coco.loadRes(res), "bbox")
    ev.evaluate()
    ev.accumulate()
    precision = ev.eval["precision"][0, :, :, 0, -1]  # IoU 0.5, all recall thresholds, area all, 100 dets
    theirs = precision.mean(axis=0)
    r = evaluate_detections(gts, dets, ["a", "b", "c"], interpolation="coco_101point")
    np.testing.assert_allclose([r.ap[k] for k in "abc"], theirs, atol=1e-12)


# ---------------------------------------------------------------- image quality and classification


def test_psnr_and_ssim_known_values():
    rng = np.random.default_rng(0)
    a = rng.uniform(0.2, 0.8, (16, 16, 3))
    assert psnr(a, a) == math.inf
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(a * 255, a * 255 + 25.5, data_range=255) == pytest.approx(20.0)
    assert ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + rng.normal(0, 0.1, a.shape), 0, 1)
    s = ssim(a, noisy)
    assert 0 < s < 0.9 and s == pytest.approx(ssim(noisy, a))
    assert ssim(a[..., 0], a[..., 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ"):
        psnr(a, a[:8])


def test_accuracy_from_labels_and_probabilities():
    labels = np.array([0, 1, 2, 1])
    assert accuracy(np.array([0, 1, 1, 1]), labels) == 0.75
    probs = np.array([[0.9, 0.1, 0], [0.2, 0.7, 0.1], [0.1, 0.1, 0.8], [0.5, 0.3, 0.2]])
    assert accuracy(probs, labels) == 0.75


def test_roc_per_class_perfect_reversed_and_undefined():
    labels = np.array([0, 0, 1, 1])
    probs = np.array([[0.9, 0.1, 0], [0.8, 0.2, 0], [0.3, 0.7, 0], [0.1, 0.9, 0]])
    roc = roc_per_class(probs, labels)
    assert roc[0][2] == 1.0 and roc[1][2] == 1.0
    assert roc[0][0][0] == 0 and roc[0][1][-1] == 1  # curve from (0, 0) to (1, 1)
    assert math.isnan(roc[2][2])  # class 2 never occurs
    assert roc_per_class(1 - probs[:, :2], labels)[0][2] == 0.0


def test_gate_stats_correlate_w_with_where_the_degraded_image_is_closer():
    from vat.eval.metrics import GateStats

    rng = np.random.default_rng(0)
    clean = rng.uniform(0, 255, (8, 8, 3))
    lq, restored = clean.copy(), clean.copy()
    lq[:, :4] += 50  # left half: the restoration is better ...
    restored[:, 4:] += 50  # ... right half: the degraded image is closer
    closer = np.zeros((8, 8))
    closer[:, 4:] = 1
    g = GateStats()
    g.add(0.2 + 0.6 * closer, lq, restored, clean)  # a gate that takes I_LQ where it is closer
    r = g.result()
    assert r["degraded_closer"] == 0.5 and r["gate_mean"] == 0.5
    assert r["gate_corr"] == pytest.approx(1.0, abs=1e-6) and r["gate_sd"] == pytest.approx(0.3, abs=1e-6)
    # the same pixels in two calls pool to the same result; the opposite gate correlates -1
    g2, g3 = GateStats(), GateStats()
    for half in (slice(0, 4), slice(4, 8)):
        g2.add((0.2 + 0.6 * closer)[half], lq[half], restored[half], clean[half])
        g3.add((0.8 - 0.6 * closer)[half], lq[half], restored[half], clean[half])
    assert g2.result() == r
    assert g3.result()["gate_corr"] == pytest.approx(-1.0, abs=1e-6)
    flat = GateStats()
    flat.add(np.full((8, 8), 0.018), lq, restored, clean)
    assert flat.result()["gate_corr"] is None  # a constant gate has no correlation
