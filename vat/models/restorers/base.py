"""The restorer contract: :class:`Restorer` and :func:`freeze`."""

from __future__ import annotations

import torch
from torch import nn


class Restorer(nn.Module):
    """A restorer R: (B, 3, H, W) in [0, 1] -> (B, 3, H, W) in [0, 1].

    ``receptive_radius`` is how far (pixels) an output pixel can see; ``None`` means not
    local (DCP), which :func:`restore_tiled` uses to pick its blending margin.
    """

    receptive_radius: int | None = 0

    def __init__(self) -> None:
        super().__init__()
        self.frozen = False

    def train(self, mode: bool = True) -> Restorer:
        # A frozen R must not switch BatchNorm to batch statistics when a parent module
        # is put in train mode (the mistake SPEC.md lists for the authors' detector).
        return super().train(mode and not self.frozen)

    @staticmethod
    def remap_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Rename keys of foreign checkpoints to this module's names (default: none)."""
        return state


def cpu_layout(model: nn.Module) -> nn.Module:
    """channels_last weights where every parameter is on a CPU: oneDNN's fast path for these
    few-channel convolutions (AOD-Net: a training step 2.5x, inference 2x faster than NCHW)."""
    params = list(model.parameters())
    if params and all(p.device.type == "cpu" for p in params):
        model.to(memory_format=torch.channels_last)
    return model


def freeze(model: nn.Module) -> nn.Module:
    """Eval mode, no gradients, and (for :class:`Restorer`) stay in eval mode; on a CPU, the
    convolutions' channels_last layout (AOD-Net's inference 2x faster, same values to rounding)."""
    model.requires_grad_(False)
    cpu_layout(model)
    if isinstance(model, Restorer):
        model.frozen = True
    return model.eval()


class CheckpointMismatch(Exception):
    """Internal: a checkpoint that does not fit; turned into DataError naming the file."""
