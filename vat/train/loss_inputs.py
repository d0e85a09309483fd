"""What the VaT loss takes: its settings (:class:`LossConfig`), a step's image pairs and their
labels (:class:`DetectionPairs`, :class:`ClassificationPairs`), and the distributed contract
(:class:`Sharding`). The loss itself is :mod:`vat.train.losses`."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from torch import Tensor

from vat.errors import ParamsError
from vat.train.mixing import TargetList

MIXUP_MODES = ("none", "plain", "uncertainty")

Translator = Callable[[Tensor], Tensor]


class Detector(Protocol):
    def loss(self, images: Tensor, targets: Any) -> tuple[Tensor, Tensor]: ...


class Classifier(Protocol):
    def loss(self, images: Tensor, soft_labels: Tensor, weights: Tensor | None = None) -> Tensor: ...


@dataclass(frozen=True)
class LossConfig:
    """Weights and switches of the VaT loss; the defaults follow the paper's formulation.

    - ``mixup``: only ``"uncertainty"`` (Eq. 7) uses the confidence weights in the mix term;
      ``"plain"`` (Table 4's "Mixup" row, Zhang et al. ICLR 2018) weighs kept boxes ``lam`` /
      ``1 - lam`` only; ``"none"`` (Table 4's rows without mixup) replaces the mix term by
      ``L_h(T_A(I_F), Y_LQ)`` with unit weights, draws no ``lam`` (the generator is not
      touched, the returned ``lam`` is 1) and reuses the ``T_A(I_F)`` of the cycle term. In
      every mode a box of weight 0 stays removed.
    - ``clean_weights``: the clean term uses Y_HQ with unit weights, as Eq. 8 writes it;
      ``True`` also applies U_HQ there.
    - ``cycle_weight`` / ``mle_weight`` balance the terms' scales (see :class:`_Detection`,
      :class:`_Classification` for D's).

    Options from the authors' later code release (SPEC, "Details the paper leaves open"), off
    by default:

    - ``fold_lambda``: ``lam = max(lam, 1 - lam)`` for the fused image, so the clean image never
      weighs more than 0.5.
    - ``gate_flow``: a third supervised flow, ``L_h(I_mix, Y_mix)`` with the mix of the fused
      image and the clean image fed straight into D (no T_A), which trains the gate. It uses
      the same ``lam``, pairs and dropping rule as the mix term (with ``mixup="none"``:
      ``L_h(I_F, Y_LQ)``) and is added to L_mle as ``mle_gate``.

    Table 4's ablations: ``use_cycle=False`` ("w/o L_cyc": T_B is never called, the cycle term
    is a constant 0 outside the graph), ``use_mle=False`` ("w/o L_mle": L_mle is a constant 0
    and D is never called), ``mixup`` none / plain / uncertainty (the last two rows).
    """

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


@dataclass(frozen=True)
class DetectionPairs:
    """One step's image pairs and pseudo-boxes, for :func:`vat_loss`.

    ``i_f`` (B, 3, H, W): fused degraded images (with the gate's graph); ``i_hq``: as many clean
    images, same size (the pairs are mixed). ``targets_lq`` / ``targets_hq``: one dict per
    image (``boxes``, ``classes``, ``weights``: see :func:`vat.train.mixing.mix`), the kept
    pseudo-boxes. ``has_boxes_lq`` / ``has_boxes_hq`` (B,) bool override which images count
    as having a pseudo-box (default :func:`vat.train.mixing.has_boxes`). Distributed (see
    :class:`Sharding`): the images are this rank's, the targets and masks the global batch's.
    """

    i_f: Tensor
    i_hq: Tensor
    targets_lq: TargetList
    targets_hq: TargetList
    has_boxes_lq: Tensor | None = None
    has_boxes_hq: Tensor | None = None


@dataclass(frozen=True)
class ClassificationPairs:
    """One step's image pairs and soft pseudo-labels, for :func:`vat_loss_classify`.

    ``i_f`` / ``i_hq`` as in :class:`DetectionPairs`. ``labels_*`` (B, K): soft pseudo-labels
    (rows summing to 1); ``weights_*`` (B,): their confidence weights (absent = 1; 0 = the
    label was filtered: the image then counts in L_cyc only). Distributed: the images are this
    rank's, the labels and weights the global batch's.
    """

    i_f: Tensor
    i_hq: Tensor
    labels_lq: Tensor
    labels_hq: Tensor
    weights_lq: Tensor | None = None
    weights_hq: Tensor | None = None


@dataclass(frozen=True)
class Sharding:
    """This rank's part in a distributed (DDP) step: ``gather``
    (:func:`vat.train.distributed.all_gather_cat`) and ``shard``
    (:func:`vat.train.distributed.shard`, this rank's contiguous rows of the global batch).

    D's detection loss of a batch is not the mean of per-shard losses (ultralytics normalises
    by the batch's target-score sum and scales by the batch size), so averaging per-rank
    losses would train on something else than the single-process loss. With a sharding the
    loss is exact instead. The contract, for a global batch of ``B_g = W * B_l`` pairs split
    into ``W`` equal contiguous shards:

    - ``i_f`` / ``i_hq`` are this rank's ``B_l`` images; the labels (targets, soft labels and
      their weights) and the keep masks are the *global* batch's, identical on every rank.
    - ``generator`` is seeded identically on every rank; ``lam`` is drawn for all ``B_g``
      pairs, so every rank sees the same draws and mixes its images with ``lam[shard]``; the
      returned ``lam`` is the global (B_g,) tensor.
    - L_cyc stays this rank's mean; DDP's gradient averaging over equal shards makes it the
      global mean.
    - Each supervised term (clean, mix, gate flow) runs T_A on *all* local images (no
      selection before T_A), gathers the result (the gate flow: the mixed images) to the
      global batch, selects the kept images there and calls D's loss on that global tensor.
      Every rank thus computes the same global L_mle; the gather's backward gives each rank's
      slice its gradient summed over the ranks (``W`` times), which DDP's averaging divides
      back, so the averaged gradient is the single-process gradient of ``cycle_weight * L_cyc
      + mle_weight * L_mle`` on the global batch. The value to log is the mean over ranks of
      ``total``.
    - ``gather`` is called the same number of times, in the same order, on every rank (it
      depends on ``cfg`` and the global masks only), so the collectives always match; a rank
      none of whose images is kept still gathers. A term with no kept image in the whole
      global batch gathers nothing on any rank.
    - Cost: D runs on the global batch's kept images on every rank (``W`` times the
      single-process work of D, and its activations for ``B_g`` images), and each term sends
      ``B_g`` images over the network and their gradients back.
    - The loss must run inside the DDP-wrapped module's ``forward`` (DDP only synchronises
      gradients of a backward that follows its own forward).
    """

    gather: Callable[[Tensor], Tensor]
    shard: slice

    def __post_init__(self) -> None:
        if self.gather is None or self.shard is None:
            raise ValueError("gather and shard go together: pass both (distributed) or neither")
        if not isinstance(self.shard, slice) or self.shard.step not in (None, 1):
            raise ValueError(f"shard must be a contiguous slice, got {self.shard!r}")


# -- the cycle term ---------------------------------------------------------------------------
