"""The frozen detector D: an ultralytics YOLO behind one input contract, with its own loss.

VaT (Wu & Jin, ECCV 2024) trains a translator T against a *frozen* detector D through D's
own training loss on pseudo-labels. This wrapper is that D for every anchor-free
ultralytics YOLO with a one-to-many ``Detect`` head (YOLOv3u, v5u, v6, v8, v9, 11, 12;
Jocher et al., https://github.com/ultralytics/ultralytics, pinned at 8.4.190 because its
prediction format changed across 8.x). End-to-end heads (YOLOv10, YOLO26) are refused: their
loss is a scheduled mix of two heads that a frozen teacher has no use for.

Contract:

- Input: RGB float images in [0, 1], ``(B, 3, H, W)``, any size. The wrapper letterboxes
  them differentiably, as ultralytics does when it trains and predicts: resize so the long
  side equals ``imgsz`` keeping the aspect ratio (bilinear, antialiased when shrinking;
  ``resize=False`` keeps the native size), then pad bottom / right with gray 114/255 to a
  multiple of the largest stride. Boxes in and out are pixel x1 y1 x2 y2 in the frame of
  the images as given; the wrapper maps them to and from the letterboxed frame.
- Frozen for good: no parameter requires a gradient and every module stays in eval mode,
  even when a parent calls ``.train()`` (SPEC "Losses": BatchNorm statistics must not move;
  the authors' release switched D to train mode, which we must not copy).
- :meth:`FrozenDetector.loss` is ultralytics' v8 detection loss (CIoU box + BCE class +
  DFL, TaskAlignedAssigner; Feng et al., ICCV 2021 "TOOD"; Li et al., NeurIPS 2020
  "Generalized Focal Loss") on the eval-mode outputs, with per-box weights (see
  :class:`WeightedDetectionLoss`); gradients reach only the input images.
- :meth:`FrozenDetector.predict` gives boxes, scores, classes and, for NUQ (Kotelevskii et
  al., NeurIPS 2022), one feature vector per kept box: the input of the final 1x1 conv of
  the class branch (the penultimate activation, ``c3`` channels, same width at every
  level) at the anchor that produced the box, taken before NMS (SPEC: the authors' release
  feeds NUQ the head's per-anchor features before NMS). Raw activations, not normalised.

Checkpoints: an ultralytics ``.pt`` (a pickle of the model, read with weights_only=True and only
torch.nn / ultralytics.nn module classes allowed), or
our own format written by :func:`save_detector`, which loads with
``torch.load(weights_only=True)``: ``{"arch": "yolo", "yaml": model dict, "state_dict": ...,
"names": [...], "imgsz": int, "hyp": {"box", "cls", "dfl"}}``. Nothing is ever downloaded.
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Mapping, Sequence
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import DetectionModel, temporary_modules
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.ops import xywh2xyxy
from ultralytics.utils.tal import TaskAlignedAssigner, make_anchors

# Importing this module ran vat/__init__.py first (YOLO_OFFLINE and friends are set before
# ultralytics is imported above).
from vat.data.images import as_float_images
from vat.errors import DataError
from vat.io import save_torch

__all__ = [
    "Detections",
    "Targets",
    "FrozenDetector",
    "WeightedDetectionLoss",
    "WeightedTaskAlignedAssigner",
    "build_yolo",
    "save_detector",
    "PAD_VALUE",
]

PAD_VALUE = 114.0 / 255.0  # ultralytics' letterbox gray
FORMAT_VERSION = 1
_TARGET_KEYS = frozenset({"boxes", "classes", "weights"})


@dataclass
class Detections:
    """D's detections on one image, after NMS."""

    boxes: Tensor  # (N, 4) pixel x1 y1 x2 y2 in the input image frame
    scores: Tensor  # (N,) confidence in [0, 1]
    classes: Tensor  # (N,) int64 class index
    features: Tensor  # (N, F) class-branch penultimate activation at the box's anchor (pre-NMS)
    anchors: Tensor | None = None  # (N,) int64 index of that anchor in the head's flattened order

    def __len__(self) -> int:
        return int(self.boxes.shape[0])


