"""One training step's forward as a module (what DDP wraps): fuse, translate, the VaT loss.

The speed options (:class:`vat.train.speed.Speed`) that concern D are applied here, once,
to the frozen D (BatchNorm folding, compilation) and around each call (checkpointing); the
translator's own (channels_last, compile) by :meth:`Speed.prepare_translator`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from vat.seeding import item_seed
from vat.train.speed import PLAIN, Speed


class TrainGraph(nn.Module):
    """One training step's forward: fuse, translate, and the VaT loss (what DDP wraps).

    ``forward(lq, restored, hq, targets_lq, targets_hq, generator)`` takes float images in
    [0, 1] (this rank's slice in distributed runs, with the targets of the global batch)
    and returns the loss dict of :func:`vat.train.losses.vat_loss` (or, when D is a
    classifier and the targets carry soft labels, ``probs`` and ``weight``, of
    :func:`vat.train.losses.vat_loss_classify`). D is held outside the module tree, so DDP
    and ``state_dict`` see the translator only.

    ``speed`` (resolved, :class:`~vat.train.speed.Speed`), what each option does here:
    ``bf16``: the step under bfloat16 autocast. ``checkpoint_detector``: D's forward inside
    the loss keeps only its input and is run again in backward (one more D forward per step;
    D's activations are the largest part of a step's memory once the translator's blocks are
    checkpointed). ``one_detector_pass``: the loss terms' D calls (clean, mix, gate flow) run
    as one forward over their images, each term still scored on its own (fewer, larger
    kernels). ``fold_batchnorm``: a detector's BatchNorms are folded into its convolutions
    (:meth:`FrozenDetector.fold_batchnorm`; in place, so D's predictions elsewhere in the run
    use the folded D too; one kernel and one saved tensor less per layer).
    ``compile_detector``: D's layers are compiled (:meth:`FrozenDetector.compile_layers`,
    after folding; in place too). Classifiers are left as they are. Each changes results by
    float rounding at most. ``chunk_translator`` (default: when the translator's blocks are
    checkpointed): the loss's batched translator calls (T_A on I_F, I_HQ and I_mix together)
    run per chunk of the step's batch size, so the backward recomputes one chunk's block at a
    time (the translator works per image: the same results up to float rounding).
    """

    def __init__(
        self,
        model: nn.Module,
        detector,
        loss_cfg,
        speed: Speed = PLAIN,
        gather: Callable[[Tensor], Tensor] | None = None,
        shard: slice | None = None,
        chunk_translator: bool | None = None,
    ) -> None:
        from vat.models.classifier import FrozenClassifier

        super().__init__()
        if None in speed.to_dict().values():
            raise ValueError(f"TrainGraph needs a resolved Speed (Speed.resolve(device)), got {speed}")
        self.model = model
        self._detector = (detector,)
        self.classify = isinstance(detector, FrozenClassifier)  # targets carry soft labels, not boxes
        self.loss_cfg = loss_cfg
        self.gather = gather
        self.shard = shard
        self.autocast = torch.bfloat16 if speed.bf16 else None
        self.checkpoint_detector = speed.checkpoint_detector  # D's forward recomputed in backward
        self.one_detector_pass = speed.one_detector_pass  # the loss terms share one D forward
        self.chunk_translator = chunk_translator
        if speed.fold_batchnorm and hasattr(detector, "fold_batchnorm"):  # a detector's, in place
            detector.fold_batchnorm()
        if speed.compile_detector and hasattr(detector, "compile_layers"):  # after folding, in place
            detector.compile_layers()

    def forward(self, lq, restored, hq, targets_lq, targets_hq, generator):
        device_type = lq.device.type
        det = self._detector[0]
        # a classifier resizes inside its own (differentiable) forward; detection crops come at
        # D's scale already (load_training_data), so D must not resize them
        changes = {"checkpoint": self.checkpoint_detector} | ({} if self.classify else {"resize": False})
        before = {k: getattr(det, k) for k in changes}
        for k, v in changes.items():
            setattr(det, k, v)
        try:
            return self._loss(lq, restored, hq, targets_lq, targets_hq, generator, device_type)
        finally:
            for k, v in before.items():
                setattr(det, k, v)

    def _loss(self, lq, restored, hq, targets_lq, targets_hq, generator, device_type):
        from vat.train.loss_inputs import ClassificationPairs, DetectionPairs, Sharding
        from vat.train.losses import vat_loss, vat_loss_classify

        with torch.autocast(
            device_type, dtype=self.autocast or torch.bfloat16, enabled=self.autocast is not None
        ):
            fused, _ = self.model.fuse(lq, restored)
            sharding = None if self.gather is None else Sharding(self.gather, self.shard)
            kwargs = {"sharding": sharding, "one_pass": self.one_detector_pass}
            t_a, t_b = self.model.t_a, self.model.t_b
            chunk = self.chunk_translator
            if chunk is None:
                chunk = bool(self.model.config.checkpoint)
            if chunk:  # checkpointed blocks: the backward's recomputation holds one chunk at a time
                t_a = _InChunks(t_a, lq.shape[0])
                t_b = None if t_b is None else _InChunks(t_b, lq.shape[0])
            t_b = _no_t_b if t_b is None else t_b
            det = self._detector[0]
            if self.classify:  # targets of load_classification_data: soft labels and their weights
                y_lq, w_lq = (torch.stack([t[k] for t in targets_lq]) for k in ("probs", "weight"))
                y_hq, w_hq = (torch.stack([t[k] for t in targets_hq]) for k in ("probs", "weight"))
                pairs = ClassificationPairs(fused, hq, y_lq, y_hq, w_lq, w_hq)
                return vat_loss_classify(t_a, t_b, pairs, det, self.loss_cfg, generator, **kwargs)
            pairs = DetectionPairs(fused, hq, targets_lq, targets_hq)
            return vat_loss(t_a, t_b, pairs, det, self.loss_cfg, generator, **kwargs)


class _InChunks:
    """A per-image module applied to at most ``n`` images a call; ``parameters()`` are the
    module's (the loss attaches its empty terms to them)."""

    def __init__(self, module: nn.Module, n: int) -> None:
        self.module, self.n = module, n

    def parameters(self):
        return self.module.parameters()

    def __call__(self, x: Tensor) -> Tensor:
        if x.shape[0] <= self.n:
            return self.module(x)
        return torch.cat([self.module(c) for c in x.split(self.n)])


def _no_t_b(x: Tensor) -> Tensor:
    raise RuntimeError("T_B was not built (use_cycle is off), yet the loss called it")


def to_float(images: Tensor, device: torch.device, channels_last: bool = False) -> Tensor:
    x = images.to(device, non_blocking=True).float().div_(255)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def targets_to(targets: Sequence[dict[str, Tensor]], device: torch.device) -> list[dict[str, Tensor]]:
    return [{k: v.to(device) for k, v in t.items()} for t in targets]


def lambda_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """The generator of lam at ``step``: seeded per step, on the device the loss runs on."""
    return torch.Generator(device=device).manual_seed(item_seed(seed, "train-lam", step))
