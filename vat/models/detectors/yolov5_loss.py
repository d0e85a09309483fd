"""D's weighted detection loss for the YOLOv5 family: YOLOv5's ``ComputeLoss`` with per-box weights.

YOLOv5 v7.0 (Jocher et al., https://github.com/ultralytics/yolov5, ``utils/loss.py``), step
for step, without importing it: every ground-truth box is matched, on every level, to the
anchors whose width and height ratios to it stay below ``anchor_t`` (4.0), at its own cell and
at the two neighbouring cells nearest its centre (offset 0.5); each match gets a CIoU box loss
and a BCE class loss (class targets smoothed by ``label_smoothing``; no class loss when
``nc == 1``), and its cell the detached, clamped IoU as objectness target. Objectness is a BCE
over every cell, weighted per level by ``[4.0, 1.0, 0.4]`` (``[4.0, 1.0, 0.25, 0.06, 0.02]``
for four or more levels). ``total = (box * lbox + obj * lobj + cls * lcls) * B``.

Gains (:func:`train_hyp`): the ones D was trained with. YOLOv5's ``train.py`` hands
``ComputeLoss`` its hyperparameters (``hyp.scratch-low.yaml``: box 0.05, obj 1.0, cls 0.5,
anchor_t 4.0) scaled for the model: ``box *= 3 / nl``, ``cls *= nc / 80 * 3 / nl``, ``obj *=
(imgsz / 640) ** 2 * 3 / nl``, and stores the scaled dict on the model (``model.hyp``). A
checkpoint that carries ``model.hyp`` keeps it; otherwise the defaults are scaled by that rule
for D's ``nc``, ``nl`` and ``imgsz`` (its training size).

Per-box weights ``w`` in [0, 1], in the sense of the ultralytics family's loss (weight 0 is
*exactly* the box absent, weight 1 the plain loss, continuous in between):

1. Boxes of weight 0 are dropped before matching.
2. Where YOLOv5 takes a mean over matches (box and class terms, per level), the loss takes
   the ``w``-weighted sum over ``max(sum w, 1)``: a weighted mean, which is YOLOv5's mean when
   every ``w`` is 1 (a level with matches has at least one), and tends to 0 as every weight
   of a level does (ultralytics' ``target_scores.sum().clamp(min=1)``).
3. A matched cell's objectness target is ``w * IoU``: the BCE is linear in its target, so this
   is ``w`` times the box's term plus ``1 - w`` times the background term. A cell matched by
   several boxes takes the target of the heaviest one; among equal weights the last match in
   YOLOv5's order, which is what YOLOv5's ``tobj[b, a, gj, gi] = iou`` leaves on a CPU (so
   with unit weights the result is YOLOv5's), and deterministic on every device.

The objectness mean runs over all cells and does not depend on the weights. Used by
:meth:`vat.models.detectors.yolov5.YOLOv5Detector.loss`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor
from ultralytics.utils.metrics import bbox_iou

from vat.models.detectors.yolov5_net import Detect

__all__ = ["HYP", "train_hyp", "yolov5_loss", "build_targets"]

# YOLOv5 v7.0 data/hyps/hyp.scratch-low.yaml: the loss's entries, before train.py scales them.
HYP: dict[str, float] = {
    "box": 0.05,
    "obj": 1.0,
    "cls": 0.5,
    "anchor_t": 4.0,
    "cls_pw": 1.0,
    "obj_pw": 1.0,
    "label_smoothing": 0.0,
    "fl_gamma": 0.0,
}


def train_hyp(nc: int, nl: int, imgsz: int, base: Mapping[str, float] | None = None) -> dict[str, float]:
    """``base`` (default :data:`HYP`) scaled as YOLOv5 v7.0's train.py does for the loss."""
    h = {**HYP, **{k: float(v) for k, v in (base or {}).items() if k in HYP}}
    h["box"] *= 3 / nl
    h["cls"] *= nc / 80 * 3 / nl
    h["obj"] *= (imgsz / 640) ** 2 * 3 / nl
    return h


def _bce(pred: Tensor, true: Tensor, pos_weight: float, gamma: float) -> Tensor:
    """Elementwise ``BCEWithLogitsLoss(pos_weight)``, wrapped in YOLOv5's FocalLoss when gamma > 0."""
    pw = None if pos_weight == 1.0 else pred.new_tensor([pos_weight])
    loss = F.binary_cross_entropy_with_logits(pred, true, pos_weight=pw, reduction="none")
    if gamma > 0:  # YOLOv5's FocalLoss (alpha 0.25), on the elementwise loss
        p = pred.sigmoid()
        p_t = true * p + (1 - true) * (1 - p)
        loss = loss * (true * 0.25 + (1 - true) * 0.75) * (1.0 - p_t) ** gamma
    return loss


