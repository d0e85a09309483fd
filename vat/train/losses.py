"""The training loss of VaT (Wu & Jin, ECCV 2024, Eqs. 6-8 and Algorithm 1).

Notation: ``I_F = G(I_LQ, I_R)`` is the gated fusion of the degraded image and its
restoration (Eq. 5), ``I_HQ`` a clean image, ``T_A`` the translator (I_F -> I_HQ-like),
``T_B`` its reverse (training only), D the frozen detector (or classifier) and ``L_h`` D's
own training loss. Every function here takes the modules as callables; nothing depends on
how the translator is built. The mixup of Eq. 7 (``I_mix``, ``Y_mix``, ``lam``) is
:mod:`vat.train.mixing`.

Cycle consistency (Eq. 6), each norm a mean absolute error over all pixels::

    L_cyc = |I_F - T_B(T_A(I_F))|_1 + |I_HQ - T_A(T_B(I_HQ))|_1

Maximum marginal likelihood (Eq. 8)::

    L_mle = L_h(T_A(I_HQ), Y_HQ) + L_h(T_A(I_mix), Y_mix)
    L     = cycle_weight * L_cyc + mle_weight * L_mle          (Algorithm 1: both weights 1)

How the code is laid out: :func:`vat_loss` (detection) and :func:`vat_loss_classify` check
their inputs and hand one :func:`_vat` the step's pairs and a task adapter
(:class:`_Detection`, :class:`_Classification`: how the task's labels are selected, mixed and
scored). :func:`_vat` makes one :func:`_plan`, shared by the single-process and the
distributed path (which images each supervised term keeps, ``lam``, each term's labels),
runs the translators (:func:`_translate_batched` in one process, :func:`_translate_sharded`
on one rank of a DDP step), and scores each term with D. Each choice where the paper is
silent is documented with the code that makes it: :class:`LossConfig` (the modes, options
and ablations), :func:`_plan` (which images count), :func:`_mix_input` (gradients to the
gate), the adapters (D's loss scale), :class:`Sharding` (the distributed contract).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from vat.train.loss_inputs import (
    ClassificationPairs,
    Classifier,
    DetectionPairs,
    Detector,
    LossConfig,
    Sharding,
    Translator,
)
from vat.train.mixing import draw_lambda, has_boxes, mix_images
from vat.train.tasks import _Classification, _Detection, _take, _Task, _task_losses

__all__ = ["cycle_loss", "vat_loss", "vat_loss_classify"]


def cycle_loss(i_f: Tensor, i_hq: Tensor, t_a: Translator, t_b: Translator) -> Tensor:
    """L_cyc (Eq. 6): ``mean|I_F - T_B(T_A(I_F))| + mean|I_HQ - T_A(T_B(I_HQ))|``."""
    return _cycle(i_f, i_hq, t_a, t_b)[0]


def _cycle(i_f: Tensor, i_hq: Tensor, t_a: Translator, t_b: Translator) -> tuple[Tensor, Tensor]:
    """(L_cyc, T_A(I_F)), one translator call per input; the second is reused by ``mixup="none"``."""
    a_f = t_a(i_f)
    back_f = t_b(a_f)
    back_hq = t_a(t_b(i_hq))
    return _l1_cycle(i_f, back_f, i_hq, back_hq), a_f


def _l1_cycle(i_f: Tensor, back_f: Tensor, i_hq: Tensor, back_hq: Tensor) -> Tensor:
    """Eq. 6 from the round trips ``back_f = T_B(T_A(I_F))`` and ``back_hq = T_A(T_B(I_HQ))``."""
    for name, x, y in (("T_B(T_A(I_F))", back_f, i_f), ("T_A(T_B(I_HQ))", back_hq, i_hq)):
        if x.shape != y.shape:
            raise ValueError(f"{name} has shape {tuple(x.shape)}, its input {tuple(y.shape)}")
    return (i_f - back_f).abs().mean() + (i_hq - back_hq).abs().mean()


# -- the full loss: one plan, two ways to run the translators ----------------------------------


@dataclass(frozen=True)
class _Step:
    """One step's pairs as :func:`_vat` takes them: the images (this rank's when sharded), the
    task's labels and the keep masks (B,) bool (the global batch's when sharded)."""

    i_f: Tensor
    i_hq: Tensor
    y_lq: Any
    y_hq: Any
    keep_lq: Tensor
    keep_hq: Tensor


@dataclass(frozen=True)
class _Plan:
    """What the single-process and the sharded path share; rows are the labels' (global) rows."""

    lam: Tensor  # (B,): the weight of I_F in each pair's mix (1 when none was drawn)
    idx_hq: Tensor  # the clean term's rows: clean images with a pseudo-box
    idx_lq: Tensor  # the mix (and gate flow) term's rows: pairs whose degraded image has one
    clean: Any  # the clean term's labels, of idx_hq (None when it keeps no image)
    mix: Any  # the mix and gate flow terms' labels, of idx_lq (None when they keep no pair)


