"""Pseudo-labels for self-training: D on I_LQ and R(I_LQ) merged, NUQ uncertainty, the epsilon filter.

Because R and D are frozen and the inputs are not augmented, pseudo-labels never change
during training: the ``pseudolabel`` stage computes them once (SPEC stage 5; the authors'
release recomputes them every step, which is exact only because of that).

The training split is divided into the images VaT sees degraded and the images it sees
clean (:func:`roles`): by default two disjoint halves (``pairing: disjoint``, stricter than
the paper); ``pairing: shared`` uses every training image in both roles, as the paper's
VOCh does. For each degraded image: D on I_LQ and on R(I_LQ), merged by class-wise NMS
keeping the most confident box (its source recorded). NUQ (:mod:`vat.labels.uncertainty`)
scores every box against a reference set of D's predictions on the clean images; boxes
whose epistemic uncertainty exceeds epsilon (a quantile rule, :func:`epsilon`; a box at
epsilon is kept) are dropped, and a kept box's loss weight falls from ``hi`` (most
certain) to ``lo`` (at epsilon) (:func:`weights`). D on the clean images gives Y_HQ as
Algorithm 1 uses it: every box kept (``clean_filter: true`` filters them as Y_LQ is); its
uncertainty U_HQ (the mix term's weights, Eq. 7) is scored leave-one-out, since each
clean box is itself in the reference set.
Ground truth is read only to report pseudo-label quality (:func:`quality`), never to
choose a label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from vat.data.manifest import Manifest, Record
from vat.errors import DataError
from vat.io import atomic_path
from vat.seeding import item_seed


@dataclass(frozen=True)
class PseudolabelParams:
    """``pseudolabel``: how pseudo-labels are made, scored and filtered."""

    pairing: Literal["disjoint", "shared"]  # degraded and clean training images: disjoint halves, or the same
    conf: float  # D's score threshold for a candidate box
    nms_iou: float  # D's own NMS IoU
    merge_iou: float  # IoU of the NMS that merges D(I_LQ) and D(I_R)
    k: int  # NUQ neighbours (the authors used 20)
    bandwidth: float | str  # NUQ RBF bandwidth: a rule name (see vat/labels/uncertainty.py) or a number
    metric: Literal["cosine", "euclidean"]  # NUQ feature distance
    nuq_mode: Literal[
        "classification", "regression"
    ]  # NUQ target: D's class, or its confidence (released code)
    epsilon_quantile: float  # epsilon = this quantile of the epistemic scores named by epsilon_of
    epsilon_of: Literal["query", "reference"]  # query: the degraded boxes; reference: the clean boxes
    weight_range: tuple[float, float]  # loss weight of the most / least certain kept box maps into [lo, hi]
    clean_filter: bool = False  # also drop clean boxes above epsilon (Algorithm 1 keeps every Y_HQ box)

    def __post_init__(self) -> None:
        if not 0 < self.epsilon_quantile <= 1:
            raise ValueError("pseudolabel.epsilon_quantile must be in (0, 1]")
        if self.k < 1 or not 0 <= self.conf < 1:
            raise ValueError("pseudolabel.k must be >= 1 and conf in [0, 1)")
        lo, hi = self.weight_range
        if not 0 <= lo <= hi <= 1:
            raise ValueError("pseudolabel.weight_range must be [lo, hi] with 0 <= lo <= hi <= 1")


@dataclass
class Sources:
    """What pseudo-labelling reads: the manifests, the training images' roles, and D's folder."""

    task: str
    clean: Manifest
    role: dict[str, list[Record]]  # "degraded" / "clean": the training images in each role
    low: dict[str, Record]  # image id -> degraded image
    rest: dict[str, Record]  # image id -> restored image
    models: Path  # D's folder (train_detector's output)


def sources(task: str, seed: int, pairing: str, clean_path: Path, degraded_path: Path, restored_path: Path,
            models: Path) -> Sources:  # fmt: skip
    """The manifests read and checked: every degraded training image has its degraded and
    restored copy."""
    from vat.data.manifest import read_manifest

    clean = read_manifest(clean_path)
    low = {r.image_id: r for r in read_manifest(degraded_path).records}
    rest = {r.image_id: r for r in read_manifest(restored_path).records}
    role = roles(clean, seed, pairing)
    for r in role["degraded"]:
        for name, table, path in (("degraded", low, degraded_path), ("restored", rest, restored_path)):
            if r.image_id not in table:
                raise DataError(f"{path}: has no {name} image for training image {r.image_id!r}")
    return Sources(task, clean, role, low, rest, models)


def write_images(src: Sources, tmp: Path) -> None:
    """``images.parquet``: every self-training image and its role (domain)."""
    images = [{"image_id": r.image_id, "domain": d, "split": r.split} for d in src.role for r in src.role[d]]
    _write(images, pa.Table.from_pylist, "images.parquet", tmp)


def roles(clean: Manifest, seed: int, pairing: str) -> dict[str, list[Record]]:
    """The training images VaT sees degraded and those it sees clean."""
    train = clean.split("train")
    if any(r.domain for r in train):  # photographs given degraded and clean: their folders decide
        return {d: [r for r in train if r.domain == d] for d in ("degraded", "clean")}
    if pairing == "shared":
        return {"degraded": train, "clean": train}
    order = sorted(train, key=lambda r: item_seed(seed, "pairing", r.image_id))
    half = len(order) // 2
    return {"degraded": sorted(order[:half], key=lambda r: r.image_id),
            "clean": sorted(order[half:], key=lambda r: r.image_id)}  # fmt: skip


def _write(rows, to_table, name: str, tmp: Path, schema=None) -> None:
    table = pa.Table.from_pylist(rows, schema=schema) if schema is not None else to_table(rows)
    with atomic_path(tmp / name) as t:
        pq.write_table(table, t)


# ---------------------------------------------------------------------------- detection


def _predict(detector, records: list[Record], params, dev, batch, track, label: str):
    """D with per-box features on each record's image, in order."""
    from vat.eval.evaluation import run_records

    batches = run_records(lambda x: detector.predict(x, conf=params.conf, iou=params.nms_iou), records, batch,
                          dev, track, f"pseudolabel: D({label})")  # fmt: skip
    return [d for dets in batches for d in dets]


