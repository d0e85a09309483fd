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

Distributed training (DDP, :mod:`vat.train.distributed`). D's detection loss of a batch is not the
mean of per-shard losses (ultralytics normalises by the batch's target-score sum and scales
by the batch size), so averaging per-rank losses would train on something else than the
single-process loss. With ``gather`` (:func:`vat.train.distributed.all_gather_cat`) and ``shard``
(:func:`vat.train.distributed.shard`) the loss is exact instead. The contract, for a global batch
of ``B_g = W * B_l`` pairs split into ``W`` equal contiguous shards:

- ``i_f`` / ``i_hq`` are this rank's ``B_l`` images; the labels (targets, soft labels and
  their weights) and the keep masks are the *global* batch's, identical on every rank.
- ``generator`` is seeded identically on every rank; ``lam`` is drawn for all ``B_g`` pairs,
  so every rank sees the same draws and mixes its images with ``lam[shard]``; the returned
  ``lam`` is the global (B_g,) tensor.
- L_cyc stays this rank's mean; DDP's gradient averaging over equal shards makes it the
  global mean.
- Each supervised term (clean, mix, gate flow) runs T_A on *all* local images (no selection
  before T_A), gathers the result (the gate flow: the mixed images) to the global batch,
  selects the kept images there and calls D's loss on that global tensor. Every rank thus
  computes the same global L_mle; the gather's backward gives each rank's slice its
  gradient summed over the ranks (``W`` times), which DDP's averaging divides back, so the
  averaged gradient is the single-process gradient of ``cycle_weight * L_cyc + mle_weight
  * L_mle`` on the global batch. The value to log is the mean over ranks of ``total``.
- ``gather`` is called the same number of times, in the same order, on every rank (it
  depends on ``cfg`` and the global masks only), so the collectives always match; a rank
  none of whose images is kept still gathers. A term with no kept image in the whole global
  batch gathers nothing on any rank.
- Cost: D runs on the global batch's kept images on every rank (``W`` times the
  single-process work of D, and its activations for ``B_g`` images), and each term sends
  ``B_g`` images over the network and their gradients back.
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
    "mix_targets",
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
    def mix_labels(self, y_lq: Any, y_hq: Any, lam: Tensor) -> Any: ...
    def loss(self, images: Tensor, labels: Any) -> Tensor: ...
    def losses(self, calls: list[tuple[Tensor, Any]]) -> list[Tensor]: ...


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

    def mix_labels(self, y_lq: TargetList, y_hq: TargetList, lam: Tensor) -> list:
        return mix_targets(y_lq, y_hq, lam)

    def loss(self, images: Tensor, labels: TargetList) -> Tensor:
        return self.detector.loss(images, list(labels))[0]

    def losses(self, calls: list[tuple[Tensor, TargetList]]) -> list[Tensor]:
        return [total for total, _ in self.detector.losses([(x, list(y)) for x, y in calls])]


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

    def mix_labels(self, y_lq, y_hq, lam):
        (p_lq, w_lq), (p_hq, w_hq) = y_lq, y_hq
        return mix_soft_labels(p_lq, p_hq, w_lq, w_hq, lam.to(p_lq.device))

    def loss(self, images: Tensor, labels: tuple[Tensor, Tensor]) -> Tensor:
        y, w = labels
        return self.classifier.loss(images, y, w)

    def losses(self, calls: list[tuple[Tensor, tuple[Tensor, Tensor]]]) -> list[Tensor]:
        return self.classifier.losses([(x, y, w) for x, (y, w) in calls])


