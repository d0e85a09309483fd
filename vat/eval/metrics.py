"""Metrics for the evaluate stage: detection AP, image quality, classification.

Detection (``evaluate_detections``) is our own numpy implementation and is the primary
one; it follows the PASCAL VOC devkit (Everingham et al., IJCV 2010) for matching and
offers three named interpolations of the precision-recall curve:

- ``voc07_11point``: VOC2007, mean over t in {0, 0.1, ..., 1} of the highest precision
  at recall >= t (0 when recall never reaches t).
- ``voc_all_point``: VOC2010 and later, area under the monotone precision envelope,
  summed at every change of recall.
- ``coco_101point``: pycocotools' ``COCOeval.accumulate``: the envelope sampled at the
  recall thresholds ``np.linspace(0, 1, 101)`` with ``searchsorted(..., side="left")``,
  0 where recall is never reached, averaged over all 101 thresholds.

Matching, per image and class: detections in decreasing score order (stable sort, so
ties keep input order) take the ground-truth box of highest IoU among *all* boxes of
that class; IoU >= threshold and that box still free -> true positive; already taken
-> false positive (a duplicate); below threshold -> false positive. Unless
``use_difficult``, a detection whose best box is ``difficult`` is ignored (neither TP
nor FP) and difficult boxes do not count as positives. (The VOC devkit compares
``IoU > threshold``; we use ``>=`` as pycocotools, ultralytics and Padilla et al. do;
the two differ only at exactly the threshold.)

Boxes are pixel x1 y1 x2 y2 in the continuous-edge convention: area
``(x2 - x1) * (y2 - y1)``. ``pixel_offset=1`` switches to the VOC devkit's inclusive
pixel indices, area ``(x2 - x1 + 1) * (y2 - y1 + 1)``, which is what Padilla et al.'s
reference evaluator (rafaelpadilla/review_object_detection_metrics) uses.

Cross-checks (tests/test_metrics.py):
- the published results of Padilla et al.'s ``tests/test_case_1`` (shared real data
  ``metric_case_pascal``), all eight: all-point AP 0.3371980676 / 0.2456866804 /
  0.0222222222 / 0 and 11-point AP 0.3333333333 / 0.2683982683 / 0.0303030303 / 0 at
  IoU 0.1 / 0.3 / 0.5 / 0.75, reproduced with ``pixel_offset=1`` (the +1 matters at 0.1
  and 0.3 only);
- ultralytics 8.4 (``BaseValidator.match_predictions`` + ``ap_per_class``), an
  independent matcher (the best *free* box, which equals the VOC rule when ground-truth
  boxes do not overlap, as in the test scenes) and AP: identical per-detection verdicts;
  its AP is the trapezoid
  of a linearly interpolated envelope on the 101 points, not pycocotools' step mean, so
  mAP agrees to ~2e-3, and to 5e-4 once the trapezoid's end terms are accounted for;
- pycocotools ``COCOeval`` (a dev dependency, so the test always runs in CI):
  ``coco_101point`` per-class AP equal to 1e-12;
- a brute-force all-point and 11-point AP written separately in the test.

Image quality: PSNR is computed here; SSIM is scikit-image's ``structural_similarity``
(Wang et al., TIP 2004) with scikit-image's defaults, a uniform 7x7 window rather than
the paper's 11x11 Gaussian. Classification ROC uses scikit-learn's ``roc_curve`` and
``auc``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vat.data.manifest import Box

INTERPOLATIONS = ("voc07_11point", "voc_all_point", "coco_101point")

# Exactly the recall thresholds of the references, float rounding included
# (np.arange(0, 1.1, 0.1) in the VOC devkit equals this linspace elementwise).
_VOC07_THRESHOLDS = np.linspace(0.0, 1.0, 11)
_COCO_THRESHOLDS = np.linspace(0.0, 1.0, 101)


@dataclass
class DetectionResult:
    """Per-class AP at one IoU threshold and their mean over classes with ground truth."""

    ap: dict[str, float]  # per class name; nan for a class with no ground truth
    map: float  # mean over classes with ground truth; nan if there is none
    n_gt: dict[str, int]  # positives per class (difficult boxes excluded unless use_difficult)
    n_det: dict[str, int]  # detections per class, ignored ones included
    interpolation: str
    iou: float

    def to_dict(self) -> dict:
        """Plain JSON-ready dict; nan becomes None."""

        def clean(x: float) -> float | None:
            return None if math.isnan(x) else float(x)

        return {
            "interpolation": self.interpolation,
            "iou": float(self.iou),
            "map": clean(self.map),
            "ap": {k: clean(v) for k, v in self.ap.items()},
            "n_gt": {k: int(v) for k, v in self.n_gt.items()},
            "n_det": {k: int(v) for k, v in self.n_det.items()},
        }


def box_iou(a: np.ndarray, b: np.ndarray, pixel_offset: float = 0.0) -> np.ndarray:
    """Pairwise IoU of boxes ``a`` (N, 4) and ``b`` (M, 4), pixel x1 y1 x2 y2 -> (N, M).

    ``pixel_offset`` 0 is the continuous-edge convention; 1 the VOC devkit's inclusive
    pixel indices. Pairs with zero union get IoU 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])  # (N, M, 2)
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])  # (N, M, 2)
    wh = np.clip(rb - lt + pixel_offset, 0.0, None)
    inter = wh[..., 0] * wh[..., 1]  # (N, M)
    area_a = (a[:, 2] - a[:, 0] + pixel_offset) * (a[:, 3] - a[:, 1] + pixel_offset)
    area_b = (b[:, 2] - b[:, 0] + pixel_offset) * (b[:, 3] - b[:, 1] + pixel_offset)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_detections(
    gt_boxes: np.ndarray,
    gt_difficult: np.ndarray,
    det_boxes: np.ndarray,
    det_scores: np.ndarray,
    iou: float = 0.5,
    pixel_offset: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy VOC matching of one image's detections of one class to its ground truth.

    Returns, in the input order of the detections, ``tp`` (N,) and ``fp`` (N,) as 0/1
    float arrays and ``matched_gt`` (N,) int: the ground-truth index a detection was
    assigned to (a TP, or an ignored detection on a difficult box), else -1. A detection
    with ``tp == fp == 0`` is ignored. Pass an all-False ``gt_difficult`` to count
    difficult boxes as ordinary positives.
    """
    gt_boxes = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
    gt_difficult = np.asarray(gt_difficult, dtype=bool).reshape(-1)
    det_boxes = np.asarray(det_boxes, dtype=np.float64).reshape(-1, 4)
    det_scores = np.asarray(det_scores, dtype=np.float64).reshape(-1)
    n, m = len(det_boxes), len(gt_boxes)
    if len(det_scores) != n or len(gt_difficult) != m:
        raise ValueError(
            f"match_detections: {n} det boxes with {len(det_scores)} scores, "
            f"{m} gt boxes with {len(gt_difficult)} difficult flags"
        )
    tp = np.zeros(n)
    fp = np.ones(n)  # without any ground truth every detection is a false positive
    matched_gt = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return tp, fp, matched_gt
    ious = box_iou(det_boxes, gt_boxes, pixel_offset)  # (N, M)
    best = ious.argmax(axis=1)  # first maximum, as the devkit's argmax
    hit = ious[np.arange(n), best] >= iou
    taken = np.zeros(m, dtype=bool)
    # The greedy pass is sequential by nature; only detections that reach the
    # threshold can change state, the rest stay false positives.
    for d in np.argsort(-det_scores, kind="stable"):
        if not hit[d]:
            continue
        g = best[d]
        if gt_difficult[g]:
            fp[d] = 0.0
            matched_gt[d] = g
        elif not taken[g]:
            taken[g] = True
            tp[d], fp[d] = 1.0, 0.0
            matched_gt[d] = g
    return tp, fp, matched_gt


def average_precision(recall: np.ndarray, precision: np.ndarray, interpolation: str) -> float:
    """AP from a precision-recall curve given in decreasing-score order.

    ``recall`` is non-decreasing; both arrays have one entry per (non-ignored) detection.
    An empty curve gives 0.
    """
    rec = np.asarray(recall, dtype=np.float64).reshape(-1)
    prec = np.asarray(precision, dtype=np.float64).reshape(-1)
    if len(rec) != len(prec):
        raise ValueError(f"average_precision: {len(rec)} recall values but {len(prec)} precision values")
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"average_precision: interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
    if len(rec) == 0:
        return 0.0
    if interpolation == "voc_all_point":
        mrec = np.concatenate(([0.0], rec, [1.0]))
        mpre = np.concatenate(([0.0], prec, [0.0]))
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]  # monotone envelope
        i = np.flatnonzero(mrec[1:] != mrec[:-1]) + 1  # where recall changes
        return float(np.sum((mrec[i] - mrec[i - 1]) * mpre[i]))
    # Envelope at each detection: highest precision at this recall or beyond.
    env = np.maximum.accumulate(prec[::-1])[::-1]
    if interpolation == "voc07_11point":
        # First index with recall >= t; the envelope there is max(prec[rec >= t]).
        idx = np.searchsorted(rec, _VOC07_THRESHOLDS, side="left")
        q = np.where(idx < len(rec), env[np.minimum(idx, len(rec) - 1)], 0.0)
        return float(np.mean(q))
    idx = np.searchsorted(rec, _COCO_THRESHOLDS, side="left")  # coco_101point
    q = np.where(idx < len(rec), env[np.minimum(idx, len(rec) - 1)], 0.0)
    return float(np.mean(q))


def _boxes_of(boxes: Sequence[Box]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    xyxy = np.array([(b.x1, b.y1, b.x2, b.y2) for b in boxes], dtype=np.float64).reshape(-1, 4)
    cls = np.array([b.cls for b in boxes], dtype=np.int64)
    difficult = np.array([b.difficult for b in boxes], dtype=bool)
    return xyxy, cls, difficult


# The VOC protocol in one pass (match per class, then AP), each block commented.
def evaluate_detections(
    gts: Sequence[Sequence[Box]],
    dets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    classes: Sequence[str],
    iou: float = 0.5,
    interpolation: str = "voc_all_point",
    use_difficult: bool = False,
    pixel_offset: float = 0.0,
) -> DetectionResult:
    """Per-class AP and mAP over a set of images.

    ``gts[i]`` holds image i's ground-truth boxes; ``dets[i]`` is ``(boxes (N, 4),
    scores (N,), classes (N,))`` for the same image, boxes in pixels x1 y1 x2 y2, class
    indices into ``classes``. A class without ground truth gets AP nan and is left out
    of the mean (its detections are still counted in ``n_det``).
    """
    if interpolation not in INTERPOLATIONS:
        raise ValueError(
            f"evaluate_detections: interpolation {interpolation!r} is not one of {INTERPOLATIONS}"
        )
    if len(gts) != len(dets):
        raise ValueError(
            f"evaluate_detections: {len(gts)} images of ground truth but {len(dets)} of detections"
        )
    k = len(classes)
    scores_per_class: list[list[np.ndarray]] = [[] for _ in range(k)]
    tp_per_class: list[list[np.ndarray]] = [[] for _ in range(k)]
    fp_per_class: list[list[np.ndarray]] = [[] for _ in range(k)]
    n_gt = np.zeros(k, dtype=np.int64)
    n_det = np.zeros(k, dtype=np.int64)
    for i, (image_gts, (d_boxes, d_scores, d_cls)) in enumerate(zip(gts, dets, strict=True)):
        g_boxes, g_cls, g_diff = _boxes_of(image_gts)
        d_boxes = np.asarray(d_boxes, dtype=np.float64).reshape(-1, 4)
        d_scores = np.asarray(d_scores, dtype=np.float64).reshape(-1)
        d_cls = np.asarray(d_cls).reshape(-1).astype(np.int64)
        if not len(d_boxes) == len(d_scores) == len(d_cls):
            raise ValueError(
                f"evaluate_detections: image {i} has {len(d_boxes)} boxes, "
                f"{len(d_scores)} scores, {len(d_cls)} classes"
            )
        for c_arr, what in ((g_cls, "ground-truth"), (d_cls, "detection")):
            if len(c_arr) and (c_arr.min() < 0 or c_arr.max() >= k):
                raise ValueError(f"evaluate_detections: image {i} has a {what} class outside 0..{k - 1}")
        if use_difficult:
            g_diff = np.zeros_like(g_diff)
        n_gt += np.bincount(g_cls[~g_diff], minlength=k)
        n_det += np.bincount(d_cls, minlength=k)
        for c in np.unique(d_cls):
            dm, gm = d_cls == c, g_cls == c
            tp, fp, _ = match_detections(
                g_boxes[gm], g_diff[gm], d_boxes[dm], d_scores[dm], iou=iou, pixel_offset=pixel_offset
            )
            keep = (tp + fp) > 0  # drop ignored detections (on difficult boxes)
            scores_per_class[c].append(d_scores[dm][keep])
            tp_per_class[c].append(tp[keep])
            fp_per_class[c].append(fp[keep])

    ap: dict[str, float] = {}
    for c, name in enumerate(classes):
        if n_gt[c] == 0:
            ap[name] = math.nan
            continue
        if not scores_per_class[c]:
            ap[name] = 0.0
            continue
        scores = np.concatenate(scores_per_class[c])
        order = np.argsort(-scores, kind="stable")  # ties keep image order, as in the references
        tpc = np.cumsum(np.concatenate(tp_per_class[c])[order])
        fpc = np.cumsum(np.concatenate(fp_per_class[c])[order])
        recall = tpc / n_gt[c]
        precision = tpc / np.maximum(tpc + fpc, np.finfo(np.float64).eps)
        ap[name] = average_precision(recall, precision, interpolation)
    with_gt = [ap[name] for c, name in enumerate(classes) if n_gt[c] > 0]
    return DetectionResult(
        ap=ap,
        map=float(np.mean(with_gt)) if with_gt else math.nan,
        n_gt={name: int(n_gt[c]) for c, name in enumerate(classes)},
        n_det={name: int(n_det[c]) for c, name in enumerate(classes)},
        interpolation=interpolation,
        iou=float(iou),
    )


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB of two same-shape images; inf when identical."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"psnr: shapes {a.shape} and {b.shape} differ")
    mse = float(np.mean((a - b) ** 2))
    if mse == 0.0:
        return math.inf
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> float:
    """SSIM of two HxWx3 (or HxW) float images in [0, data_range], via scikit-image."""
    from skimage.metrics import structural_similarity

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes {a.shape} and {b.shape} differ")
    channel_axis = -1 if a.ndim == 3 else None
    return float(structural_similarity(a, b, channel_axis=channel_axis, data_range=data_range))


def accuracy(probs_or_labels: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy from (N, K) scores (argmax taken) or (N,) predicted labels."""
    pred = np.asarray(probs_or_labels)
    labels = np.asarray(labels).reshape(-1)
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    pred = pred.reshape(-1)
    if len(pred) != len(labels):
        raise ValueError(f"accuracy: {len(pred)} predictions but {len(labels)} labels")
    if len(labels) == 0:
        return math.nan
    return float(np.mean(pred == labels))


