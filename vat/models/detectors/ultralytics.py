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
  :class:`~vat.models.detectors.loss.WeightedDetectionLoss`); gradients reach only the
  input images.
- :meth:`FrozenDetector.predict` gives boxes, scores, classes and, for NUQ (Kotelevskii et
  al., NeurIPS 2022), one feature vector per kept box: the input of the final 1x1 conv of
  the class branch (the penultimate activation, ``c3`` channels, same width at every
  level) at the anchor that produced the box, taken before NMS (SPEC: the authors' release
  feeds NUQ the head's per-anchor features before NMS). Raw activations, not normalised.

Files (model yamls, checkpoints): :mod:`vat.models.detectors.files`; the boxes in and out:
:mod:`vat.models.detectors.targets`; the loss: :mod:`vat.models.detectors.loss`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ultralytics.cfg import get_cfg
from ultralytics.nn.modules.head import Detect
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.ops import xywh2xyxy

# Importing this module ran vat/__init__.py first (YOLO_OFFLINE and friends are set before
# ultralytics is imported above).
from vat.data.images import resize_to_stride
from vat.errors import DataError
from vat.models.detectors.files import arg_or_default, build_yolo, load_checkpoint
from vat.models.detectors.loss import WeightedDetectionLoss
from vat.models.detectors.targets import Detections, Targets, as_targets

__all__ = ["FrozenDetector", "PAD_VALUE"]

PAD_VALUE = 114.0 / 255.0  # ultralytics' letterbox gray


class FrozenDetector(nn.Module):
    """A frozen ultralytics YOLO: letterboxing, prediction with per-box features, and its loss.

    ``model``: a model yaml (name or path; random weights, ``nc`` overrides the class
    count), a checkpoint path (ultralytics ``.pt`` or ours, see
    :func:`~vat.models.detectors.files.save_detector`), or an
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
            net, ckpt_imgsz = load_checkpoint(Path(model))
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
                setattr(cfg, k, float(arg_or_default(getattr(net, "args", None), k)))
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
        h, w = images.shape[-2:]
        x, (nh, nw), (ph, pw) = resize_to_stride(images, self.imgsz, self.resize, self.stride)
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
            t = as_targets(targets, box_weights, x.shape[0], x.device, self.nc)
            xs.append(x)
            batches.append(self.ultralytics_batch(t, tuple(images.shape[-2:]), tuple(x.shape[-2:]), scale))
        out = []
        for preds, batch in zip(forward_together(lambda x: self._forward(x)[1], xs), batches, strict=True):
            loss, items = self.criterion()(preds, batch)  # loss: (3,) gained terms times B
            out.append((loss.sum(), torch.stack(list(items.values()))))
        return out