@dataclass
class Targets:
    """The boxes of a batch as one flat table (ultralytics' layout), in the input image frame."""

    batch_idx: Tensor  # (M,) int64 image index within the batch
    boxes: Tensor  # (M, 4) pixel x1 y1 x2 y2
    classes: Tensor  # (M,) int64
    weights: Tensor  # (M,) float in [0, 1]; 0 removes the box, 1 is the plain loss

    @classmethod
    def from_list(cls, targets: Sequence[Mapping[str, Tensor] | Detections]) -> Targets:
        """One entry per image: a dict with ``boxes`` (M, 4), ``classes`` (M,) and optional
        ``weights`` (M,) (default 1), or a :class:`Detections` (weight 1: self-training)."""
        idx, boxes, classes, weights = [], [], [], []
        for i, t in enumerate(targets):
            if isinstance(t, Detections):
                t = {"boxes": t.boxes, "classes": t.classes}
            unknown = set(t) - _TARGET_KEYS
            if unknown:
                raise ValueError(
                    f"target {i}: unknown keys {sorted(unknown)}; expected {sorted(_TARGET_KEYS)}"
                )
            b = torch.as_tensor(t["boxes"], dtype=torch.float32).reshape(-1, 4)
            c = torch.as_tensor(t["classes"]).reshape(-1).long().to(b.device)
            w = t.get("weights")
            w = torch.ones(len(b), device=b.device) if w is None else torch.as_tensor(w).reshape(-1).float()
            if not (len(b) == len(c) == len(w)):
                raise ValueError(f"target {i}: {len(b)} boxes, {len(c)} classes, {len(w)} weights")
            idx.append(torch.full((len(b),), i, dtype=torch.long, device=b.device))
            boxes.append(b)
            classes.append(c)
            weights.append(w.to(b.device))
        if not idx:
            return cls(
                torch.zeros(0, dtype=torch.long),
                torch.zeros(0, 4),
                torch.zeros(0, dtype=torch.long),
                torch.zeros(0),
            )
        device = boxes[0].device
        return cls(
            torch.cat([t.to(device) for t in idx]),
            torch.cat([t.to(device) for t in boxes]),
            torch.cat([t.to(device) for t in classes]),
            torch.cat([t.to(device) for t in weights]),
        )

    def to(self, device: torch.device | str) -> Targets:
        return Targets(
            self.batch_idx.to(device), self.boxes.to(device), self.classes.to(device), self.weights.to(device)
        )


