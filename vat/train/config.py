"""The ``train`` and ``unpaired`` params sections, and the ablation rows written over ``train``.

These dataclasses are the params (``vat.config.load_section`` builds them from
``params.yaml``, strictly) and the training loop's configuration at once; the loss's own
settings (:class:`vat.train.losses.LossConfig`) are taken from ``TrainParams`` by field name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from vat.config import from_dict
from vat.errors import ParamsError


@dataclass(frozen=True)
class TrainParams:
    """``train``: the translator, its loss (Table 4 switches) and the optimisation."""

    translator: str  # a name in vat/models/translator.py TRANSLATORS: vat-w4 ... vat-w48, vat-release(-w48)
    identity_init: bool  # T_A and T_B start as the identity (zeroed output conv); false: PyTorch's init
    gate_init: (
        float  # identity_init: G's starting w everywhere, in (0, 1) (0.018: VaT starts as the restorer)
    )
    gate_lr: float  # G's learning rate as a multiple of lr (1: the same; G must move within a short run)
    epochs: int  # passes over the degraded training images
    batch: int  # (degraded, clean) pairs per step, the global batch under torchrun
    crop: int | None  # random square crop side, px (padded where an image is smaller); null: whole images
    lr: float  # AdamW
    weight_decay: float  # AdamW (betas 0.9, 0.999)
    schedule: Literal["constant", "cosine", "cosine_restarts"]  # lr schedule over steps
    restart_steps: int  # cosine_restarts: first period in steps (doubles each restart)
    min_lr: float  # floor of the cosine schedules
    cycle_weight: float  # weight of L_cyc
    mle_weight: float  # weight of L_mle
    use_cycle: bool  # Table 4 "w/o L_cyc" when false
    use_mle: bool  # Table 4 "w/o L_mle" when false
    use_gate: bool  # Table 4 "w/o gated fusion" when false (I_F = I_R)
    mixup: Literal["none", "plain", "uncertainty"]  # Table 4 rows; uncertainty = Eq. 7
    alpha: float  # lam ~ Beta(alpha, alpha)
    fold_lambda: bool  # released code: lam = max(lam, 1 - lam)
    gate_flow: bool  # released code: also L_h(I_mix) straight into D
    clean_weights: bool  # weight the clean term's boxes by their uncertainty too
    labels: Literal["cached", "online"]  # online: D also labels T_A's output each step (vat/labels/online.py)
    select: Literal[
        "val", "last", "auto"
    ]  # best val mAP@0.5 (val labels only), the last epoch, auto: val if any
    val_every: int  # epochs between validations
    checkpoint_every: int  # steps between resume checkpoints (also at every epoch end)
    log_every: int  # steps between logged loss points

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch, self.val_every, self.checkpoint_every, self.log_every) < 1:
            raise ValueError("train: epochs, batch, val_every, checkpoint_every, log_every must be >= 1")
        if self.crop is not None and self.crop < 8:
            raise ValueError("train.crop must be >= 8 px or null")
        if not 0 < self.gate_init < 1 or self.gate_lr <= 0:
            raise ValueError("train: need 0 < gate_init < 1 and gate_lr > 0")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr or self.restart_steps < 1:
            raise ValueError("train: need lr > 0, 0 <= min_lr <= lr, restart_steps >= 1")

    def loss_config(self):
        """The loss's settings: the fields of :class:`~vat.train.losses.LossConfig`, by name."""
        from vat.train.loss_inputs import LossConfig

        return LossConfig(**{f.name: getattr(self, f.name) for f in fields(LossConfig)})


@dataclass(frozen=True)
class UnpairedParams:
    """``unpaired``: the CycleGAN-style baseline's own settings (the rest is ``train``'s)."""

    epochs: int | None  # null: train.epochs (the same number of steps as VaT)
    lr: float  # Adam for translator and critics, betas (0.5, 0.999) (CycleGAN: 2e-4)
    critic_width: int  # PatchGAN critic base width (CycleGAN: 64)
    critic_layers: int  # stride-2 stages of the critic (CycleGAN's 70x70: 3)
    cycle_weight: float  # CycleGAN's lambda: 10
    adv_weight: float  # least-squares GAN term
    identity_weight: float  # |T_A(I_HQ) - I_HQ| + |T_B(I_F) - I_F| (CycleGAN: 0 or 0.5 lambda)
    pool: int  # fakes remembered for the critics (CycleGAN: 50; 0: none)

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("unpaired.epochs must be >= 1 or null")
        if self.lr <= 0 or self.critic_width < 1 or self.critic_layers < 1 or self.pool < 0:
            raise ValueError("unpaired: need lr > 0, critic_width >= 1, critic_layers >= 1, pool >= 0")
        if min(self.cycle_weight, self.adv_weight, self.identity_weight) < 0:
            raise ValueError("unpaired: loss weights must be >= 0")


def ablation_row(rows: Any, row: str, base: Any, where: str) -> tuple[TrainParams, dict]:
    """The ``train`` params of ablation ``row``: ``base`` (a train section, a mapping) with
    ``rows[row]`` (the params ``ablate``) written over it; and that row's changes.
    ``where`` (the params file) starts every error message."""
    if not isinstance(rows, dict):
        raise ParamsError(f"{where}: missing section 'ablate' (a mapping of row name -> train changes)")
    if row not in rows:
        raise ParamsError(f"{where}: ablate.{row}: no such row (rows: {', '.join(rows) or 'none'})")
    changes = rows[row] or {}
    if not isinstance(changes, dict):
        raise ParamsError(f"{where}: ablate.{row}: expected a mapping of train params, got {changes!r}")
    if not isinstance(base, dict):
        raise ParamsError(f"{where}: missing section 'train'")
    unknown = sorted(set(changes) - set(base))
    if unknown:
        raise ParamsError(f"{where}: ablate.{row}.{unknown[0]}: not a train param (known: {', '.join(base)})")
    return from_dict(TrainParams, base | changes, f"{where}: ablate.{row} over train"), dict(changes)