def _task_losses(task: _Task, calls: dict[str, tuple[Tensor, Any]], one_pass: bool) -> dict[str, Tensor]:
    """D's loss of each named ``(images, labels)`` call: one D forward for all of them with
    ``one_pass`` (the same values up to float rounding, fewer and larger kernels), else one each."""
    if one_pass and len(calls) > 1:
        return dict(zip(calls, task.losses(list(calls.values())), strict=True))
    return {name: task.loss(x, y) for name, (x, y) in calls.items()}


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
    *,
    gather: Callable[[Tensor], Tensor] | None = None,
    shard: slice | None = None,
    one_pass: bool = False,
) -> dict[str, Tensor]:
    if i_f.shape != i_hq.shape:
        raise ValueError(f"I_F {tuple(i_f.shape)} and I_HQ {tuple(i_hq.shape)} must have the same shape")
    if gather is not None:
        return _vat_sharded(
            task, t_a, t_b, i_f, i_hq, y_lq, y_hq, keep_lq, keep_hq, cfg, generator, gather, shard, one_pass
        )
    b, dev = i_f.shape[0], i_f.device
    const0 = torch.zeros((), device=dev)
    lam = torch.ones(b, device=dev)
    cycle = mle_clean = mle_mix = mle_gate = const0
    idx_hq = keep_hq.nonzero().flatten() if cfg.use_mle else keep_hq.new_zeros(0, dtype=torch.long)
    idx_lq = keep_lq.nonzero().flatten() if cfg.use_mle else keep_lq.new_zeros(0, dtype=torch.long)
    if cfg.use_mle and cfg.mixup != "none":
        if generator is None:
            raise ValueError(f"mixup={cfg.mixup!r} draws lam: pass a torch.Generator")
        lam = draw_lambda(b, cfg.alpha, generator, cfg.fold_lambda).to(dev)

    # Every T_A input that does not depend on another T output goes through ONE call (and T_B's
    # two inputs through one): T_A(I_F), T_A(I_HQ) of the kept clean images, T_A(I_mix). The
    # translator works per image, so this is the separate calls' result with fewer, larger
    # kernels (3 translator calls a step instead of 5).
    direct = labels = None
    inputs: dict[str, Tensor] = {}
    if cfg.use_cycle:
        inputs["f"] = i_f
    if idx_hq.numel():
        inputs["hq"] = _take(i_hq, idx_hq)
    if idx_lq.numel():
        if cfg.mixup == "none":
            direct, labels = _take(i_f, idx_lq), task.take(task.unit(y_lq), idx_lq)
            if not cfg.use_cycle:
                inputs["direct"] = direct
        else:
            if cfg.mixup == "plain":
                y_lq, y_hq = task.unit(y_lq), task.unit(y_hq)
            direct, labels = task.mix(
                _take(i_f, idx_lq), _take(i_hq, idx_lq), task.take(y_lq, idx_lq), task.take(y_hq, idx_lq),
                lam[idx_lq],
            )  # fmt: skip
            inputs["direct"] = direct
    outs: dict[str, Tensor] = {}
    if inputs:
        sizes = [x.shape[0] for x in inputs.values()]
        batched = t_a(torch.cat(list(inputs.values())) if len(inputs) > 1 else next(iter(inputs.values())))
        outs = dict(zip(inputs, batched.split(sizes), strict=True))

    if cfg.use_cycle:
        a_f = outs["f"]
        back = t_b(torch.cat([a_f, i_hq]))  # T_B(T_A(I_F)) and T_B(I_HQ)
        back_f, b_hq = back[:b], back[b:]
        back_hq = t_a(b_hq)
        for name, x, y in (("T_B(T_A(I_F))", back_f, i_f), ("T_A(T_B(I_HQ))", back_hq, i_hq)):
            if x.shape != y.shape:
                raise ValueError(f"{name} has shape {tuple(x.shape)}, its input {tuple(y.shape)}")
        cycle = (i_f - back_f).abs().mean() + (i_hq - back_hq).abs().mean()

    if cfg.use_mle:

        def zero() -> Tensor:  # an empty term: 0 on the translator's (and gate's) graph
            return _graph_zero(t_a, i_f).to(dev)

        calls: dict[str, tuple[Tensor, Any]] = {}
        # Clean term (Eq. 8, first): T_A(I_HQ) against Y_HQ, clean images with a pseudo-box only.
        if idx_hq.numel():
            y_clean = y_hq if cfg.clean_weights else task.unit(y_hq)
            calls["clean"] = (outs["hq"], task.take(y_clean, idx_hq))
        # Mix term (Eq. 8, second), pairs whose degraded image has a pseudo-box only.
        if idx_lq.numel():
            if cfg.mixup == "none" and cfg.use_cycle:
                translated = _take(outs["f"], idx_lq)  # reuses the cycle term's T_A(I_F)
            else:
                translated = outs["direct"]
            calls["mix"] = (translated, labels)
            if cfg.gate_flow:
                calls["gate"] = (direct, labels)
        mle_clean, mle_mix, mle_gate = _mle_terms(_task_losses(task, calls, one_pass), cfg, zero)
    return _result(cfg, cycle, mle_clean, mle_mix, mle_gate, lam)