def build_targets(preds: list[Tensor], targets: Tensor, anchors: Tensor, anchor_t: float) -> tuple:
    """YOLOv5's ``build_targets``, each match carrying its box's weight.

    ``targets`` (nt, 7): image, class, x, y, w, h (normalised to the letterboxed image),
    weight. Returns per level: classes, boxes (xy in the cell, wh, grid units), indices
    ``(image, anchor, gy, gx)``, anchors (grid units) and weights of the matches, in YOLOv5's
    order (anchor-major, then the 5 offsets)."""
    na, nt = anchors.shape[1], targets.shape[0]
    device = targets.device
    tcls, tbox, indices, anch, weights = [], [], [], [], []
    gain = torch.ones(8, device=device)  # image, class, x, y, w, h, weight, anchor
    ai = torch.arange(na, device=device).float().view(na, 1).repeat(1, nt)
    targets = torch.cat((targets.repeat(na, 1, 1), ai[..., None]), 2)
    g = 0.5
    off = torch.tensor([[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]], device=device).float() * g
    for i, p in enumerate(preds):
        anchors_i, shape = anchors[i], p.shape
        gain[2:6] = torch.tensor(shape, device=device)[[3, 2, 3, 2]].float()
        t = targets * gain
        if nt:
            r = t[..., 4:6] / anchors_i[:, None]  # width and height ratios to each anchor
            t = t[torch.max(r, 1 / r).max(2)[0] < anchor_t]
            gxy = t[:, 2:4]
            gxi = gain[[2, 3]] - gxy
            left, up = ((gxy % 1 < g) & (gxy > 1)).T  # YOLOv5's j, k: the cells left of / above
            right, down = ((gxi % 1 < g) & (gxi > 1)).T  # its l, m: right of / below
            j = torch.stack((torch.ones_like(left), left, up, right, down))
            t = t.repeat((5, 1, 1))[j]
            offsets = (torch.zeros_like(gxy)[None] + off[:, None])[j]
        else:
            t, offsets = targets[0], 0
        bc, gxy, gwh, w, a = t.split((2, 2, 2, 1, 1), 1)
        a, (b, c) = a.long().view(-1), bc.long().T
        gij = (gxy - offsets).long()
        gi, gj = gij.T
        indices.append((b, a, gj.clamp_(0, shape[2] - 1), gi.clamp_(0, shape[3] - 1)))  # clamps gij too
        tbox.append(torch.cat((gxy - gij, gwh), 1))
        anch.append(anchors_i[a])
        tcls.append(c)
        weights.append(w.view(-1))
    return tcls, tbox, indices, anch, weights


def _set_objectness(tobj: Tensor, index: tuple[Tensor, ...], w: Tensor, value: Tensor) -> None:
    """``tobj[index] = value``, one write per cell: the match of largest ``w``, ties to the last."""
    b, a, gj, gi = index
    _, na, ny, nx = tobj.shape
    cell = ((b * na + a) * ny + gj) * nx + gi
    order = torch.sort(w, stable=True).indices  # light to heavy; equal weights keep YOLOv5's order
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=order.device)
    best = torch.full((tobj.numel(),), -1, dtype=rank.dtype, device=rank.device)
    best = best.scatter_reduce(0, cell, rank, "amax")
    win = rank == best[cell]
    tobj.view(-1)[cell[win]] = value[win]


def yolov5_loss(
    preds: list[Tensor], targets: Tensor, head: Detect, hyp: Mapping[str, float]
) -> tuple[Tensor, Tensor]:
    """YOLOv5's ``ComputeLoss`` on raw ``preds`` ``[(B, na, ny, nx, 5 + nc)]`` with per-box
    weights (module docstring). ``targets`` (nt, 7): image, class, normalised xywh, weight.

    Returns ``(total, parts)``: ``total = parts.sum() * B`` (what YOLOv5's trainer
    backpropagates); ``parts`` (3,) the detached gained box, objectness and class terms."""
    preds = [p.float() for p in preds]  # the loss in float32 (autocast gives bf16 predictions)
    device, nc = preds[0].device, head.nc
    targets = targets[targets[:, 6] > 0]  # weight 0: the box does not exist
    tcls, tbox, indices, anch, tw = build_targets(
        preds, targets.float(), head.anchors.float(), float(hyp["anchor_t"])
    )
    eps = float(hyp.get("label_smoothing", 0.0))
    cp, cn = 1.0 - 0.5 * eps, 0.5 * eps
    gamma = float(hyp.get("fl_gamma", 0.0))
    cls_pw, obj_pw = float(hyp.get("cls_pw", 1.0)), float(hyp.get("obj_pw", 1.0))
    balance = {3: [4.0, 1.0, 0.4]}.get(head.nl, [4.0, 1.0, 0.25, 0.06, 0.02])
    lbox, lobj, lcls = (torch.zeros((), device=device) for _ in range(3))
    for i, pi in enumerate(preds):
        b, a, gj, gi = indices[i]
        tobj = torch.zeros(pi.shape[:4], dtype=pi.dtype, device=device)
        n = b.shape[0]
        if n:
            w = tw[i]
            norm = w.sum().clamp(min=1)
            pxy, pwh, _, pcls = pi[b, a, gj, gi].split((2, 2, 1, nc), 1)
            pbox = torch.cat((pxy.sigmoid() * 2 - 0.5, (pwh.sigmoid() * 2) ** 2 * anch[i]), 1)
            iou = bbox_iou(pbox, tbox[i], CIoU=True).squeeze(-1)
            lbox = lbox + ((1.0 - iou) * w).sum() / norm
            _set_objectness(tobj, indices[i], w, w * iou.detach().clamp(0).to(tobj.dtype))
            if nc > 1:
                t = torch.full_like(pcls, cn)
                t[range(n), tcls[i]] = cp
                lcls = lcls + (_bce(pcls, t, cls_pw, gamma).sum(1) * w).sum() / (norm * nc)
        lobj = lobj + _bce(pi[..., 4], tobj, obj_pw, gamma).mean() * balance[i]
    parts = torch.stack((lbox * hyp["box"], lobj * hyp["obj"], lcls * hyp["cls"]))
    return parts.sum() * preds[0].shape[0], parts.detach()