def _plan(task: _Task, step: _Step, cfg: LossConfig, generator: torch.Generator | None) -> _Plan:
    """Which images each supervised term keeps, ``lam`` and each term's labels (no gradient here).

    "For dense tasks, we only calculate the second loss term for labels that contain the
    target" (Sec. 3.3): a clean image without a pseudo-box is left out of the clean term, and a
    pair whose *degraded* image has no pseudo-box (none, or all of weight 0) is left out of the
    mix term (its missed objects would otherwise be taught as background); both still count in
    L_cyc. For classification the same rule drops a degraded image whose label was filtered
    (weight 0) from the mix term. ``lam`` is drawn per pair, one for every row whoever is
    dropped, from ``generator`` (the only source of randomness; untouched with
    ``mixup="none"`` or ``use_mle=False``).
    """
    b, dev = step.keep_lq.shape[0], step.i_f.device
    lam = torch.ones(b, device=dev)
    none = step.keep_lq.new_zeros(0, dtype=torch.long)
    idx_hq = step.keep_hq.nonzero().flatten() if cfg.use_mle else none
    idx_lq = step.keep_lq.nonzero().flatten() if cfg.use_mle else none
    if cfg.use_mle and cfg.mixup != "none":
        if generator is None:
            raise ValueError(f"mixup={cfg.mixup!r} draws lam: pass a torch.Generator")
        lam = draw_lambda(b, cfg.alpha, generator, cfg.fold_lambda).to(dev)
    clean = mix = None
    if idx_hq.numel():
        # clean_weights applies in every mixup mode (it was dropped under plain mixup whenever the
        # mix term kept a pair; no committed run used that combination).
        clean = task.take(step.y_hq if cfg.clean_weights else task.unit(step.y_hq), idx_hq)
    if idx_lq.numel():
        y_lq, y_hq = step.y_lq, step.y_hq
        if cfg.mixup == "none":
            mix = task.take(task.unit(y_lq), idx_lq)
        else:
            if cfg.mixup == "plain":
                y_lq, y_hq = task.unit(y_lq), task.unit(y_hq)
            mix = task.mix_labels(task.take(y_lq, idx_lq), task.take(y_hq, idx_lq), lam[idx_lq])
    return _Plan(lam, idx_hq, idx_lq, clean, mix)


def _mix_input(cfg: LossConfig, i_f: Tensor, i_hq: Tensor, lam: Tensor, rows: Tensor | None = None) -> Tensor:
    """The images the mix term translates and the gate flow scores: ``I_mix`` of the pairs
    ``rows`` (all when None), or their ``I_F`` with ``mixup="none"``. Gradients reach the gate
    through ``I_F`` in both terms (the paper mixes ``G(I_LQ, I_R)``)."""

    def pick(x: Tensor) -> Tensor:
        return x if rows is None else _take(x, rows)

    if cfg.mixup == "none":
        return pick(i_f)
    return mix_images(pick(i_f), pick(i_hq), lam if rows is None else lam[rows])