def _mle_terms(got: dict[str, Tensor], cfg: LossConfig, zero: Callable[[], Tensor]) -> tuple[Tensor, ...]:
    """(clean, mix, gate) from the computed terms; a term without kept images is ``zero()``
    (the gate term only with ``gate_flow``, else a constant 0)."""
    clean = got["clean"] if "clean" in got else zero()
    mix = got["mix"] if "mix" in got else zero()
    if not cfg.gate_flow:
        return clean, mix, torch.zeros((), device=mix.device)
    return clean, mix, got["gate"] if "gate" in got else zero()


def _result(
    cfg: LossConfig, cycle: Tensor, mle_clean: Tensor, mle_mix: Tensor, mle_gate: Tensor, lam: Tensor
) -> dict[str, Tensor]:
    """The loss dict: ``total = cycle_weight * L_cyc + mle_weight * L_mle`` and its terms."""
    mle = mle_clean + mle_mix + mle_gate
    total = cfg.cycle_weight * cycle + cfg.mle_weight * mle
    return {"total": total, "cycle": cycle, "mle": mle, "mle_clean": mle_clean, "mle_mix": mle_mix,
            "mle_gate": mle_gate, "lam": lam}  # fmt: skip


def _check_shard(gather: Any, shard: slice | None, b_local: int, b_global: int) -> None:
    """``gather`` and ``shard`` come together; ``shard`` is this rank's ``b_local`` rows of ``b_global``."""
    if gather is None and shard is None:
        return
    if gather is None or shard is None:
        raise ValueError("gather and shard go together: pass both (distributed) or neither")
    if not isinstance(shard, slice) or shard.step not in (None, 1):
        raise ValueError(f"shard must be a contiguous slice, got {shard!r}")
    start, stop = shard.start or 0, shard.stop
    if stop is None or not (0 <= start <= stop <= b_global) or stop - start != b_local:
        raise ValueError(
            f"shard {shard!r} is not {b_local} rows of a global batch of {b_global} "
            f"(the local images) within the labels"
        )


def _label_batch(i_f: Tensor, n_labels: int, gather: Any, shard: slice | None) -> int:
    """The batch size the labels and masks must have: B (single process) or B_g (distributed)."""
    b = i_f.shape[0]
    if gather is None and shard is None:
        return b
    _check_shard(gather, shard, b, n_labels)
    return n_labels