def detect(src: Sources, params: PseudolabelParams, tmp: Path, dev, batch: int, track) -> dict:
    task, clean, role, low, rest, models = src.task, src.clean, src.role, src.low, src.rest, src.models
    from vat.eval.evaluation import load_vision_model
    from vat.labels.pseudolabels import BOX_SCHEMA, Candidates, match_truth, merge
    from vat.models.classmap import load_class_map, map_classes

    det = load_vision_model(task, models, clean.classes, dev)
    cm = load_class_map(models, det.names, clean.classes)  # D's classes -> the task's, to score only
    deg_recs = role["degraded"]
    on_low = _predict(det, [low[r.image_id] for r in deg_recs], params, dev, batch, track, "I_LQ")
    on_rest = _predict(det, [rest[r.image_id] for r in deg_recs], params, dev, batch, track, "I_R")
    on_clean = _predict(det, role["clean"], params, dev, batch, track, "I_HQ")

    merged = [
        merge([Candidates.from_detections(a, "degraded"), Candidates.from_detections(b, "restored")],
              params.merge_iou)
        for a, b in zip(on_low, on_rest, strict=True)
    ]  # fmt: skip
    ref = [Candidates.from_detections(d, "clean") for d in on_clean]
    ref_feats = np.concatenate([c.features for c in ref]) if ref else np.zeros((0, det.feature_dim))
    if len(ref_feats) < params.k:
        raise DataError(
            f"{models / 'detector.pt'}: D found {len(ref_feats)} boxes on the clean training images, fewer "
            f"than pseudolabel.k = {params.k}; the NUQ reference set is too small (lower pseudolabel.conf?)"
        )
    ref_cls = np.concatenate([c.classes for c in ref])
    ref_conf = np.concatenate([c.scores for c in ref])
    nuq = _nuq(params, dev).fit(
        torch.from_numpy(ref_feats),
        torch.from_numpy(ref_cls if params.nuq_mode == "classification" else ref_conf),
    )
    deg_scores = _score(nuq, merged)
    clean_scores = _as_numpy(nuq.predict_loo())  # the clean boxes are the reference set: leave-one-out
    eps = epsilon(params, deg_scores["epistemic"], clean_scores["epistemic"])

    rows, truth_rows = [], []
    for r, c, s in zip(deg_recs, merged, _split(deg_scores, merged), strict=True):
        kept = s["epistemic"] <= eps
        rows += _rows(r.image_id, "degraded", c, s, kept, weights(params, s["epistemic"], eps, kept))
        # report only: boxes of D's classes that map to a task class, against the ground truth
        task_cls = map_classes(c.classes, cm)
        scored = task_cls >= 0
        correct = np.zeros(len(scored), dtype=bool)
        correct[scored] = match_truth(c.boxes[scored], task_cls[scored], c.scores[scored], r.boxes)
        truth_rows.append((c, s, kept, correct, len([b for b in r.boxes if not b.difficult]), scored))
    clean_kept = clean_scores["epistemic"] <= eps
    for r, c, s in zip(role["clean"], ref, _split(clean_scores, ref), strict=True):
        kept, w = clean_weights(params, s["epistemic"], eps)
        rows += _rows(r.image_id, "clean", c, s, kept, w)
    _write(rows, None, "boxes.parquet", tmp, schema=BOX_SCHEMA)
    from vat.labels.online import REFERENCE, save_reference  # what train.labels: online re-scores with

    save_reference(tmp / REFERENCE, ref_feats, ref_cls if params.nuq_mode == "classification" else ref_conf,
                   eps, params)  # fmt: skip
    clean = {"boxes": int(len(clean_kept)), "at_or_below_epsilon": int(clean_kept.sum()),
             "filtered": bool(params.clean_filter)}  # fmt: skip
    return {"task": task, "epsilon": float(eps), "boxes": len(rows), "clean": clean} | quality(truth_rows)