def _t_a_once(t_a: Translator, inputs: dict[str, Tensor]) -> dict[str, Tensor]:
    """T_A of each named input, through one call on their concatenation."""
    if not inputs:
        return {}
    sizes = [x.shape[0] for x in inputs.values()]
    batched = t_a(torch.cat(list(inputs.values())) if len(inputs) > 1 else next(iter(inputs.values())))
    return dict(zip(inputs, batched.split(sizes), strict=True))


def _translate_batched(
    t_a: Translator, t_b: Translator, step: _Step, plan: _Plan, cfg: LossConfig
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """One process: (L_cyc or None, the translated images of each supervised term's kept rows).

    Only the kept images are translated, and every T_A input that does not depend on another T
    output goes through ONE call (and T_B's two inputs through one): T_A(I_F), T_A(I_HQ) of the
    kept clean images, T_A(I_mix). The translator works per image, so this is the separate
    calls' result with fewer, larger kernels (3 translator calls a step instead of 5).
    """
    i_f, i_hq, idx_hq, idx_lq = step.i_f, step.i_hq, plan.idx_hq, plan.idx_lq
    direct = None
    inputs: dict[str, Tensor] = {}
    if cfg.use_cycle:
        inputs["f"] = i_f
    if idx_hq.numel():
        inputs["hq"] = _take(i_hq, idx_hq)
    if idx_lq.numel():
        direct = _mix_input(cfg, i_f, i_hq, plan.lam, idx_lq)
        if cfg.mixup != "none" or not cfg.use_cycle:  # else the cycle term's T_A(I_F) serves
            inputs["direct"] = direct
    outs = _t_a_once(t_a, inputs)

    cycle = None
    if cfg.use_cycle:
        b = i_f.shape[0]
        back = t_b(torch.cat([outs["f"], i_hq]))  # T_B(T_A(I_F)) and T_B(I_HQ)
        back_f, b_hq = back[:b], back[b:]
        cycle = _l1_cycle(i_f, back_f, i_hq, t_a(b_hq))

    images: dict[str, Tensor] = {}
    if idx_hq.numel():
        images["clean"] = outs["hq"]
    if idx_lq.numel():
        images["mix"] = outs["direct"] if "direct" in outs else _take(outs["f"], idx_lq)
        if cfg.gate_flow:
            images["gate"] = direct
    return cycle, images


def _translate_sharded(
    t_a: Translator, t_b: Translator, step: _Step, plan: _Plan, cfg: LossConfig, sharding: Sharding
) -> tuple[Tensor | None, dict[str, Tensor]]:
    """One rank (see :class:`Sharding`): (this rank's L_cyc or None, each supervised term's
    translated images of the kept rows of the *global* batch).

    T_A runs on every local image; its outputs are gathered to the global batch, where the kept
    images are selected, so the supervised terms equal the single-process ones. The number and
    order of ``gather`` calls depend on ``cfg`` and the plan's global rows only, identical on
    every rank, so the collectives always match.
    """
    i_f, i_hq, b_g = step.i_f, step.i_hq, plan.lam.shape[0]

    def gathered(x: Tensor) -> Tensor:
        out = sharding.gather(x)
        if out.shape[0] != b_g or out.shape[1:] != x.shape[1:]:
            raise ValueError(
                f"gather turned {tuple(x.shape)} into {tuple(out.shape)}; expected {b_g} rows "
                f"(the global batch of the labels)"
            )
        return out

    cycle = a_f = None
    if cfg.use_cycle:  # a local mean: DDP's averaging over equal shards makes it the global mean
        cycle, a_f = _cycle(i_f, i_hq, t_a, t_b)
    images: dict[str, Tensor] = {}
    if plan.idx_hq.numel():
        images["clean"] = _take(gathered(t_a(i_hq)), plan.idx_hq)
    if plan.idx_lq.numel():
        direct = _mix_input(cfg, i_f, i_hq, plan.lam[sharding.shard])  # this rank's share of lam
        translated = a_f if cfg.mixup == "none" and a_f is not None else t_a(direct)
        images["mix"] = _take(gathered(translated), plan.idx_lq)
        if cfg.gate_flow:
            images["gate"] = _take(gathered(direct), plan.idx_lq)
    return cycle, images


def _vat(
    task: _Task,
    t_a: Translator,
    t_b: Translator,
    step: _Step,
    cfg: LossConfig,
    generator: torch.Generator | None,
    sharding: Sharding | None,
    one_pass: bool,
) -> dict[str, Tensor]:
    """The loss of either task: one :func:`_plan`, the translator calls of one process or of one
    rank, D's loss of each supervised term (clean, mix, gate flow), the weighted sum."""
    if step.i_f.shape != step.i_hq.shape:
        raise ValueError(
            f"I_F {tuple(step.i_f.shape)} and I_HQ {tuple(step.i_hq.shape)} must have the same shape"
        )
    dev = step.i_f.device
    plan = _plan(task, step, cfg, generator)
    if sharding is None:
        cycle, images = _translate_batched(t_a, t_b, step, plan, cfg)
    else:
        cycle, images = _translate_sharded(t_a, t_b, step, plan, cfg, sharding)
    const0 = torch.zeros((), device=dev)
    mle_clean = mle_mix = mle_gate = const0
    if cfg.use_mle:

        def zero() -> Tensor:  # an empty term: 0 on the translator's (and gate's) graph
            return _graph_zero(t_a, step.i_f).to(dev)

        labels = {"clean": plan.clean, "mix": plan.mix, "gate": plan.mix}
        calls = {name: (x, labels[name]) for name, x in images.items()}
        mle_clean, mle_mix, mle_gate = _mle_terms(_task_losses(task, calls, one_pass), cfg, zero)
    return _result(cfg, const0 if cycle is None else cycle, mle_clean, mle_mix, mle_gate, plan.lam)


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


def _mle_terms(got: dict[str, Tensor], cfg: LossConfig, zero: Callable[[], Tensor]) -> tuple[Tensor, ...]:
    """(clean, mix, gate) from the computed terms; a term without kept images is ``zero()``
    (the gate term only with ``gate_flow``, else a constant 0). When no image is left, a term is
    thus 0 still attached to the translator's graph (zero gradients), so ``backward()`` and DDP
    work."""
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


# -- the public losses ------------------------------------------------------------------------


def _check_frozen(model: Any, what: str) -> None:
    params = getattr(model, "parameters", None)
    if callable(params) and any(p.requires_grad for p in params()):
        raise ValueError(f"the {what} must be frozen: some of its parameters require a gradient")


def _mask(given: Tensor | None, derived: Tensor, batch: int, name: str, device: torch.device) -> Tensor:
    mask = derived if given is None else torch.as_tensor(given)
    if mask.shape != (batch,):
        raise ValueError(f"{name} must be ({batch},), got shape {tuple(mask.shape)}")
    return mask.to(device=device, dtype=torch.bool)


def _label_batch(i_f: Tensor, n_labels: int, sharding: Sharding | None) -> int:
    """The batch size the labels and masks must have: B (single process) or B_g (distributed),
    ``sharding.shard`` being this rank's ``B_l`` rows of it."""
    b = i_f.shape[0]
    if sharding is None:
        return b
    shard = sharding.shard
    start, stop = shard.start or 0, shard.stop
    if stop is None or not (0 <= start <= stop <= n_labels) or stop - start != b:
        raise ValueError(
            f"shard {shard!r} is not {b} rows of a global batch of {n_labels} "
            f"(the local images) within the labels"
        )
    return n_labels


def vat_loss(
    t_a: Translator,
    t_b: Translator,
    pairs: DetectionPairs,
    detector: Detector,
    cfg: LossConfig,
    generator: torch.Generator | None,
    *,
    sharding: Sharding | None = None,
    one_pass: bool = False,
) -> dict[str, Tensor]:
    """The VaT loss for detection, ``L = cycle_weight * L_cyc + mle_weight * L_mle``.

    ``pairs``: the step's images and pseudo-boxes (:class:`DetectionPairs`). ``detector``:
    anything with ``.loss(images, targets) -> (total, parts)`` whose parameters are frozen
    (:class:`vat.models.detectors.FrozenDetector`). ``generator``: the only source of randomness
    (lam); may be None with ``mixup="none"``.

    Returns ``total`` (backpropagate this), the unweighted terms ``cycle``, ``mle`` =
    ``mle_clean + mle_mix + mle_gate`` (``mle_gate`` is 0 unless ``gate_flow``), and ``lam``
    (B,), the weight of I_F in each pair's mix (1 when no lam was drawn).

    ``sharding``: distributed training, one process per shard of a global batch of ``B_g``
    pairs (:class:`Sharding`). ``cycle`` is then this rank's mean, ``mle`` the global batch's
    (the same on every rank), ``lam`` is (B_g,); backpropagating ``total`` on every rank under
    DDP gives the gradient of one process on the global batch.

    ``one_pass``: the supervised terms' D losses (clean, mix, gate flow) run as ONE forward
    of D over their images (``detector.losses``), each term still assigned and normalised on
    its own: the same values up to float rounding, fewer and larger kernels (a speed option).
    """
    _check_frozen(detector, "detector")
    i_f, lq, hq = pairs.i_f, pairs.targets_lq, pairs.targets_hq
    b = _label_batch(i_f, len(lq), sharding)
    if len(lq) != b or len(hq) != b:
        raise ValueError(f"{len(lq)} degraded and {len(hq)} clean targets for {b} image pairs")
    keep_lq = _mask(pairs.has_boxes_lq, has_boxes(lq), b, "has_boxes_lq", i_f.device)
    keep_hq = _mask(pairs.has_boxes_hq, has_boxes(hq), b, "has_boxes_hq", i_f.device)
    step = _Step(i_f, pairs.i_hq, lq, hq, keep_lq, keep_hq)
    return _vat(_Detection(detector), t_a, t_b, step, cfg, generator, sharding, one_pass)


def vat_loss_classify(
    t_a: Translator,
    t_b: Translator,
    pairs: ClassificationPairs,
    classifier: Classifier,
    cfg: LossConfig,
    generator: torch.Generator | None,
    *,
    sharding: Sharding | None = None,
    one_pass: bool = False,
) -> dict[str, Tensor]:
    """The VaT loss for classification (the paper's CLIP task); same terms as :func:`vat_loss`.

    ``pairs``: the step's images and soft pseudo-labels (:class:`ClassificationPairs`).
    ``classifier``: anything with ``.loss(images, soft_labels, weights)``, frozen
    (:class:`vat.models.classifier.FrozenClassifier`; a mean cross-entropy over the samples of
    non-zero weight). Soft-label mixup: see :func:`vat.train.mixing.mix_soft_labels`.
    ``sharding`` / ``one_pass``: as in :func:`vat_loss`.
    """
    _check_frozen(classifier, "classifier")
    i_f, labels_lq, labels_hq = pairs.i_f, pairs.labels_lq, pairs.labels_hq
    b = _label_batch(i_f, labels_lq.shape[0] if labels_lq.ndim else 0, sharding)
    for name, y in (("labels_lq", labels_lq), ("labels_hq", labels_hq)):
        if y.ndim != 2 or y.shape[0] != b:
            raise ValueError(f"{name} must be ({b}, K), got shape {tuple(y.shape)}")
    w_lq, w_hq = pairs.weights_lq, pairs.weights_hq
    w_lq = torch.ones(b, device=labels_lq.device) if w_lq is None else w_lq.detach().float()
    w_hq = torch.ones(b, device=labels_hq.device) if w_hq is None else w_hq.detach().float()
    for name, w in (("weights_lq", w_lq), ("weights_hq", w_hq)):
        if w.shape != (b,):
            raise ValueError(f"{name} must be ({b},), got shape {tuple(w.shape)}")
        if not bool(((w >= 0) & (w <= 1)).all()):
            raise ValueError(f"{name} must lie in [0, 1]")
    keep_lq, keep_hq = (w_lq > 0).to(i_f.device), (w_hq > 0).to(i_f.device)
    step = _Step(i_f, pairs.i_hq, (labels_lq, w_lq), (labels_hq, w_hq), keep_lq, keep_hq)
    return _vat(_Classification(classifier), t_a, t_b, step, cfg, generator, sharding, one_pass)
