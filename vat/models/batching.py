"""Running a frozen model once over the images of several calls (``losses`` of D)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor


def split_batch(out: Any, sizes: list[int]) -> list[Any]:
    """A (nested dict / list / tuple of) batch-first tensor(s) -> one such structure per share
    of ``sizes`` (views, in order)."""
    if len(sizes) == 1:
        return [out]
    if torch.is_tensor(out):
        return list(out.split(sizes))
    if isinstance(out, dict):
        parts = {k: split_batch(v, sizes) for k, v in out.items()}
        return [{k: v[i] for k, v in parts.items()} for i in range(len(sizes))]
    if isinstance(out, (list, tuple)):
        parts = [split_batch(v, sizes) for v in out]
        return [type(out)(p[i] for p in parts) for i in range(len(sizes))]
    raise TypeError(f"cannot split {type(out).__name__} outputs by batch")


def forward_together(forward: Callable[[Tensor], Any], inputs: Sequence[Tensor]) -> list[Any]:
    """``forward(x)`` for each of ``inputs``, with one call per input size: inputs of the same
    (C, H, W) are concatenated, run at once and their outputs split back (for a model that
    treats every image on its own, e.g. frozen in eval mode: the same up to float rounding)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, x in enumerate(inputs):
        groups.setdefault(tuple(x.shape[1:]), []).append(i)
    out: list[Any] = [None] * len(inputs)
    for idx in groups.values():
        xs = [inputs[i] for i in idx]
        y = forward(torch.cat(xs) if len(xs) > 1 else xs[0])
        for i, part in zip(idx, split_batch(y, [x.shape[0] for x in xs]), strict=True):
            out[i] = part
    return out