class WeightedTaskAlignedAssigner(TaskAlignedAssigner):
    """TaskAlignedAssigner whose conflicts go to the box with the larger ``weight * IoU``.

    In the TaskAlignedAssigner the ground-truth boxes interact in one place only: an anchor
    among the top-k candidates of several boxes goes to the box it overlaps most. Here that
    overlap is multiplied by the box weight, so as a weight goes to 0 its box loses every
    contested anchor, exactly as if it were absent, and the loss is continuous in the
    weights. With all weights 1 this is ultralytics' assigner unchanged.
    """

    _gt_weights: Tensor | None = None

    def _forward(
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


YOLO_DIR = Path(__file__).parent / "yolo"  # model yamls that ship with vat (yolov8p.yaml)


def resolve_yaml(name: str | Path) -> str:
    """A model yaml: an existing path, one that ships with vat, or a name ultralytics ships."""
    if Path(name).is_file():
        return str(name)
    if (YOLO_DIR / Path(name).name).is_file():
        return str(YOLO_DIR / Path(name).name)
    return str(name)


def build_yolo(yaml: str | Path | dict, nc: int | None, names: Sequence[str] | None = None) -> DetectionModel:
    """A randomly initialised ultralytics ``DetectionModel`` from a model yaml (no download).

    ``yaml``: a name ultralytics ships (``yolov8n.yaml``, ``yolov5n.yaml``, ``yolov3-tiny.yaml``,
    ``yolo11n.yaml``; the letter after the version picks the scale), a path, or a model dict.
    ``nc`` None keeps the yaml's class count (or takes ``len(names)``).
    """
    if nc is None and names is not None:
        nc = len(names)
    try:
        model = DetectionModel(
            deepcopy(yaml) if isinstance(yaml, dict) else resolve_yaml(yaml), nc=nc, verbose=False
        )
    except Exception as e:  # ultralytics raises several types for a missing or bad yaml
        raise DataError(f"{yaml}: cannot build a YOLO model from this yaml ({type(e).__name__}: {e})") from e
    if names is not None and len(names) != model.yaml["nc"]:
        raise ValueError(f"{len(names)} class names for nc={model.yaml['nc']}")
    model.names = {i: str(n) for i, n in enumerate(names)} if names is not None else model.names
    model.args = get_cfg()  # the loss reads its gains (box, cls, dfl) from here
    return model


def save_detector(det: FrozenDetector | DetectionModel, path: str | Path, imgsz: int | None = None) -> None:
    """Write ``det`` in our weights-only format (atomic); :class:`FrozenDetector` reads it back."""
    model = det.model if isinstance(det, FrozenDetector) else det
    if imgsz is None:
        imgsz = det.imgsz if isinstance(det, FrozenDetector) else 640
    names = [str(model.names[i]) for i in range(len(model.names))]
    args = getattr(model, "args", None)
    hyp = {k: float(_arg(args, k)) for k in ("box", "cls", "dfl")}
    ckpt = {
        "arch": "yolo",
        "format_version": FORMAT_VERSION,
        "yaml": deepcopy(model.yaml),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "names": names,
        "imgsz": int(imgsz),
        "hyp": hyp,
    }
    cw = getattr(model, "class_weights", None)
    if cw is not None:
        ckpt["class_weights"] = torch.as_tensor(cw).detach().cpu()
    save_torch(ckpt, path)


def _arg(args: Any, key: str) -> Any:
    default = getattr(get_cfg(), key)
    if args is None:
        return default
    if isinstance(args, Mapping):
        return args.get(key, default)
    return getattr(args, key, default)


class FrozenDetector(nn.Module):
    """A frozen ultralytics YOLO: letterboxing, prediction with per-box features, and its loss.

    ``model``: a model yaml (name or path; random weights, ``nc`` overrides the class
    count), a checkpoint path (ultralytics ``.pt`` or ours, see :func:`save_detector`), or an
    ultralytics ``DetectionModel``, which is taken over and frozen in place.
    ``imgsz``: long side the images are resized to (default: the checkpoint's training
    size, else 640); ``resize=False`` feeds images at their own size, padded only.
    """

    def __init__(
        self,
        model: str | Path | nn.Module,
        nc: int | None = None,
        imgsz: int | None = None,
        device: str | torch.device = "cpu",
        names: Sequence[str] | None = None,
        resize: bool = True,
    ):
        super().__init__()
        ckpt_imgsz = None
        if isinstance(model, DetectionModel):
            net, source = model, type(model).__name__
        elif isinstance(model, nn.Module):
            raise TypeError(f"expected an ultralytics DetectionModel, got {type(model).__name__}")
        elif str(model).lower().endswith((".yaml", ".yml")):
            net, source = build_yolo(model, nc, names), str(model)
        else:
            net, ckpt_imgsz = _load_checkpoint(Path(model))
            source = str(model)
        head = net.model[-1]
        if getattr(head, "one2one_cv2", None) is not None:
            raise DataError(
                f"{source}: end-to-end heads (YOLOv10, YOLO26) are not supported; use v3u/v5u/v8/11"
            )
        if type(head) is not Detect:
            raise DataError(
                f"{source}: head {type(head).__name__} is not a plain Detect head (detection only)"
            )
        if nc is not None and head.nc != nc:
            raise DataError(f"{source}: model has nc={head.nc}, asked for nc={nc}")
        if names is not None:
            if len(names) != head.nc:
                raise ValueError(f"{len(names)} class names for nc={head.nc}")
            net.names = {i: str(n) for i, n in enumerate(names)}
        if not hasattr(net, "args") or isinstance(net.args, Mapping) or net.args is None:
            cfg = get_cfg()
            for k in ("box", "cls", "dfl"):  # keep the gains the detector was trained with
                setattr(cfg, k, float(_arg(getattr(net, "args", None), k)))
            net.args = cfg

        self.model = net
        self.model.requires_grad_(False)
        self.source = source
        self.names: list[str] = [str(net.names[i]) for i in range(head.nc)]
        self.stride: int = int(net.stride.max())
        self.imgsz: int = int(imgsz or ckpt_imgsz or 640)
        self.resize = resize
        self.checkpoint = False  # training through D: checkpoint each layer (see _forward)
        self._criterion: WeightedDetectionLoss | None = None
        self.to(device)
        self.train(False)

    # -- frozen for good ----------------------------------------------------------------

    def train(self, mode: bool = True) -> FrozenDetector:
        """Ignore ``mode``: D stays in eval mode so its BatchNorm statistics never move."""
        return super().train(False)

    def fold_batchnorm(self) -> int:
        """Fold every BatchNorm into the convolution before it; returns how many were folded.

        D is frozen in eval mode, so each ``BN(conv(x))`` is an affine map of the conv's output
        and one convolution with scaled weights and a bias computes it (ultralytics'
        ``fuse_conv_and_bn``). Outputs and input gradients are the same up to float rounding;
        a step through D runs one kernel less per layer and autograd keeps one tensor less per
        layer (BatchNorm's input). Unlike ultralytics' ``BaseModel.fuse`` it prints nothing
        and leaves the head's branches alone (the loss reads them). In place, for good.
        """
        from ultralytics.nn.modules import Conv, Conv2
        from ultralytics.utils.torch_utils import fuse_conv_and_bn

        folded = 0
        for m in self.model.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                if isinstance(m, Conv2):  # its parallel 1x1 branch first joins the 3x3 conv
                    m.fuse_convs()
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
                folded += 1
        return folded

    def compile_layers(self, **kwargs: Any) -> int:
        """``torch.compile`` every layer of D but the Detect head, in place; returns how many.

        Each layer's convolutions stay cuDNN / oneDNN calls, the BatchNorm (unless folded),
        SiLU, concatenations and upsampling around them fuse. Static shapes (one graph per
        input size). The head stays eager (its anchor cache is Python state). Fold the
        BatchNorms first (:meth:`fold_batchnorm`): a compiled layer changed afterwards is
        compiled again. Losses and gradients are the same up to float rounding (tested)."""
        from vat.models.compiling import compile_static

        head = self.head
        n = 0
        for m in self.model.model:
            if m is not head:
                m.forward = compile_static(m.forward, **kwargs)
                n += 1
        return n

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def head(self) -> Detect:
        return self.model.model[-1]

    @property
    def feature_dim(self) -> int:
        """F, the width of :attr:`Detections.features` (the head's ``c3``)."""
        return int(self.head.cv3[0][-1].in_channels)

    def extra_repr(self) -> str:
        return (
            f"{self.source!r}, nc={self.nc}, imgsz={self.imgsz}, stride={self.stride}, resize={self.resize}"
        )

    # -- input contract -----------------------------------------------------------------

    def letterbox(self, images: Tensor) -> tuple[Tensor, tuple[float, float]]:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H', W') padded to the stride, and (sx, sy).

        A box in the input frame times (sx, sy) is the box in the letterboxed frame.
        """
        images = as_float_images(images)
        h, w = images.shape[-2:]
        if self.resize:
            r = self.imgsz / max(h, w)
            nh, nw = max(1, round(h * r)), max(1, round(w * r))
        else:
            nh, nw = h, w
        x = images
        if (nh, nw) != (h, w):
            x = F.interpolate(
                x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h or nw < w
            )
        s = self.stride
        ph, pw = math.ceil(nh / s) * s - nh, math.ceil(nw / s) * s - nw
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph), value=PAD_VALUE)
        return x, (nw / w, nh / h)

    def _forward(self, x: Tensor) -> tuple[Tensor, dict[str, Any]]:
        self.model.eval()  # also undoes a stray .train() on the inner model
        if self.checkpoint and torch.is_grad_enabled() and x.requires_grad:
            return self._forward_checkpointed(x)
        return self.model(x)  # eval mode: (decoded (B, 4 + nc, A), raw preds dict)

    def _forward_checkpointed(self, x: Tensor) -> tuple[Tensor, dict[str, Any]]:
        """``self.model(x)`` with activation checkpointing of every layer: autograd keeps each
        layer's input only and runs the layer again in backward, so the backward holds one
        layer's activations at a time. The loop is ultralytics' ``DetectionModel._predict_once``
        (layer ``m`` reads the outputs named by ``m.f``; those in ``save`` are kept for later
        layers). Eval mode has no randomness: outputs and input gradients are unchanged."""
        from torch.utils.checkpoint import checkpoint

        outputs: list[Any] = []
        for m in self.model.model:
            if m.f != -1:
                x = outputs[m.f] if isinstance(m.f, int) else [x if j == -1 else outputs[j] for j in m.f]
            if isinstance(x, list):  # Concat and the Detect head take a list of feature maps
                x = checkpoint(lambda *xs, m=m: m(list(xs)), *x, use_reentrant=False)
            else:
                x = checkpoint(m, x, use_reentrant=False)
            outputs.append(x if m.i in self.model.save else None)
        return x

    # -- prediction ---------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self, images: Tensor, conf: float = 0.25, iou: float = 0.45, max_det: int = 300, max_nms: int = 30000
    ) -> list[Detections]:
        """Detections per image: best class per anchor, score > ``conf``, class-wise NMS at
        ``iou``, at most ``max_det`` (ultralytics' single-label NMS, without its time limit)."""
        from torchvision.ops import batched_nms

        h, w = images.shape[-2:]
        x, (sx, sy) = self.letterbox(images)
        cv3 = self.head.cv3
        captured: list[Tensor | None] = [None] * len(cv3)

        def grab(level: int):
            def hook(_module, inputs):
                captured[level] = inputs[0]

            return hook

        handles = [branch[-1].register_forward_pre_hook(grab(i)) for i, branch in enumerate(cv3)]
        try:
            y, _ = self._forward(x)
        finally:
            for handle in handles:
                handle.remove()
        feats = torch.cat([f.flatten(2) for f in captured], 2)  # (B, F, A), anchors in head order
        boxes_all = y[:, :4].transpose(1, 2)  # (B, A, 4)
        if not self.head.xyxy:
            boxes_all = xywh2xyxy(boxes_all)
        scale = boxes_all.new_tensor([sx, sy, sx, sy])
        limit = boxes_all.new_tensor([w, h, w, h])
        out = []
        for b in range(x.shape[0]):
            score, cls = y[b, 4:].max(0)  # (A,)
            idx = (score > conf).nonzero().squeeze(1)
            if idx.numel() > max_nms:
                idx = idx[score[idx].argsort(descending=True)[:max_nms]]
            keep = batched_nms(boxes_all[b, idx].float(), score[idx].float(), cls[idx], iou)[:max_det]
            a = idx[keep]  # anchor index of each kept box
            boxes = (boxes_all[b, a] / scale).clamp(min=boxes_all.new_zeros(4), max=limit)
            out.append(
                Detections(
                    boxes=boxes.float(),
                    scores=score[a].float(),
                    classes=cls[a].long(),
                    features=feats[b, :, a].T.float().contiguous(),
                    anchors=a,
                )
            )
        return out

    # -- loss ---------------------------------------------------------------------------

    def criterion(self) -> WeightedDetectionLoss:
        """The loss object, rebuilt when the model moved to another device."""
        device = next(self.model.parameters()).device
        if self._criterion is None or self._criterion.device != device:
            self._criterion = WeightedDetectionLoss(self.model)
        return self._criterion

    @staticmethod
    def ultralytics_batch(
        targets: Targets,
        input_hw: tuple[int, int],
        letterboxed_hw: tuple[int, int],
        scale: tuple[float, float],
    ) -> dict[str, Tensor]:
        """Targets in the input frame -> ultralytics' batch dict (normalised xywh, letterboxed frame)."""
        (h, w), (hp, wp), (sx, sy) = input_hw, letterboxed_hw, scale
        b = targets.boxes.float()
        b = torch.minimum(b.clamp(min=0), b.new_tensor([w, h, w, h]))  # clip to the image
        b = b * b.new_tensor([sx, sy, sx, sy])
        xywh = torch.stack(
            (
                (b[:, 0] + b[:, 2]) / 2 / wp,
                (b[:, 1] + b[:, 3]) / 2 / hp,
                (b[:, 2] - b[:, 0]) / wp,
                (b[:, 3] - b[:, 1]) / hp,
            ),
            1,
        )
        return {
            "batch_idx": targets.batch_idx.float(),
            "cls": targets.classes.float(),
            "bboxes": xywh,
            "weights": targets.weights.float(),
        }

    def loss(
        self,
        images: Tensor,
        targets: Sequence[Mapping[str, Tensor] | Detections] | Targets,
        box_weights: Tensor | Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """D's own detection loss on ``images`` (B, 3, H, W) against ``targets``.

        ``targets``: one dict per image (``boxes`` (M, 4) pixel xyxy in the input frame,
        ``classes`` (M,), optional ``weights`` (M,) in [0, 1]) or a :class:`Targets` table.
        ``box_weights``: optional extra factors, flat (M,) in target order or one (M_i,) per
        image, multiplied into the targets' own weights. Weight semantics: see
        :class:`WeightedDetectionLoss` (0 removes the box exactly, 1 is the plain loss).

        Returns ``(total, parts)``: ``total`` is what ultralytics' trainer backpropagates,
        ``(box + cls + dfl) * B`` with its gains (7.5, 0.5, 1.5 by default); ``parts`` (3,) are
        the detached gained terms before the batch-size factor (ultralytics' loss items).
        D runs in eval mode with frozen parameters: gradients reach ``images`` only.
        """
        return self.losses([(images, targets, box_weights)])[0]

    def losses(
        self,
        calls: Sequence[tuple],  # (images, targets) or (images, targets, box_weights), as loss() takes
    ) -> list[tuple[Tensor, Tensor]]:
        """:meth:`loss` of each ``(images, targets[, box_weights])`` call, with ONE forward of D.

        The calls' images are letterboxed, concatenated and run through D together; the raw
        predictions are split back per call and each call's loss is computed on its own share
        (its own assignment and normalisation), so every result equals its separate
        :meth:`loss` call up to float rounding (eval mode: no image affects another). Fewer,
        larger kernels; what a training step's loss terms on T_A(I_HQ) and T_A(I_mix) use.
        Calls whose images differ in size after letterboxing run one forward per size.
        """
        from vat.models.batching import forward_together

        xs, batches = [], []
        for call in calls:
            images, targets, box_weights = (*call, None) if len(call) == 2 else call
            x, scale = self.letterbox(images)
            t = self._targets(targets, box_weights, x.shape[0], x.device)
            xs.append(x)
            batches.append(self.ultralytics_batch(t, tuple(images.shape[-2:]), tuple(x.shape[-2:]), scale))
        out = []
        for preds, batch in zip(forward_together(lambda x: self._forward(x)[1], xs), batches, strict=True):
            loss, items = self.criterion()(preds, batch)  # loss: (3,) gained terms times B
            out.append((loss.sum(), torch.stack(list(items.values()))))
        return out

    def _targets(
        self,
        targets: Sequence[Mapping[str, Tensor] | Detections] | Targets,
        box_weights: Tensor | Sequence[Tensor] | None,
        batch_size: int,
        device: torch.device,
    ) -> Targets:
        if not isinstance(targets, Targets) and len(targets) != batch_size:
            raise ValueError(f"{len(targets)} targets for a batch of {batch_size} images")
        t = targets if isinstance(targets, Targets) else Targets.from_list(targets)
        t = t.to(device)
        if box_weights is not None:
            if torch.is_tensor(box_weights):
                bw = box_weights.reshape(-1)
            else:
                bw = torch.cat([torch.as_tensor(v, dtype=torch.float32).reshape(-1) for v in box_weights])
            if bw.numel() != t.weights.numel():
                raise ValueError(f"{bw.numel()} box weights for {t.weights.numel()} boxes")
            t = Targets(t.batch_idx, t.boxes, t.classes, t.weights * bw.to(t.weights))
        _validate(t, batch_size, self.nc)
        return t


def _validate(t: Targets, batch_size: int, nc: int) -> None:
    if t.weights.numel() == 0:
        return
    if bool(((t.weights < 0) | (t.weights > 1) | ~torch.isfinite(t.weights)).any()):
        raise ValueError("box weights must lie in [0, 1]")
    if bool(((t.classes < 0) | (t.classes >= nc)).any()):
        raise ValueError(f"class index outside 0..{nc - 1}")
    if bool(((t.batch_idx < 0) | (t.batch_idx >= batch_size)).any()):
        raise ValueError(f"targets name images outside the batch of {batch_size}")


def _load_checkpoint(path: Path) -> tuple[DetectionModel, int | None]:
    """Our weights-only format first; else an ultralytics pickle (a zip archive) of a trusted file."""
    if not path.is_file():
        raise DataError(
            f"{path}: detector checkpoint not found (nothing is downloaded: give a .pt path or a model yaml)"
        )
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights-only refuses pickled classes, garbage and truncated files alike
        if not zipfile.is_zipfile(path):
            raise DataError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
        return _load_ultralytics(path)
    if not isinstance(ckpt, Mapping) or ckpt.get("arch") != "yolo":
        what = f"arch={ckpt.get('arch')!r}" if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise DataError(f"{path}: not a YOLO detector checkpoint ({what})")
    try:
        yaml, names = ckpt["yaml"], list(ckpt["names"])
        model = DetectionModel(deepcopy(yaml), nc=yaml["nc"], verbose=False)
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError, ValueError) as e:
        raise DataError(f"{path}: malformed detector checkpoint ({type(e).__name__}: {e})") from e
    if len(names) != model.model[-1].nc:
        raise DataError(f"{path}: {len(names)} names for nc={model.model[-1].nc}")
    model.names = {i: str(n) for i, n in enumerate(names)}
    cfg = get_cfg()
    for k, v in dict(ckpt.get("hyp", {})).items():
        setattr(cfg, k, float(v))
    model.args = cfg
    if "class_weights" in ckpt:
        model.class_weights = ckpt["class_weights"]
    return model, ckpt.get("imgsz")


_ALLOWED_MODULES = ("torch.nn.modules.", "ultralytics.nn.")
# Plain data holders ultralytics stores beside the model (its training args).
_ALLOWED_DATA = {"ultralytics.utils.IterableSimpleNamespace", "types.SimpleNamespace"}


def _module_classes(path: Path) -> list[type]:
    """The nn.Module classes an ultralytics checkpoint names; DataError for anything else."""
    import importlib

    classes = []
    for name in torch.serialization.get_unsafe_globals_in_checkpoint(path):
        module, _, attr = name.rpartition(".")
        obj = None
        if module.startswith(_ALLOWED_MODULES):
            try:
                obj = getattr(importlib.import_module(module), attr)
            except (ImportError, AttributeError):
                obj = None
        if name in _ALLOWED_DATA:
            obj = getattr(importlib.import_module(module), attr)
            classes.append(obj)
            continue
        if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
            raise DataError(
                f"{path}: refusing to unpickle {name!r}: only torch.nn / ultralytics.nn module classes "
                "are loaded from an ultralytics checkpoint (weights_only=True)"
            )
        classes.append(obj)
    return classes


def _load_ultralytics(path: Path) -> tuple[DetectionModel, int | None]:
    # An ultralytics .pt pickles the whole model. It is still read with weights_only=True:
    # torch's restricted unpickler, allowed only the nn.Module classes of torch.nn and
    # ultralytics.nn that the file names; anything else (code, other objects) is refused.
    # ultralytics' own legacy aliases (torch_safe_load) apply, without its download
    # fallbacks and its renaming of yolov5*.pt paths.
    try:
        with (
            temporary_modules(
                modules={
                    "ultralytics.yolo.utils": "ultralytics.utils",
                    "ultralytics.yolo.v8": "ultralytics.models.yolo",
                    "ultralytics.yolo.data": "ultralytics.data",
                },
                attributes={
                    "ultralytics.nn.modules.block.Silence": "torch.nn.Identity",
                    "ultralytics.nn.tasks.YOLOv10DetectionModel": "ultralytics.nn.tasks.DetectionModel",
                    "ultralytics.utils.loss.v10DetectLoss": "ultralytics.utils.loss.E2EDetectLoss",
                    "pathlib.WindowsPath": "pathlib.PosixPath",
                },
            ),
            torch.serialization.safe_globals(_module_classes(path)),
        ):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(f"{path}: not a readable ultralytics checkpoint ({type(e).__name__}: {e})") from e
    if isinstance(ckpt, DetectionModel):
        ckpt = {"model": ckpt}
    model = (ckpt.get("ema") or ckpt.get("model")) if isinstance(ckpt, Mapping) else None
    if not isinstance(model, DetectionModel):
        raise DataError(f"{path}: no ultralytics DetectionModel inside (found {type(model).__name__})")
    model = model.float()
    train_args = dict(ckpt.get("train_args") or {})
    model.args = {**vars(get_cfg()), **train_args}  # FrozenDetector turns this into a namespace
    if not hasattr(model, "stride"):
        raise DataError(f"{path}: model has no stride")
    imgsz = train_args.get("imgsz")
    return model, int(imgsz) if isinstance(imgsz, int) else None
