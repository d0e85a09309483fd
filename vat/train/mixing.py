"""Uncertainty-guided mixup (Wu & Jin, ECCV 2024, Eq. 7): the pieces the VaT loss mixes with.

``I_F = G(I_LQ, I_R)`` is the gated fusion of a degraded image and its restoration, ``I_HQ`` a
clean image, ``U`` a pseudo-label's confidence weight (the ``weight`` column of the
pseudo-label Parquet, derived from NUQ), ``lam ~ Beta(alpha, alpha)``::

    I_mix = lam * I_F + (1 - lam) * I_HQ
    Y_mix = U_LQ * lam * Y_LQ  +  U_HQ * (1 - lam) * Y_HQ

Detection (:func:`mix`, :func:`mix_targets`): ``Y_mix`` is the union of both images'
pseudo-boxes; a degraded box's loss weight is ``lam`` times its confidence weight ``U``, a
clean box's ``1 - lam`` times its own. A box weight scales that box's assigned targets in D's
loss and a weight of 0 is exactly the loss without the box
(:class:`vat.models.detectors.WeightedDetectionLoss`), so a weight-0 box stays removed through
the mixup.

Classification (:func:`mix_soft_labels`): ``Y_mix = lam * w_lq * y_lq + (1 - lam) * w_hq * y_hq``
is *not* renormalised; it is passed to the classifier as its normalised distribution with a
per-sample weight equal to its mass. Cross-entropy is linear in the target, so this is
``lam * w_lq * CE(p, y_lq) + (1 - lam) * w_hq * CE(p, y_hq)``: an uncertain label pulls less,
as a down-weighted box does in detection.

``lam`` (:func:`draw_lambda`) is drawn per pair, shape (B,), from the ``torch.Generator``
passed in (nothing else here is random), in float64, then used in float32 for both images and
weights. Which labels and images the loss mixes, and in which mode, is :mod:`vat.train.losses`'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

__all__ = [
    "TargetList",
    "draw_lambda",
    "mix_images",
    "mix_targets",
    "mix",
    "has_boxes",
    "unit_targets",
    "mix_soft_labels",
]

_TARGET_KEYS = frozenset({"boxes", "classes", "weights"})

TargetList = Sequence[Mapping[str, Tensor]]


def draw_lambda(batch: int, alpha: float, generator: torch.Generator, fold: bool = False) -> Tensor:
    """(batch,) float32 draws of lam ~ Beta(alpha, alpha) from ``generator`` (on its device).

    ``fold``: ``max(lam, 1 - lam)`` (the authors' released code: the clean image never weighs
    more than 0.5). Beta(a, a) is the first coordinate of Dirichlet(a, a), sampled with the
    generator as torch.distributions does.
    """
    conc = torch.full((batch, 2), float(alpha), dtype=torch.float64, device=generator.device)
    lam = torch._sample_dirichlet(conc, generator=generator)[:, 0]
    if fold:
        lam = torch.maximum(lam, 1 - lam)
    return lam.float()


def _as_lambda(lam: float | Tensor, batch: int, device: torch.device) -> Tensor:
    lam_t = torch.as_tensor(lam, dtype=torch.float32).detach().to(device, torch.float32)
    if lam_t.ndim == 0:
        lam_t = lam_t.expand(batch)
    if lam_t.shape != (batch,):
        raise ValueError(f"lam must be a scalar or ({batch},), got shape {tuple(lam_t.shape)}")
    if not bool(((lam_t >= 0) & (lam_t <= 1)).all()):
        raise ValueError("lam must lie in [0, 1]")
    return lam_t


def mix_images(i_f: Tensor, i_hq: Tensor, lam: float | Tensor) -> Tensor:
    """``lam * I_F + (1 - lam) * I_HQ`` (Eq. 7), ``lam`` a scalar or one per image (B,)."""
    if i_f.shape != i_hq.shape:
        raise ValueError(f"I_F {tuple(i_f.shape)} and I_HQ {tuple(i_hq.shape)} must have the same shape")
    lam_t = _as_lambda(lam, i_f.shape[0], i_f.device)
    lam_t = lam_t.to(i_f.dtype if i_f.is_floating_point() else torch.float32)
    lam_t = lam_t.view(-1, *([1] * (i_f.ndim - 1)))
    return lam_t * i_f + (1 - lam_t) * i_hq


def _target(t: Mapping[str, Tensor], i: int) -> tuple[Tensor, Tensor, Tensor]:
    """(boxes (M, 4) float32, classes (M,) int64, weights (M,) float32; absent weights = 1)."""
    if not isinstance(t, Mapping):
        raise TypeError(f"target {i}: expected a dict with boxes / classes / weights, got {type(t).__name__}")
    unknown = set(t) - _TARGET_KEYS
    if unknown:
        raise ValueError(f"target {i}: unknown keys {sorted(unknown)}; expected {sorted(_TARGET_KEYS)}")
    boxes = torch.as_tensor(t["boxes"]).float().reshape(-1, 4)
    classes = torch.as_tensor(t["classes"]).reshape(-1).long().to(boxes.device)
    w = t.get("weights")
    weights = torch.ones(len(boxes), device=boxes.device) if w is None else torch.as_tensor(w)
    weights = weights.detach().reshape(-1).float().to(boxes.device)
    if not (len(boxes) == len(classes) == len(weights)):
        raise ValueError(f"target {i}: {len(boxes)} boxes, {len(classes)} classes, {len(weights)} weights")
    return boxes, classes, weights


def unit_targets(targets: TargetList) -> list[dict[str, Tensor]]:
    """The targets with every weight > 0 set to 1 (a weight-0 box stays removed)."""
    out = []
    for i, t in enumerate(targets):
        boxes, classes, weights = _target(t, i)
        out.append({"boxes": boxes, "classes": classes, "weights": (weights > 0).float()})
    return out


def mix_targets(
    targets_lq: TargetList, targets_hq: TargetList, lam: float | Tensor
) -> list[dict[str, Tensor]]:
    """The label half of Eq. 7 for detection: ``Y_mix``, one dict per pair.

    Per pair, the degraded boxes with weights ``lam * w`` followed by the clean boxes with
    weights ``(1 - lam) * w`` (see :func:`mix`); ``lam``: a scalar or one per pair (B,).
    """
    b = len(targets_lq)
    if len(targets_hq) != b:
        raise ValueError(f"{b} degraded and {len(targets_hq)} clean targets: they must pair up")
    lam_t = _as_lambda(lam, b, lam.device if isinstance(lam, Tensor) else torch.device("cpu"))
    out = []
    for i, (t_lq, t_hq) in enumerate(zip(targets_lq, targets_hq, strict=True)):
        b_lq, c_lq, w_lq = _target(t_lq, i)
        b_hq, c_hq, w_hq = _target(t_hq, i)
        dev = b_lq.device
        lam_i = lam_t[i].to(dev)
        out.append(
            {
                "boxes": torch.cat([b_lq, b_hq.to(dev)]),
                "classes": torch.cat([c_lq, c_hq.to(dev)]),
                "weights": torch.cat([w_lq * lam_i, w_hq.to(dev) * (1 - lam_i)]),
            }
        )
    return out


def mix(
    i_f: Tensor, i_hq: Tensor, targets_lq: TargetList, targets_hq: TargetList, lam: float | Tensor
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Eq. 7 for detection: ``(I_mix, Y_mix)`` = ``(mix_images(...), mix_targets(...))``.

    ``targets_*``: one dict per image, ``boxes`` (M, 4) pixel xyxy, ``classes`` (M,) and
    optional ``weights`` (M,) (the pseudo-labels' confidence weights; absent = 1). ``Y_mix``
    holds, per image, the degraded boxes with weights ``lam * w`` followed by the clean
    boxes with weights ``(1 - lam) * w``; a box of weight 0 keeps weight 0 (removed).
    ``lam``: a scalar or (B,); the weights never carry a gradient.
    """
    i_mix = mix_images(i_f, i_hq, lam)
    b = i_f.shape[0]
    if len(targets_lq) != b or len(targets_hq) != b:
        raise ValueError(
            f"{len(targets_lq)} degraded and {len(targets_hq)} clean targets for {b} image pairs"
        )
    return i_mix, mix_targets(targets_lq, targets_hq, _as_lambda(lam, b, i_f.device))