def roc_per_class(probs: np.ndarray, labels: np.ndarray) -> dict[int, tuple[np.ndarray, np.ndarray, float]]:
    """One-vs-rest ROC per class index: ``{k: (fpr, tpr, auc)}``.

    A class whose labels are all positive or all negative has no ROC: empty arrays and
    AUC nan.
    """
    from sklearn.metrics import auc, roc_curve

    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"roc_per_class: probs of shape {probs.shape} for {len(labels)} labels")
    out: dict[int, tuple[np.ndarray, np.ndarray, float]] = {}
    for k in range(probs.shape[1]):
        positive = labels == k
        if positive.all() or not positive.any():
            out[k] = (np.empty(0), np.empty(0), math.nan)
            continue
        fpr, tpr, _ = roc_curve(positive, probs[:, k])
        out[k] = (fpr, tpr, float(auc(fpr, tpr)))
    return out


class GateStats:
    """Where the gate looks (Fig. 7): the mean and spread of w over every test pixel, and the
    Pearson correlation of w with the mask "the degraded image is closer to the clean one than
    the restored is", ``|I_LQ - I_HQ| < |I_R - I_HQ|`` (per pixel, mean over channels). The
    paper's claim, that G takes I_LQ where the restoration failed, means a positive correlation.
    Sums are pooled over images in float64, so the result does not depend on how they are
    grouped."""

    def __init__(self) -> None:
        self._s = np.zeros(6)  # n, sum w, sum w^2, sum m, sum m^2, sum w m

    def add(self, w: np.ndarray, lq: np.ndarray, restored: np.ndarray, clean: np.ndarray) -> None:
        """``w`` (H, W) in [0, 1]; the images (H, W, 3), any one dtype and range."""
        lq, restored, clean = (np.asarray(a, np.float64) for a in (lq, restored, clean))
        m = (np.abs(lq - clean).mean(-1) < np.abs(restored - clean).mean(-1)).astype(np.float64).ravel()
        w = np.asarray(w, np.float64).ravel()
        if w.shape != m.shape:
            raise ValueError(f"gate map has {w.size} pixels, the images {m.size}")
        self._s += (w.size, w.sum(), (w * w).sum(), m.sum(), (m * m).sum(), (w * m).sum())

    def result(self) -> dict[str, float | None]:
        n, sw, sww, sm, smm, swm = self._s
        if n == 0:
            return {"gate_mean": None, "gate_sd": None, "gate_corr": None, "degraded_closer": None}
        var_w, var_m = sww / n - (sw / n) ** 2, smm / n - (sm / n) ** 2
        cov = swm / n - (sw / n) * (sm / n)
        # a constant has no correlation (its variance is float64 rounding of E[w^2] - E[w]^2)
        constant = var_w <= 1e-12 * max(sww / n, 1e-300) or var_m <= 1e-12 * max(smm / n, 1e-300)
        corr = None if constant else cov / np.sqrt(var_w * var_m)
        return {"gate_mean": round(sw / n, 4), "gate_sd": round(float(np.sqrt(max(var_w, 0.0))), 4),
                "gate_corr": None if corr is None else round(float(corr), 4),
                "degraded_closer": round(sm / n, 4)}  # fmt: skip