def _nuq(params, dev):
    from vat.labels.uncertainty import NUQ

    return NUQ(k=params.k, bandwidth=params.bandwidth, metric=params.metric, device=dev, mode=params.nuq_mode)


def _score(nuq, cands) -> dict[str, np.ndarray]:
    feats = np.concatenate([c.features for c in cands]) if cands else np.zeros((0, 1), np.float32)
    if len(feats) == 0:
        return {k: np.zeros(0, np.float32) for k in ("aleatoric", "epistemic", "total")}
    return _as_numpy(nuq.predict(torch.from_numpy(feats)))


def _as_numpy(res) -> dict[str, np.ndarray]:
    return {
        k: getattr(res, k).detach().cpu().numpy().astype(np.float32)
        for k in ("aleatoric", "epistemic", "total")
    }


def _split(scores: dict[str, np.ndarray], cands) -> list[dict[str, np.ndarray]]:
    """Per-image slices of the flat score arrays."""
    out, start = [], 0
    for c in cands:
        n = len(c.scores)
        out.append({k: v[start : start + n] for k, v in scores.items()})
        start += n
    return out


def epsilon(params, deg_epistemic: np.ndarray, clean_epistemic: np.ndarray) -> float:
    pool = deg_epistemic if params.epsilon_of == "query" else clean_epistemic
    if len(pool) == 0:
        return float("inf")
    return float(np.quantile(pool, params.epsilon_quantile))