def has_boxes(targets: TargetList) -> Tensor:
    """(B,) bool: the image has at least one box of weight > 0."""
    return torch.tensor([bool((_target(t, i)[2] > 0).any()) for i, t in enumerate(targets)], dtype=torch.bool)


def mix_soft_labels(
    labels_lq: Tensor, labels_hq: Tensor, weights_lq: Tensor, weights_hq: Tensor, lam: float | Tensor
) -> tuple[Tensor, Tensor]:
    """Eq. 7 for classification: ``Y_mix = lam * w_lq * y_lq + (1 - lam) * w_hq * y_hq`` (B, K).

    Returned as ``(Y_mix / mass, mass)``, the mass (B,) being the per-sample weight (0 where
    ``Y_mix`` is 0, whose distribution is then left as 0): cross-entropy is linear in its
    target, so ``mass * CE(p, Y_mix / mass) = CE(p, Y_mix)``.
    """
    if labels_lq.shape != labels_hq.shape or labels_lq.ndim != 2:
        raise ValueError(
            f"soft labels must both be (B, K), got {tuple(labels_lq.shape)} and {tuple(labels_hq.shape)}"
        )
    lam_t = _as_lambda(lam, labels_lq.shape[0], labels_lq.device).view(-1, 1)
    y = lam_t * weights_lq.float().view(-1, 1) * labels_lq.float()
    y = y + (1 - lam_t) * weights_hq.float().view(-1, 1) * labels_hq.float()
    mass = y.sum(1)
    return torch.where(mass.view(-1, 1) > 0, y / mass.clamp_min(1e-12).view(-1, 1), 0.0), mass
