"""Detections and targets of a frozen detector D, shared by every detector family.

:class:`Detections` is what a family's ``predict`` returns per image; :class:`Targets` is a
batch's boxes as one flat table (ultralytics' layout), which a family's ``loss`` takes.
:func:`as_targets` turns what ``loss`` accepts into a checked :class:`Targets`. Plain torch:
nothing here imports a detector library.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["Detections", "Targets", "as_targets", "validate_targets"]

_TARGET_KEYS = frozenset({"boxes", "classes", "weights"})


@dataclass
class Detections:
    """D's detections on one image, after NMS."""

    boxes: Tensor  # (N, 4) pixel x1 y1 x2 y2 in the input image frame
    scores: Tensor  # (N,) confidence in [0, 1]
    classes: Tensor  # (N,) int64 class index
    features: Tensor  # (N, F) the head's input feature at the box's anchor, taken before NMS (per family)
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


def as_targets(
    targets: Sequence[Mapping[str, Tensor] | Detections] | Targets,
    box_weights: Tensor | Sequence[Tensor] | None,
    batch_size: int,
    device: torch.device,
    nc: int,
) -> Targets:
    """``targets`` (one entry per image, or a :class:`Targets` table) on ``device``, times the
    optional ``box_weights`` (flat (M,) in target order or one (M_i,) per image), checked
    against a batch of ``batch_size`` images and ``nc`` classes."""
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
    validate_targets(t, batch_size, nc)
    return t


def validate_targets(t: Targets, batch_size: int, nc: int) -> None:
    """ValueError unless the weights lie in [0, 1], the classes in 0..nc-1 and the image
    indices within the batch."""
    if t.weights.numel() == 0:
        return
    if bool(((t.weights < 0) | (t.weights > 1) | ~torch.isfinite(t.weights)).any()):
        raise ValueError("box weights must lie in [0, 1]")
    if bool(((t.classes < 0) | (t.classes >= nc)).any()):
        raise ValueError(f"class index outside 0..{nc - 1}")
    if bool(((t.batch_idx < 0) | (t.batch_idx >= batch_size)).any()):
        raise ValueError(f"targets name images outside the batch of {batch_size}")
