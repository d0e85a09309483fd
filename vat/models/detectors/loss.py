"""D's weighted detection loss for the ultralytics family (anchor-free ``Detect`` heads).

Ultralytics' v8 detection loss (CIoU box + BCE class + DFL, TaskAlignedAssigner; Feng et
al., ICCV 2021 "TOOD"; Li et al., NeurIPS 2020 "Generalized Focal Loss") with one weight in
[0, 1] per ground-truth box: see :class:`WeightedDetectionLoss`. Used by
:meth:`vat.models.detectors.ultralytics.FrozenDetector.loss`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors

__all__ = ["WeightedDetectionLoss", "WeightedTaskAlignedAssigner"]


class WeightedTaskAlignedAssigner(TaskAlignedAssigner):
    """TaskAlignedAssigner whose conflicts go to the box with the larger ``weight * IoU``.

    In the TaskAlignedAssigner the ground-truth boxes interact in one place only: an anchor
    among the top-k candidates of several boxes goes to the box it overlaps most. Here that
    overlap is multiplied by the box weight, so as a weight goes to 0 its box loses every
    contested anchor, exactly as if it were absent, and the loss is continuous in the
    weights. With all weights 1 this is ultralytics' assigner unchanged.
    """

    _gt_weights: Tensor | None = None

    def _forward(  # 9 parameters: ultralytics' TaskAlignedAssigner._forward's, plus gt_weights
        self, pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, gt_weights=None, **extra
    ):
        # (b, n_max_boxes, 1); ultralytics' out-of-memory fallback slices the batch but not the boxes
        self._gt_weights = None if gt_weights is None else gt_weights[:, : gt_bboxes.shape[1]]
        try:
            return super()._forward(pd_scores, pd_bboxes, anc_points, gt_labels, gt_bboxes, mask_gt, **extra)
        finally:
            self._gt_weights = None

    def select_highest_overlaps(self, mask_pos, overlaps, n_max_boxes, align_metric):
        if self._gt_weights is not None:
            overlaps = overlaps * self._gt_weights.to(overlaps.dtype)  # ranks contested anchors only
        return super().select_highest_overlaps(mask_pos, overlaps, n_max_boxes, align_metric)


class WeightedDetectionLoss(v8DetectionLoss):
    """ultralytics' v8 detection loss with one weight in [0, 1] per ground-truth box.

    Ultralytics' own code for 8.4.190, step for step, with three changes:

    1. Boxes of weight 0 are dropped before the assigner runs: weight 0 is *exactly* the
       loss without that box.
    2. An anchor claimed by several boxes goes to the largest ``weight * IoU`` rather than
       the largest IoU (:class:`WeightedTaskAlignedAssigner`).
    3. After assignment, each foreground anchor's target scores (the class target of the
       BCE, which are also the CIoU / DFL weights) are multiplied by the weight of its box.
       The normaliser stays ultralytics' ``target_scores.sum()``, of the weighted targets.

    So a box of weight ``w`` keeps the anchors it would get at weight 1 unless another box
    beats it on ``weight * IoU``; its anchors' class target becomes ``w`` times the
    task-aligned score (a soft label: the BCE is linear in its target, so this is ``w``
    times the positive term plus ``1 - w`` times the background term); its CIoU and DFL
    terms are scaled by ``w``; and it counts as ``w`` of a box in the normaliser, so the
    loss is a weighted mean over assigned targets (when every box has the same weight the
    box and DFL terms do not change; only the class targets soften). The loss is
    continuous in each weight and, as ``w`` goes to 0, tends to the loss without the box.
    Weight 1 everywhere is ultralytics' loss bit for bit.
    ``batch["weights"]`` (M,) goes with ``batch["cls"]`` / ``batch["bboxes"]``; absent = 1.
    """

    def __init__(self, model: nn.Module, tal_topk: int = 10, tal_topk2: int | None = None):
        super().__init__(model, tal_topk=tal_topk, tal_topk2=tal_topk2)
        a = self.assigner
        self.assigner = WeightedTaskAlignedAssigner(
            topk=a.topk,
            num_classes=a.num_classes,
            alpha=a.alpha,
            beta=a.beta,
            stride=a.stride,
            eps=a.eps,
            topk2=a.topk2,
        )

    # ultralytics' v8 loss with per-box weights, its steps in ultralytics' order (easier to diff).
    def get_assigned_targets_and_loss(self, preds: dict[str, Tensor], batch: dict[str, Any], **assign_kwargs):
        loss = torch.zeros(3, device=self.device)  # box, cls, dfl
        pred_distri, pred_scores = (
            preds["boxes"].permute(0, 2, 1).contiguous(),  # (B, A, 4 * reg_max)
            preds["scores"].permute(0, 2, 1).contiguous(),  # (B, A, nc)
        )
        anchor_points, stride_tensor = make_anchors(preds["feats"], self.stride, 0.5)
        dtype = pred_scores.dtype
        batch_size = pred_scores.shape[0]
        imgsz = torch.tensor(preds["feats"][0].shape[2:], device=self.device, dtype=dtype) * self.stride[0]

        cls = batch["cls"].view(-1, 1).to(self.device)
        weights = batch.get("weights")
        weights = (
            torch.ones_like(cls, dtype=torch.float32)
            if weights is None
            else weights.detach().view(-1, 1).to(self.device, torch.float32)
        )
        targets = torch.cat(
            (batch["batch_idx"].view(-1, 1).to(self.device), cls, batch["bboxes"].to(self.device), weights), 1
        )
        targets = targets[weights.view(-1) > 0]  # weight 0: the box does not exist
        targets = self.preprocess(targets, batch_size, scale_tensor=imgsz[[1, 0, 1, 0]])
        gt_labels, gt_bboxes, gt_weights = targets.split((1, 4, 1), 2)  # cls, xyxy, weight
        mask_gt = gt_bboxes.sum(2, keepdim=True).gt_(0.0)

        pred_bboxes = self.bbox_decode(anchor_points, pred_distri)  # xyxy, (B, A, 4)
        _, target_bboxes, target_scores, fg_mask, target_gt_idx = self.assigner(
            pred_scores.detach().sigmoid(),
            (pred_bboxes.detach() * stride_tensor).type(gt_bboxes.dtype),
            anchor_points * stride_tensor,
            gt_labels,
            gt_bboxes,
            mask_gt,
            gt_weights=gt_weights,
            **assign_kwargs,
        )
        if gt_weights.shape[1]:
            anchor_w = gt_weights.squeeze(-1).gather(1, target_gt_idx.long())  # (B, A) weight of assigned box
            target_scores = target_scores * torch.where(fg_mask, anchor_w, 1.0).unsqueeze(-1)

        target_scores_sum = target_scores.sum().clamp_(min=1)
        bce_loss = self.bce(pred_scores, target_scores.to(dtype))  # (B, A, nc)
        if self.class_weights is not None:
            bce_loss *= self.class_weights
        loss[1] = bce_loss.sum() / target_scores_sum
        loss[0], loss[2] = self.bbox_loss(
            pred_distri,
            pred_bboxes,
            anchor_points,
            target_bboxes / stride_tensor,
            target_scores,
            target_scores_sum,
            fg_mask,
            imgsz,
            stride_tensor,
        )
        loss[0] *= self.hyp.box
        loss[1] *= self.hyp.cls
        loss[2] *= self.hyp.dfl
        return (
            (fg_mask, target_gt_idx, target_bboxes, anchor_points, stride_tensor),
            loss,
            dict(zip(self.loss_names, loss.detach(), strict=True)),
        )