def _vat_sharded(
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
    gather: Callable[[Tensor], Tensor],
    shard: slice | None,
    one_pass: bool = False,
) -> dict[str, Tensor]:
    """:func:`_vat` on this rank's images and the global batch's labels (see the module docstring).

    T_A runs on every local image; its outputs are gathered to the global batch, where the
    kept images are selected and scored, so the supervised terms equal the single-process
    ones. The number and order of ``gather`` calls depend on ``cfg`` and the *global* masks
    only, identical on every rank, so the collectives always match.
    """
    b_l, b_g, dev = i_f.shape[0], keep_lq.shape[0], i_f.device
    _check_shard(gather, shard, b_l, b_g)
    assert shard is not None
    const0 = torch.zeros((), device=dev)
    lam = torch.ones(b_g, device=dev)

    a_f = None
    cycle = const0
    if cfg.use_cycle:  # a local mean: DDP's averaging over equal shards makes it the global mean
        cycle, a_f = _cycle(i_f, i_hq, t_a, t_b)

    mle_clean = mle_mix = mle_gate = const0
    if cfg.use_mle:

        def zero() -> Tensor:
            return _graph_zero(t_a, i_f).to(dev)

        def gathered(x: Tensor) -> Tensor:
            out = gather(x)
            if out.shape[0] != b_g or out.shape[1:] != x.shape[1:]:
                raise ValueError(
                    f"gather turned {tuple(x.shape)} into {tuple(out.shape)}; expected {b_g} rows "
                    f"(the global batch of the labels)"
                )
            return out

        calls: dict[str, tuple[Tensor, Any]] = {}
        # Clean term: T_A on every local clean image, gathered, then the kept ones.
        idx = keep_hq.nonzero().flatten()
        if idx.numel():
            y_clean = y_hq if cfg.clean_weights else task.unit(y_hq)
            calls["clean"] = (_take(gathered(t_a(i_hq)), idx), task.take(y_clean, idx))
        # Mix term: lam for the global batch (same generator state on every rank), this
        # rank's share mixes its images, the labels are mixed globally.
        if cfg.mixup != "none":
            if generator is None:
                raise ValueError(f"mixup={cfg.mixup!r} draws lam: pass a torch.Generator")
            lam = draw_lambda(b_g, cfg.alpha, generator, cfg.fold_lambda).to(dev)
        idx = keep_lq.nonzero().flatten()
        if idx.numel():
            if cfg.mixup == "none":
                direct, labels = i_f, task.unit(y_lq)
                translated = a_f if a_f is not None else t_a(direct)
            else:
                if cfg.mixup == "plain":
                    y_lq, y_hq = task.unit(y_lq), task.unit(y_hq)
                direct = mix_images(i_f, i_hq, lam[shard])
                labels = task.mix_labels(y_lq, y_hq, lam)
                translated = t_a(direct)
            labels = task.take(labels, idx)
            calls["mix"] = (_take(gathered(translated), idx), labels)
            if cfg.gate_flow:
                calls["gate"] = (_take(gathered(direct), idx), labels)
        mle_clean, mle_mix, mle_gate = _mle_terms(_task_losses(task, calls, one_pass), cfg, zero)
    return _result(cfg, cycle, mle_clean, mle_mix, mle_gate, lam)


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
    *,
    gather: Callable[[Tensor], Tensor] | None = None,
    shard: slice | None = None,
    one_pass: bool = False,
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

    Distributed (DDP, one process per shard of a global batch of ``B_g = W * B_l`` pairs;
    see the module docstring): pass ``gather`` (:func:`vat.train.distributed.all_gather_cat`) and
    ``shard`` (:func:`vat.train.distributed.shard`, this rank's rows of the global batch). Then
    ``i_f`` / ``i_hq`` are this rank's ``B_l`` images, while ``targets_*`` and
    ``has_boxes_*`` are the *global* batch's (``B_g``), identical on every rank, and
    ``generator`` must be in the same state on every rank. ``cycle`` is this rank's mean,
    ``mle`` the global batch's (the same on every rank), ``lam`` is (B_g,). Backpropagating
    ``total`` on every rank under DDP gives the gradient of one process on the global batch.
    The loss must run inside the DDP-wrapped module's ``forward`` (DDP only synchronises
    gradients of a backward that follows its own forward).

    ``one_pass``: the supervised terms' D losses (clean, mix, gate flow) run as ONE forward
    of D over their images (``detector.losses``), each term still assigned and normalised on
    its own: the same values up to float rounding, fewer and larger kernels (a speed option).
    """
    _check_frozen(detector, "detector")
    b = _label_batch(i_f, len(targets_lq), gather, shard)
    if len(targets_lq) != b or len(targets_hq) != b:
        raise ValueError(
            f"{len(targets_lq)} degraded and {len(targets_hq)} clean targets for {b} image pairs"
        )
    keep_lq = _mask(has_boxes_lq, has_boxes(targets_lq), b, "has_boxes_lq", i_f.device)
    keep_hq = _mask(has_boxes_hq, has_boxes(targets_hq), b, "has_boxes_hq", i_f.device)
    return _vat(
        _Detection(detector),
        t_a,
        t_b,
        i_f,
        i_hq,
        targets_lq,
        targets_hq,
        keep_lq,
        keep_hq,
        cfg,
        generator,
        gather=gather,
        shard=shard,
        one_pass=one_pass,
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
    *,
    gather: Callable[[Tensor], Tensor] | None = None,
    shard: slice | None = None,
    one_pass: bool = False,
) -> dict[str, Tensor]:
    """The VaT loss for classification (the paper's CLIP task); same terms as :func:`vat_loss`.

    ``labels_*`` (B, K): soft pseudo-labels (rows summing to 1); ``weights_*`` (B,): their
    confidence weights (absent = 1; 0 = the label was filtered: the image then counts in
    L_cyc only). ``classifier``: anything with ``.loss(images, soft_labels, weights)``, frozen
    (:class:`vat.models.classifier.FrozenClassifier`; a mean cross-entropy over the samples of
    non-zero weight). Soft-label mixup: see :func:`mix_soft_labels`.

    Distributed: ``gather`` / ``shard`` as in :func:`vat_loss`; ``labels_*`` and
    ``weights_*`` are then the global batch's (B_g rows), the images this rank's.
    """
    _check_frozen(classifier, "classifier")
    b = _label_batch(i_f, labels_lq.shape[0] if labels_lq.ndim else 0, gather, shard)
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
        gather=gather,
        shard=shard,
        one_pass=one_pass,
    )
