"""Pseudo-labels for self-training (VaT Algorithm 1): merge, score, filter, weight.

For a degraded image, D's predictions on I_LQ and on R(I_LQ) are pooled and merged by
class-wise NMS, keeping the most confident box of each overlapping group and recording
which input produced it (``Y_LQ = NMS(D(I_LQ), D(I_R))``). NUQ (vat/labels/uncertainty.py) then
scores every kept box against a reference set built from D's predictions on clean images;
boxes whose uncertainty exceeds epsilon are dropped, the rest carry a loss weight.

The Parquet schema of ``data/pseudolabel/boxes.parquet`` (one row per box):

===========  =======  ==============================================================
column       type     meaning
===========  =======  ==============================================================
image_id     string   the image the box belongs to
domain       string   ``degraded`` (a label for I_LQ) or ``clean`` (a label for I_HQ)
source       string   which input D saw: ``degraded``, ``restored`` or ``clean``
cls          int32    class index into the manifest's class list
confidence   float32  D's score
x1 .. y2     float32  pixels, in the image's own frame
aleatoric    float32  NUQ aleatoric uncertainty
epistemic    float32  NUQ epistemic uncertainty (what epsilon filters)
total        float32  NUQ total uncertainty
weight       float32  loss weight derived from the uncertainty (0 when not kept)
kept         bool     passed the filter (epistemic <= epsilon)
===========  =======  ==============================================================

``images.parquet``: image_id, domain, split — every image used for self-training, with
or without boxes (an image without a box still contributes its cycle loss).
``labels.parquet`` (task classify): image_id, domain, source, probs (list<float32>),
label, confidence, aleatoric, epistemic, total, weight, kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import torch

BOX_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("cls", pa.int32()),
        ("confidence", pa.float32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("aleatoric", pa.float32()),
        ("epistemic", pa.float32()),
        ("total", pa.float32()),
        ("weight", pa.float32()),
        ("kept", pa.bool_()),
    ]
)
IMAGE_SCHEMA = pa.schema([("image_id", pa.string()), ("domain", pa.string()), ("split", pa.string())])
LABEL_SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("domain", pa.string()),
        ("source", pa.string()),
        ("probs", pa.list_(pa.float32())),
        ("label", pa.int32()),
        ("confidence", pa.float32()),
        ("aleatoric", pa.float32()),
        ("epistemic", pa.float32()),
        ("total", pa.float32()),
        ("weight", pa.float32()),
        ("kept", pa.bool_()),
    ]
)


@dataclass
class Candidates:
    """Boxes of one image before scoring: (N, 4) boxes, (N,) scores, (N,) classes, (N, F) features."""

    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    features: np.ndarray
    sources: np.ndarray  # (N,) str

    @classmethod
    def from_detections(cls, det, source: str) -> Candidates:
        n = len(det.scores)
        return cls(
            det.boxes.cpu().numpy().astype(np.float32),
            det.scores.cpu().numpy().astype(np.float32),
            det.classes.cpu().numpy().astype(np.int64),
            det.features.cpu().numpy().astype(np.float32),
            np.array([source] * n, dtype=object),
        )


def merge(parts: list[Candidates], iou: float) -> Candidates:
    """Class-wise NMS over the union of ``parts``: the most confident box of each group wins.

    Ties in score go to the earlier part (e.g. the degraded image before the restored one).
    """
    from torchvision.ops import batched_nms

    pool = Candidates(*(np.concatenate([getattr(p, f) for p in parts]) for f in
                        ("boxes", "scores", "classes", "features", "sources")))  # fmt: skip
    if len(pool.scores) == 0:
        return pool
    # Stable order: score descending, then part order; batched_nms keeps the first of equals.
    order = np.lexsort((np.arange(len(pool.scores)), -pool.scores))
    keep = batched_nms(
        torch.from_numpy(pool.boxes[order]).double(),
        torch.from_numpy(pool.scores[order]).double(),
        torch.from_numpy(pool.classes[order]),
        iou,
    ).numpy()
    idx = order[np.sort(keep)]  # keep score-descending order
    return Candidates(
        pool.boxes[idx], pool.scores[idx], pool.classes[idx], pool.features[idx], pool.sources[idx]
    )


def match_truth(
    boxes: np.ndarray, classes: np.ndarray, scores: np.ndarray, truth, iou: float = 0.5
) -> np.ndarray:
    """For reporting only: which boxes are true positives against ground truth (greedy by score)."""
    from vat.eval.metrics import box_iou

    correct = np.zeros(len(boxes), dtype=bool)
    if len(boxes) == 0 or not truth:
        return correct
    gt = np.array([[b.x1, b.y1, b.x2, b.y2] for b in truth], dtype=np.float64)
    gt_cls = np.array([b.cls for b in truth])
    used = np.zeros(len(gt), dtype=bool)
    ious = box_iou(boxes.astype(np.float64), gt)  # (N, M)
    for i in np.argsort(-scores, kind="stable"):
        cand = np.where((gt_cls == classes[i]) & ~used, ious[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= iou:
            correct[i] = True
            used[j] = True
    return correct
