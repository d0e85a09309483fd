"""The training losses of VaT (Wu & Jin, ECCV 2024, Eqs. 6-8 and Algorithm 1).

Notation: ``I_F = G(I_LQ, I_R)`` is the gated fusion of the degraded image and its
restoration (Eq. 5), ``I_HQ`` a clean image, ``T_A`` the translator (I_F -> I_HQ-like),
``T_B`` its reverse (training only), D the frozen detector (or classifier) and ``L_h`` D's
own training loss. Every function here takes the modules as callables; nothing depends on
how the translator is built.

Cycle consistency (Eq. 6), each norm a mean absolute error over all pixels::

    L_cyc = |I_F - T_B(T_A(I_F))|_1 + |I_HQ - T_A(T_B(I_HQ))|_1

Uncertainty-guided mixup (Eq. 7), ``lam ~ Beta(alpha, alpha)``::

    I_mix = lam * I_F + (1 - lam) * I_HQ
    Y_mix = U_LQ * lam * Y_LQ  +  U_HQ * (1 - lam) * Y_HQ

For detection ``Y_mix`` is the union of both images' pseudo-boxes; a degraded box's loss
weight is ``lam`` times its confidence weight ``U`` (the ``weight`` column of the
pseudo-label Parquet, derived from NUQ), a clean box's ``1 - lam`` times its own. A box
weight scales that box's assigned targets in D's loss and a weight of 0 is exactly the
loss without the box (:class:`vat.models.detector.WeightedDetectionLoss`), so a weight-0
box stays removed through the mixup.

Maximum marginal likelihood (Eq. 8)::

    L_mle = L_h(T_A(I_HQ), Y_HQ) + L_h(T_A(I_mix), Y_mix)
    L     = cycle_weight * L_cyc + mle_weight * L_mle          (Algorithm 1: both weights 1)

Choices where the paper is silent (defaults follow the paper's formulation):

- "For dense tasks, we only calculate the second loss term for labels that contain the
  target" (Sec. 3.3): a clean image without a pseudo-box is left out of the clean term, and
  a pair whose *degraded* image has no pseudo-box (none, or all of weight 0) is left out of
  the mix term (its missed objects would otherwise be taught as background); both still
  count in L_cyc. When no image is left, the term is 0, still attached to the translator's
  graph (zero gradients), so ``backward()`` and DDP work. For classification the same rule
  drops a degraded image whose label was filtered (weight 0) from the mix term.
- ``lam`` is drawn per pair, shape (B,), from the ``torch.Generator`` passed in (nothing
  else is random here), in float64, then used in float32 for both images and weights.
- The clean term uses Y_HQ with unit weights, as Eq. 8 writes it (``clean_weights=True``
  also applies U_HQ there). Only ``mixup="uncertainty"`` uses the confidence weights in the
  mix term; ``"plain"`` (Table 4's "Mixup" row, Zhang et al. ICLR 2018) weighs kept boxes
  ``lam`` / ``1 - lam`` only; ``"none"`` (Table 4's rows without mixup) replaces the mix term
  by ``L_h(T_A(I_F), Y_LQ)`` with unit weights, draws no ``lam`` (the generator is not
  touched, the returned ``lam`` is 1) and reuses the ``T_A(I_F)`` of the cycle term. In every
  mode a box of weight 0 stays removed.
- Gradients reach the gate through ``I_F`` in both terms (the paper mixes ``G(I_LQ, I_R)``).
- Scale: D's detection loss is ultralytics' ``(box + cls + dfl) * batch`` over the images
  kept in each term; the classifier's is a mean cross-entropy. ``cycle_weight`` and
  ``mle_weight`` balance them.
- Classification: ``Y_mix = lam * w_lq * y_lq + (1 - lam) * w_hq * y_hq`` is *not*
  renormalised; it is passed to the classifier as its normalised distribution with a
  per-sample weight equal to its mass. Cross-entropy is linear in the target, so this is
  ``lam * w_lq * CE(p, y_lq) + (1 - lam) * w_hq * CE(p, y_hq)``: an uncertain label pulls
  less, as a down-weighted box does in detection.

Options from the authors' later code release (SPEC, "Details the paper leaves open"), off
by default:

- ``fold_lambda``: ``lam = max(lam, 1 - lam)`` for the fused image, so the clean image never
  weighs more than 0.5.
- ``gate_flow``: a third supervised flow, ``L_h(I_mix, Y_mix)`` with the mix of the fused
  image and the clean image fed straight into D (no T_A), which trains the gate. It uses
  the same ``lam``, pairs and dropping rule as the mix term (with ``mixup="none"``:
  ``L_h(I_F, Y_LQ)``) and is added to L_mle as ``mle_gate``.

Table 4's ablations: ``use_cycle=False`` ("w/o L_cyc": T_B is never called, the cycle term is
a constant 0 outside the graph), ``use_mle=False`` ("w/o L_mle": L_mle is a constant 0 and D
is never called), ``mixup`` none / plain / uncertainty (the last two rows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from vat.errors import ParamsError

__all__ = [
    "MIXUP_MODES",
    "LossConfig",
    "cycle_loss",
    "draw_lambda",
    "mix_images",
    "mix",
    "mix_soft_labels",
    "has_boxes",
    "vat_loss",
    "vat_loss_classify",
]

MIXUP_MODES = ("none", "plain", "uncertainty")
_TARGET_KEYS = frozenset({"boxes", "classes", "weights"})

Translator = Callable[[Tensor], Tensor]
TargetList = Sequence[Mapping[str, Tensor]]


class Detector(Protocol):
    def loss(self, images: Tensor, targets: Any) -> tuple[Tensor, Tensor]: ...


class Classifier(Protocol):
    def loss(self, images: Tensor, soft_labels: Tensor, weights: Tensor | None = None) -> Tensor: ...


@dataclass(frozen=True)
class LossConfig:
    """Weights and switches of the VaT loss (see the module docstring for each choice)."""

    cycle_weight: float = 1.0  # lambda of L_cyc
    mle_weight: float = 1.0  # lambda of L_mle
    use_cycle: bool = True  # Table 4: "w/o L_cyc"
    use_mle: bool = True  # Table 4: "w/o L_mle"
    mixup: str = "uncertainty"  # none | plain (weights lam / 1 - lam) | uncertainty (Eq. 7)
    alpha: float = 0.5  # lam ~ Beta(alpha, alpha)
    fold_lambda: bool = False  # released code: lam = max(lam, 1 - lam), clean image weighs <= 0.5
    gate_flow: bool = False  # released code: L_h(I_mix, Y_mix) straight into D (trains the gate)
    clean_weights: bool = False  # also weight the clean term's boxes by U_HQ (Eq. 8 does not)

    def __post_init__(self) -> None:
        if self.mixup not in MIXUP_MODES:
            raise ParamsError(f"loss mixup={self.mixup!r}: expected one of {', '.join(MIXUP_MODES)}")
        if not (isinstance(self.alpha, int | float) and math.isfinite(self.alpha) and self.alpha > 0):
            raise ParamsError(
                f"loss alpha={self.alpha!r}: must be a positive number (lam ~ Beta(alpha, alpha))"
            )
        for name in ("cycle_weight", "mle_weight"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise ParamsError(f"loss {name}={v!r}: must be a finite number >= 0")
        if not (self.use_cycle or self.use_mle):
            raise ParamsError("loss: use_cycle and use_mle are both off; there is nothing to train")


# -- pieces -----------------------------------------------------------------------------


def cycle_loss(i_f: Tensor, i_hq: Tensor, t_a: Translator, t_b: Translator) -> Tensor:
    """L_cyc (Eq. 6): ``mean|I_F - T_B(T_A(I_F))| + mean|I_HQ - T_A(T_B(I_HQ))|``."""
    return _cycle(i_f, i_hq, t_a, t_b)[0]


def _cycle(i_f: Tensor, i_hq: Tensor, t_a: Translator, t_b: Translator) -> tuple[Tensor, Tensor]:
    """(L_cyc, T_A(I_F)); the second is reused by ``mixup="none"``."""
    a_f = t_a(i_f)
    back_f = t_b(a_f)
    back_hq = t_a(t_b(i_hq))
    for name, x, y in (("T_B(T_A(I_F))", back_f, i_f), ("T_A(T_B(I_HQ))", back_hq, i_hq)):
        if x.shape != y.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, its input {tuple(y.shape)}")
    return (i_f - back_f).abs().mean() + (i_hq - back_hq).abs().mean(), a_f


def draw_lambda(batch: int, alpha: float, generator: torch.Generator, fold: bool = False) -> Tensor:
    """(batch,) float32 draws of lam ~ Beta(alpha, alpha) from ``generator`` (on its device).

    ``fold``: ``max(lam, 1 - lam)`` (the released code's fold). Beta(a, a) is the first
    coordinate of Dirichlet(a, a), sampled with the generator as torch.distributions does.
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


def mix(
    i_f: Tensor, i_hq: Tensor, targets_lq: TargetList, targets_hq: TargetList, lam: float | Tensor
) -> tuple[Tensor, list[dict[str, Tensor]]]:
    """Eq. 7 for detection: ``(I_mix, Y_mix)``.

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
    lam_t = _as_lambda(lam, b, i_f.device)
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
    return i_mix, out


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


# -- the full loss ------------------------------------------------------------------------


def _graph_zero(*sources: Any) -> Tensor:
    """0, attached to every parameter / tensor of ``sources`` that requires a gradient."""
    zero = None
    for s in sources:
        if isinstance(s, nn.Module):
            tensors = list(s.parameters())
        elif isinstance(s, Tensor):
            tensors = [s]
        else:
            tensors = [p for p in getattr(s, "parameters", list)() if isinstance(p, Tensor)]
        for t in tensors:
            if t.requires_grad:
                term = t.sum() * 0.0
                zero = term if zero is None else zero + term
    return torch.zeros(()) if zero is None else zero.float()


def _check_frozen(model: Any, what: str) -> None:
    params = getattr(model, "parameters", None)
    if callable(params) and any(p.requires_grad for p in params()):
        raise ValueError(f"the {what} must be frozen: some of its parameters require a gradient")


def _mask(given: Tensor | None, derived: Tensor, batch: int, name: str, device: torch.device) -> Tensor:
    mask = derived if given is None else torch.as_tensor(given)
    if mask.shape != (batch,):
        raise ValueError(f"{name} must be ({batch},), got shape {tuple(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)


def _take(x: Tensor, idx: Tensor) -> Tensor:
    return x if idx.numel() == x.shape[0] else x.index_select(0, idx)


class _Task(Protocol):
    """How one task's labels are selected, unweighted, mixed and scored."""

    def take(self, labels: Any, idx: Tensor) -> Any: ...
    def unit(self, labels: Any) -> Any: ...
    def mix(self, i_f: Tensor, i_hq: Tensor, y_lq: Any, y_hq: Any, lam: Tensor) -> tuple[Tensor, Any]: ...
    def loss(self, images: Tensor, labels: Any) -> Tensor: ...


class _Detection:
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def take(self, labels: TargetList, idx: Tensor) -> list:
        return [labels[i] for i in idx.tolist()]

    def unit(self, labels: TargetList) -> list:
        out = []
        for i, t in enumerate(labels):
            boxes, classes, weights = _target(t, i)
            out.append({"boxes": boxes, "classes": classes, "weights": (weights > 0).float()})
        return out

    def mix(self, i_f, i_hq, y_lq, y_hq, lam):
        return mix(i_f, i_hq, y_lq, y_hq, lam)

    def loss(self, images: Tensor, labels: TargetList) -> Tensor:
        return self.detector.loss(images, list(labels))[0]


class _Classification:
    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier

    def take(self, labels: tuple[Tensor, Tensor], idx: Tensor) -> tuple[Tensor, Tensor]:
        y, w = labels
        return _take(y, idx.to(y.device)), _take(w, idx.to(w.device))

    def unit(self, labels: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        y, w = labels
        return y, (w > 0).to(w.dtype)

    def mix(self, i_f, i_hq, y_lq, y_hq, lam):
        (p_lq, w_lq), (p_hq, w_hq) = y_lq, y_hq
        return mix_images(i_f, i_hq, lam), mix_soft_labels(p_lq, p_hq, w_lq, w_hq, lam.to(p_lq.device))

    def loss(self, images: Tensor, labels: tuple[Tensor, Tensor]) -> Tensor:
        y, w = labels
        return self.classifier.loss(images, y, w)


def _vat(
    task: _Task,
    t_a: Translator,
    t_b: Translator,
    i_f: Tensor,
    i_hq: Tensor,
    y_lq: Any,
    y_hq: Any,
    keep_lq: Tensor,
    keep_hq: Tensor,
    cfg: LossConfig,
    generator: torch.Generator | None,
) -> dict[str, Tensor]:
    if i_f.shape != i_hq.shape:
        raise ValueError(f"I_F {tuple(i_f.shape)} and I_HQ {tuple(i_hq.shape)} must have the same shape")
    b, dev = i_f.shape[0], i_f.device
    const0 = torch.zeros((), device=dev)
    lam = torch.ones(b, device=dev)

    a_f = None
    cycle = const0
    if cfg.use_cycle:
        cycle, a_f = _cycle(i_f, i_hq, t_a, t_b)

    mle_clean = mle_mix = mle_gate = const0
    if cfg.use_mle:

        def zero() -> Tensor:  # an empty term: 0 on the translator's (and gate's) graph
            return _graph_zero(t_a, i_f).to(dev)

        # Clean term (Eq. 8, first): T_A(I_HQ) against Y_HQ, clean images with a pseudo-box only.
        idx = keep_hq.nonzero().flatten()
        if idx.numel():
            y_clean = y_hq if cfg.clean_weights else task.unit(y_hq)
            mle_clean = task.loss(t_a(_take(i_hq, idx)), task.take(y_clean, idx))
        else:
            mle_clean = zero()
        # Mix term (Eq. 8, second), pairs whose degraded image has a pseudo-box only.
        if cfg.mixup != "none":
            if generator is None:
                raise ValueError(f"mixup={cfg.mixup!r} draws lam: pass a torch.Generator")
            lam = draw_lambda(b, cfg.alpha, generator, cfg.fold_lambda).to(dev)
        idx = keep_lq.nonzero().flatten()
        if idx.numel():
            if cfg.mixup == "none":
                direct, labels = _take(i_f, idx), task.take(task.unit(y_lq), idx)
                translated = _take(a_f, idx) if a_f is not None else t_a(direct)
            else:
                if cfg.mixup == "plain":
                    y_lq, y_hq = task.unit(y_lq), task.unit(y_hq)
                direct, labels = task.mix(
                    _take(i_f, idx), _take(i_hq, idx), task.take(y_lq, idx), task.take(y_hq, idx), lam[idx]
                )
                translated = t_a(direct)
            mle_mix = task.loss(translated, labels)
            if cfg.gate_flow:
                mle_gate = task.loss(direct, labels)
        else:
            mle_mix = zero()
            if cfg.gate_flow:
                mle_gate = zero()
    mle = mle_clean + mle_mix + mle_gate
    total = cfg.cycle_weight * cycle + cfg.mle_weight * mle
    return {
        "total": total,
        "cycle": cycle,
        "mle": mle,
        "mle_clean": mle_clean,
        "mle_mix": mle_mix,
        "mle_gate": mle_gate,
        "lam": lam,
    }


def vat_loss(
    t_a: Translator,
    t_b: Translator,
    i_f: Tensor,
    i_hq: Tensor,
    targets_lq: TargetList,
    targets_hq: TargetList,
    detector: Detector,
    cfg: LossConfig,
    generator: torch.Generator | None,
    has_boxes_lq: Tensor | None = None,
    has_boxes_hq: Tensor | None = None,
) -> dict[str, Tensor]:
    """The VaT loss for detection, ``L = cycle_weight * L_cyc + mle_weight * L_mle``.

    ``i_f`` (B, 3, H, W): fused degraded images (with the gate's graph); ``i_hq``: as many
    clean images, same size (the pairs are mixed). ``targets_lq`` / ``targets_hq``: one dict
    per image (``boxes``, ``classes``, ``weights``: see :func:`mix`), the kept pseudo-boxes.
    ``detector``: anything with ``.loss(images, targets) -> (total, parts)`` whose parameters
    are frozen (:class:`vat.models.detector.FrozenDetector`). ``generator``: the only source of
    randomness (lam); may be None with ``mixup="none"``. ``has_boxes_lq`` / ``has_boxes_hq``
    (B,) bool override which images count as having a pseudo-box (default :func:`has_boxes`).

    Returns ``total`` (backpropagate this), the unweighted terms ``cycle``, ``mle`` =
    ``mle_clean + mle_mix + mle_gate`` (``mle_gate`` is 0 unless ``gate_flow``), and ``lam``
    (B,), the weight of I_F in each pair's mix (1 when no lam was drawn).
    """
    _check_frozen(detector, "detector")
    b = i_f.shape[0]
    if len(targets_lq) != b or len(targets_hq) != b:
        raise ValueError(
            f"{len(targets_lq)} degraded and {len(targets_hq)} clean targets for {b} image pairs"
        )
    keep_lq = _mask(has_boxes_lq, has_boxes(targets_lq), b, "has_boxes_lq", i_f.device)
    keep_hq = _mask(has_boxes_hq, has_boxes(targets_hq), b, "has_boxes_hq", i_f.device)
    return _vat(
        _Detection(detector), t_a, t_b, i_f, i_hq, targets_lq, targets_hq, keep_lq, keep_hq, cfg, generator
    )


def vat_loss_classify(
    t_a: Translator,
    t_b: Translator,
    i_f: Tensor,
    i_hq: Tensor,
    labels_lq: Tensor,
    labels_hq: Tensor,
    classifier: Classifier,
    cfg: LossConfig,
    generator: torch.Generator | None,
    weights_lq: Tensor | None = None,
    weights_hq: Tensor | None = None,
) -> dict[str, Tensor]:
    """The VaT loss for classification (the paper's CLIP task); same terms as :func:`vat_loss`.

    ``labels_*`` (B, K): soft pseudo-labels (rows summing to 1); ``weights_*`` (B,): their
    confidence weights (absent = 1; 0 = the label was filtered: the image then counts in
    L_cyc only). ``classifier``: anything with ``.loss(images, soft_labels, weights)``, frozen
    (:class:`vat.models.classifier.FrozenClassifier`; a mean cross-entropy over the samples of
    non-zero weight). Soft-label mixup: see :func:`mix_soft_labels`.
    """
    _check_frozen(classifier, "classifier")
    b = i_f.shape[0]
    for name, y in (("labels_lq", labels_lq), ("labels_hq", labels_hq)):
        if y.ndim != 2 or y.shape[0] != b:
            raise ValueError(f"{name} must be ({b}, K), got shape {tuple(y.shape)}")
    w_lq = torch.ones(b, device=labels_lq.device) if weights_lq is None else weights_lq.detach().float()
    w_hq = torch.ones(b, device=labels_hq.device) if weights_hq is None else weights_hq.detach().float()
    for name, w in (("weights_lq", w_lq), ("weights_hq", w_hq)):
        if w.shape != (b,):
            raise ValueError(f"{name} must be ({b},), got shape {tuple(w.shape)}")
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1]")
    keep_lq = (w_lq > 0).to(i_f.device)
    keep_hq = (w_hq > 0).to(i_f.device)
    return _vat(
        _Classification(classifier),
        t_a,
        t_b,
        i_f,
        i_hq,
        (labels_lq, w_lq),
        (labels_hq, w_hq),
        keep_lq,
        keep_hq,
        cfg,
        generator,
    )
