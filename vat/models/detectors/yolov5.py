"""The frozen detector D as an original, anchor-based YOLOv5, behind :class:`FrozenDetector`'s contract.

Many users have a YOLOv5 trained with the YOLOv5 repository (v7.0; Jocher et al.,
https://github.com/ultralytics/yolov5). :class:`YOLOv5Detector` makes it VaT's frozen D
(Wu & Jin, ECCV 2024) without importing any YOLOv5 code: the network is rebuilt from its yaml
(:mod:`~vat.models.detectors.yolov5_net`), its checkpoints are read by a restricted unpickler
(:mod:`~vat.models.detectors.yolov5_files`), and its loss is ``ComputeLoss`` with per-box
weights (:mod:`~vat.models.detectors.yolov5_loss`). The surface is FrozenDetector's
(:mod:`~vat.models.detectors.ultralytics`), with these YOLOv5 conventions:

- Letterbox: resize so the long side equals ``imgsz`` keeping the aspect ratio (bilinear,
  antialiased when shrinking, like the INTER_AREA of YOLOv5's training loader; ``resize=False``
  keeps the size), then pad with gray 114/255 to a multiple of the largest stride, *centred*
  as YOLOv5's ``letterbox`` does (the odd pixel goes bottom / right). Differentiable.
  :meth:`YOLOv5Detector.letterbox` also returns the offsets; boxes in and out are pixel
  x1 y1 x2 y2 in the frame of the images as given.
- Frozen for good: no parameter requires a gradient, every module stays in eval mode, even
  after a parent's ``.train()``; BatchNorm statistics never move.
- :meth:`YOLOv5Detector.predict`: YOLOv5's ``non_max_suppression`` (single label):
  score = objectness x class probability, kept above ``conf``, class-wise NMS at ``iou``, at
  most ``max_det``. Features for NUQ (Kotelevskii et al., NeurIPS 2022), taken before NMS at
  the anchor that produced the box: the input of the head's 1x1 conv ``Detect.m[i]`` of that
  box's level at its cell (the last activation before the prediction; the three anchors of a
  cell share it). The levels differ in width (64, 128, 256 for yolov5n), so each level gets
  its own block of one vector of width ``feature_dim = sum of the widths``, zeros elsewhere:
  features of different levels never share a coordinate. Raw activations, not normalised.
- :meth:`YOLOv5Detector.loss`: see :mod:`~vat.models.detectors.yolov5_loss` (gains,
  weights); gradients reach the input images only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vat.data.images import resize_to_stride
from vat.errors import DataError
from vat.models.detectors.targets import Detections, Targets, as_targets
from vat.models.detectors.yolov5_loss import train_hyp, yolov5_loss
from vat.models.detectors.yolov5_net import PREFIX, Detect, YOLOv5Model, load_yolov5_yaml

__all__ = ["YOLOv5Detector", "PAD_VALUE"]

PAD_VALUE = 114.0 / 255.0  # YOLOv5's letterbox gray
DEFAULT_IMGSZ = 640  # YOLOv5's train.py / detect.py default


def _is_yaml(model: Any) -> bool:
    return (
        isinstance(model, dict)
        or str(model).startswith(PREFIX)
        or str(model).lower().endswith((".yaml", ".yml"))
    )


class YOLOv5Detector(nn.Module):
    """A frozen YOLOv5 (v7.0): letterboxing, prediction with per-box features, and its loss.

    ``model``: a YOLOv5 model yaml (``yolov5:yolov5n.yaml``, a path, or a model dict; random
    weights; ``nc`` overrides the class count), a checkpoint path (the repository's ``.pt``,
    a ``{state_dict, yaml, names, stride}`` file, or ours, see
    :func:`~vat.models.detectors.yolov5_files.save_yolov5`), or a :class:`YOLOv5Model`,
    taken over and frozen in place. ``imgsz``: long side the images are resized to (default:
    the checkpoint's training size, else 640); ``resize=False`` pads only. :attr:`hyp`: the
    loss's gains (see :mod:`~vat.models.detectors.yolov5_loss`), editable.
    """

    def __init__(
        self,
        model: str | Path | dict | nn.Module,
        nc: int | None = None,
        imgsz: int | None = None,
        device: str | torch.device = "cpu",
        names: Sequence[str] | None = None,
        resize: bool = True,
    ):
        from vat.models.detectors.yolov5_files import load_yolov5

        super().__init__()
        ckpt_imgsz, hyp = None, None
        if isinstance(model, YOLOv5Model):
            net, source = model, type(model).__name__
        elif isinstance(model, nn.Module):
            raise TypeError(f"expected a YOLOv5Model, got {type(model).__name__}")
        elif _is_yaml(model):
            source = "model dict" if isinstance(model, dict) else str(model)
            cfg = load_yolov5_yaml(model)  # DataError naming the yaml
            try:
                net = YOLOv5Model(
                    cfg, nc=nc if nc is not None else (len(names) if names is not None else None)
                )
            except DataError as e:
                raise DataError(f"{source}: {e}") from e
            except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
                raise DataError(f"{source}: cannot build a YOLOv5 model ({type(e).__name__}: {e})") from e
        else:
            loaded = load_yolov5(Path(model))
            net, ckpt_imgsz, hyp, source = loaded.model, loaded.imgsz, loaded.hyp, str(model)
        head = net.head
        if nc is not None and head.nc != nc:
            raise DataError(f"{source}: model has nc={head.nc}, asked for nc={nc}")
        if names is not None:
            if len(names) != head.nc:
                raise ValueError(f"{len(names)} class names for nc={head.nc}")
            net.names = [str(n) for n in names]
        self.model = net
        self.model.requires_grad_(False)
        self.source = source
        self.names: list[str] = [str(n) for n in net.names]
        self.stride: int = int(net.stride.max())
        self.imgsz: int = int(imgsz or ckpt_imgsz or DEFAULT_IMGSZ)
        self.resize = resize
        self.checkpoint = False  # training through D: checkpoint each layer (YOLOv5Model.features)
        # the gains D was trained with: the checkpoint's, else train.py's rule at D's training size
        self.hyp: dict[str, float] = dict(hyp) if hyp else train_hyp(head.nc, head.nl, self.imgsz)
        self.to(device)
        self.train(False)

    # -- frozen for good ----------------------------------------------------------------

    def train(self, mode: bool = True) -> YOLOv5Detector:
        """Ignore ``mode``: D stays in eval mode so its BatchNorm statistics never move."""
        return super().train(False)

    def fold_batchnorm(self) -> int:
        """Fold every BatchNorm into the convolution before it; returns how many were folded
        (as :meth:`FrozenDetector.fold_batchnorm`: same outputs up to float rounding, one
        kernel and one saved tensor less per layer; in place, for good)."""
        from ultralytics.nn.modules import Conv
        from ultralytics.utils.torch_utils import fuse_conv_and_bn

        folded = 0
        for m in self.model.modules():
            if isinstance(m, Conv) and hasattr(m, "bn"):
                m.conv = fuse_conv_and_bn(m.conv, m.bn)
                delattr(m, "bn")
                m.forward = m.forward_fuse
                folded += 1
        return folded

    def compile_layers(self, **kwargs: Any) -> int:
        """``torch.compile`` every layer of D but the Detect head, in place; returns how many
        (as :meth:`FrozenDetector.compile_layers`: fold the BatchNorms first)."""
        from vat.models.compiling import compile_static

        n = 0
        for m in self.model.model:
            if m is not self.head:
                m.forward = compile_static(m.forward, **kwargs)
                n += 1
        return n

    @property
    def nc(self) -> int:
        return len(self.names)

    @property
    def head(self) -> Detect:
        return self.model.head

    @property
    def feature_dim(self) -> int:
        """F, the width of :attr:`Detections.features`: the head inputs' widths, summed."""
        return int(sum(m.in_channels for m in self.head.m))

    def extra_repr(self) -> str:
        return (
            f"{self.source!r}, nc={self.nc}, imgsz={self.imgsz}, stride={self.stride}, resize={self.resize}"
        )

    # -- input contract -----------------------------------------------------------------

    def letterbox(self, images: Tensor) -> tuple[Tensor, tuple[float, float], tuple[int, int]]:
        """(B, 3, H, W) in [0, 1] -> (B, 3, H', W') padded to the stride, (sx, sy), (dx, dy).

        A box in the input frame times (sx, sy) plus (dx, dy) is the box in the letterboxed
        frame (YOLOv5 pads on both sides: ``dx``, ``dy`` are the left and top padding)."""
        h, w = images.shape[-2:]
        x, (nh, nw), (ph, pw) = resize_to_stride(images, self.imgsz, self.resize, self.stride)
        top, left = ph // 2, pw // 2  # YOLOv5: round(d/2 - 0.1) before, round(d/2 + 0.1) after
        if ph or pw:
            x = F.pad(x, (left, pw - left, top, ph - top), value=PAD_VALUE)
        return x, (nw / w, nh / h), (left, top)

    def _features(self, x: Tensor) -> list[Tensor]:
        self.model.eval()  # also undoes a stray .train() on the inner model
        checkpoint = self.checkpoint and torch.is_grad_enabled() and x.requires_grad
        return self.model.features(x, checkpoint=checkpoint)

    def _raw(self, x: Tensor) -> list[Tensor]:
        """Raw predictions per level, ``(B, na, ny, nx, 5 + nc)``."""
        self.model.eval()
        checkpoint = self.checkpoint and torch.is_grad_enabled() and x.requires_grad
        return self.model(x, checkpoint=checkpoint)

    # -- prediction ---------------------------------------------------------------------

    @torch.no_grad()
    def predict(
        self, images: Tensor, conf: float = 0.25, iou: float = 0.45, max_det: int = 300, max_nms: int = 30000
    ) -> list[Detections]:
        """Detections per image, as YOLOv5's ``non_max_suppression`` (single label, no time
        limit): score = objectness x best class probability > ``conf``, class-wise NMS at
        ``iou``, at most ``max_det``. Boxes in the input frame, clipped to the image."""
        from torchvision.ops import batched_nms

        h, w = images.shape[-2:]
        x, (sx, sy), (dx, dy) = self.letterbox(images)
        feats = self._features(x)
        y = self.head.decode(self.head(feats))  # (B, A, 5 + nc)
        shift = y.new_tensor([dx, dy, dx, dy])
        scale = y.new_tensor([sx, sy, sx, sy])
        limit = y.new_tensor([w, h, w, h])
        out = []
        for b in range(x.shape[0]):
            obj = y[b, :, 4]
            cand = (obj > conf).nonzero().squeeze(1)
            score, cls = (y[b, cand, 5:] * obj[cand, None]).max(1)
            keep = score > conf
            idx, score, cls = cand[keep], score[keep], cls[keep]
            if idx.numel() > max_nms:
                top = score.argsort(descending=True)[:max_nms]
                idx, score, cls = idx[top], score[top], cls[top]
            xywh = y[b, idx, :4]
            boxes = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
            k = batched_nms(boxes.float(), score.float(), cls, iou)[:max_det]
            mapped = ((boxes[k] - shift) / scale).clamp(min=y.new_zeros(4), max=limit)
            out.append(
                Detections(
                    boxes=mapped.float(),
                    scores=score[k].float(),
                    classes=cls[k].long(),
                    features=self.anchor_features(feats, b, idx[k]),
                    anchors=idx[k],
                )
            )
        return out

    def anchor_features(self, feats: list[Tensor], b: int, anchors: Tensor) -> Tensor:
        """(N, F) features of image ``b`` at the given flat anchor indices: the head input of
        the anchor's level at its cell, in that level's block of the vector (module docstring)."""
        out = feats[0].new_zeros(anchors.numel(), self.feature_dim, dtype=torch.float32)
        start, col = 0, 0
        for f in feats:
            c, ny, nx = f.shape[1:]
            n = self.head.na * ny * nx
            here = (anchors >= start) & (anchors < start + n)
            cell = (anchors[here] - start) % (ny * nx)  # anchors of a level run anchor-major
            out[here, col : col + c] = f[b].flatten(1)[:, cell].T.float()
            start, col = start + n, col + c
        return out

    # -- loss ---------------------------------------------------------------------------

    @staticmethod
    def yolo_targets(  # 6 parameters: the targets and the frames they move between
        targets: Targets,
        input_hw: tuple[int, int],
        letterboxed_hw: tuple[int, int],
        scale: tuple[float, float],
        pad: tuple[int, int],
    ) -> Tensor:
        """Targets in the input frame -> YOLOv5's (M, 6) table plus a weight column: image,
        class, x, y, w, h normalised to the letterboxed image, weight."""
        (h, w), (hp, wp), (sx, sy), (dx, dy) = input_hw, letterboxed_hw, scale, pad
        b = targets.boxes.float()
        b = torch.minimum(b.clamp(min=0), b.new_tensor([w, h, w, h]))  # clip to the image
        b = b * b.new_tensor([sx, sy, sx, sy]) + b.new_tensor([dx, dy, dx, dy])
        xywh = torch.stack(
            (
                (b[:, 0] + b[:, 2]) / 2 / wp,
                (b[:, 1] + b[:, 3]) / 2 / hp,
                (b[:, 2] - b[:, 0]) / wp,
                (b[:, 3] - b[:, 1]) / hp,
            ),
            1,
        )
        cols = (
            targets.batch_idx.float()[:, None],
            targets.classes.float()[:, None],
            xywh,
            targets.weights.float()[:, None],
        )
        return torch.cat(cols, 1)

    def loss(
        self,
        images: Tensor,
        targets: Sequence[Mapping[str, Tensor] | Detections] | Targets,
        box_weights: Tensor | Sequence[Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """D's own loss (YOLOv5's ``ComputeLoss``, weighted) on ``images`` against ``targets``.

        ``targets`` and ``box_weights`` as :meth:`FrozenDetector.loss` takes them (weight 0
        removes a box exactly, 1 is the plain loss). Returns ``(total, parts)``: ``total =
        (box + obj + cls) * B`` with D's gains (:attr:`hyp`), what YOLOv5's trainer
        backpropagates; ``parts`` (3,) the detached gained terms (YOLOv5's loss items)."""
        return self.losses([(images, targets, box_weights)])[0]

    def losses(
        self,
        calls: Sequence[tuple],  # (images, targets) or (images, targets, box_weights), as loss() takes
    ) -> list[tuple[Tensor, Tensor]]:
        """:meth:`loss` of each call with ONE forward of D (per letterboxed size); each call's
        loss is computed on its own share of the predictions, so it equals its own
        :meth:`loss` up to float rounding (as :meth:`FrozenDetector.losses`)."""
        from vat.models.batching import forward_together

        xs, tables = [], []
        for call in calls:
            images, targets, box_weights = (*call, None) if len(call) == 2 else call
            x, scale, pad = self.letterbox(images)
            t = as_targets(targets, box_weights, x.shape[0], x.device, self.nc)
            xs.append(x)
            tables.append(self.yolo_targets(t, tuple(images.shape[-2:]), tuple(x.shape[-2:]), scale, pad))
        return [
            yolov5_loss(raw, table, self.head, self.hyp)
            for raw, table in zip(forward_together(self._raw, xs), tables, strict=True)
        ]