def weights(params, epistemic: np.ndarray, eps: float, kept: np.ndarray) -> np.ndarray:
    """Kept boxes: weight falls linearly from hi (least uncertain) to lo (at epsilon); dropped: 0."""
    from vat.labels.uncertainty import loss_weights

    lo, hi = params.weight_range
    w = (
        loss_weights(torch.from_numpy(epistemic), lo=lo, hi=hi, eps=eps, drop=False).numpy()
        if len(epistemic)
        else epistemic
    )
    return np.where(kept, w, 0.0).astype(np.float32)


def clean_weights(params, epistemic: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """(kept, weight) of Y_HQ: every box kept with its U_HQ weight (boxes beyond epsilon at ``lo``),
    unless ``clean_filter`` applies the degraded boxes' rule."""
    kept = epistemic <= eps if params.clean_filter else np.ones(len(epistemic), dtype=bool)
    return kept, weights(params, epistemic, eps, kept)


def _rows(image_id, domain, c, s, kept, weight) -> list[dict]:
    return [
        {"image_id": image_id, "domain": domain, "source": str(c.sources[i]), "cls": int(c.classes[i]),
         "confidence": float(c.scores[i]), "x1": float(c.boxes[i, 0]), "y1": float(c.boxes[i, 1]),
         "x2": float(c.boxes[i, 2]), "y2": float(c.boxes[i, 3]), "aleatoric": float(s["aleatoric"][i]),
         "epistemic": float(s["epistemic"][i]), "total": float(s["total"][i]), "weight": float(weight[i]),
         "kept": bool(kept[i])}
        for i in range(len(c.scores))
    ]  # fmt: skip


def quality(truth_rows) -> dict:
    """Precision / recall at IoU 0.5 before and after the filter (and the precision of the most
    confident boxes, as many as true ones); AUROC of the uncertainty."""
    from sklearn.metrics import roc_auc_score

    n_gt = sum(t[4] for t in truth_rows)
    # only the boxes of D's classes that map to a task class are scored
    scored = np.concatenate([t[5] for t in truth_rows]) if truth_rows else np.zeros(0, bool)
    correct = np.concatenate([t[3] for t in truth_rows])[scored] if truth_rows else np.zeros(0, bool)
    kept = np.concatenate([t[2] for t in truth_rows])[scored] if truth_rows else np.zeros(0, bool)
    sources = (
        np.concatenate([t[0].sources for t in truth_rows])[scored] if truth_rows else np.zeros(0, object)
    )
    scores = {
        k: np.concatenate([t[1][k] for t in truth_rows])[scored] for k in ("epistemic", "aleatoric", "total")
    }

    confidence = np.concatenate([t[0].scores for t in truth_rows])[scored] if truth_rows else np.zeros(0)

    def pr(mask):
        tp = int((correct & mask).sum())
        # precision of as many boxes as there are true ones, most confident first (R-precision):
        # what a low pseudolabel.conf adds at the tail does not hide how good the head is
        top = np.flatnonzero(mask)
        top = top[np.argsort(-confidence[top], kind="stable")[:n_gt]]
        return {"boxes": int(mask.sum()), "tp": tp, "precision": round(tp / max(int(mask.sum()), 1), 4),
                "recall": round(tp / max(n_gt, 1), 4),
                "precision_top": round(float(correct[top].mean()), 4) if len(top) else None}  # fmt: skip

    everything = np.ones_like(correct)
    if n_gt == 0:  # photographs without labels: counts only, nothing to measure against
        return {"ground_truth_boxes": 0, "before_filter": {"boxes": int(everything.sum())},
                "after_filter": {"boxes": int(kept.sum())}, "auroc_correct_vs_wrong": {},
                "quality": "not measured: the training images carry no labels"}  # fmt: skip
    out = {"ground_truth_boxes": int(n_gt), "before_filter": pr(everything), "after_filter": pr(kept),
           "by_source": {s: pr(sources == s) for s in ("degraded", "restored")}}  # fmt: skip
    auroc = {}
    if 0 < correct.sum() < len(correct):
        for k, v in scores.items():
            # Higher uncertainty should mean wrong: AUROC of -u for telling correct boxes.
            auroc[k] = round(float(roc_auc_score(correct, -v)), 4)
    out["auroc_correct_vs_wrong"] = auroc
    return out


# ----------------------------------------------------------------------- classification


def classify(src: Sources, params: PseudolabelParams, tmp: Path, dev, batch: int, track) -> dict:
    task, clean, role, low, rest, models = src.task, src.clean, src.role, src.low, src.rest, src.models
    from sklearn.metrics import roc_auc_score

    from vat.eval.evaluation import load_vision_model, run_records
    from vat.labels.pseudolabels import LABEL_SCHEMA

    clf = load_vision_model(task, models, clean.classes, dev)

    def predict(records, label):
        outs = run_records(clf.predict, records, batch, dev, track, f"pseudolabel: D({label})")
        probs = np.concatenate([p.probs.cpu().numpy() for p in outs])
        return probs, np.concatenate([p.features.cpu().numpy() for p in outs]).astype(np.float32)

    deg = role["degraded"]
    p_low, f_low = predict([low[r.image_id] for r in deg], "I_LQ")
    p_rest, f_rest = predict([rest[r.image_id] for r in deg], "I_R")
    p_clean, f_clean = predict(role["clean"], "I_HQ")
    use_rest = p_rest.max(1) > p_low.max(1)  # the more confident of D(I_LQ) and D(I_R)
    probs = np.where(use_rest[:, None], p_rest, p_low)
    feats = np.where(use_rest[:, None], f_rest, f_low)
    target = p_clean.argmax(1) if params.nuq_mode == "classification" else p_clean.max(1)
    nuq = _nuq(params, dev).fit(torch.from_numpy(f_clean), torch.from_numpy(target))
    res_deg, res_clean = nuq.predict(torch.from_numpy(feats)), nuq.predict_loo()  # clean: leave-one-out
    deg_ep, clean_ep = res_deg.epistemic.cpu().numpy(), res_clean.epistemic.cpu().numpy()
    eps = epsilon(params, deg_ep, clean_ep)
    kept = deg_ep <= eps
    clean_kept, clean_w = clean_weights(params, clean_ep.astype(np.float32), eps)
    rows = []
    deg_w = weights(params, deg_ep.astype(np.float32), eps, kept)
    for domain, recs, pr, res, k, w, src in (
        ("degraded", deg, probs, res_deg, kept, deg_w, np.where(use_rest, "restored", "degraded")),
        ("clean", role["clean"], p_clean, res_clean, clean_kept, clean_w, np.array(["clean"] * len(p_clean))),
    ):
        ep = res.epistemic.cpu().numpy()
        for i, r in enumerate(recs):
            rows.append({"image_id": r.image_id, "domain": domain, "source": str(src[i]),
                         "probs": pr[i].astype(np.float32).tolist(), "label": int(pr[i].argmax()),
                         "confidence": float(pr[i].max()), "aleatoric": float(res.aleatoric[i]),
                         "epistemic": float(ep[i]), "total": float(res.total[i]), "weight": float(w[i]),
                         "kept": bool(k[i])})  # fmt: skip
    _write(rows, None, "labels.parquet", tmp, schema=LABEL_SCHEMA)
    truth = np.array([r.label for r in deg])
    correct = probs.argmax(1) == truth  # report only
    out = {"task": task, "epsilon": float(eps), "labels": len(rows),
           "accuracy_before_filter": round(float(correct.mean()), 4),
           "accuracy_after_filter": round(float(correct[kept].mean()), 4) if kept.any() else None,
           "kept": int(kept.sum())}  # fmt: skip
    if 0 < correct.sum() < len(correct):
        out["auroc_correct_vs_wrong"] = {"epistemic": round(float(roc_auc_score(correct, -deg_ep)), 4)}
    return out
