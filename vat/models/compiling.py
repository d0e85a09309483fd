"""``torch.compile`` with static shapes and room for the variants a training step makes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch


def compile_static(fn: Callable, **kwargs: Any) -> Callable:
    """``torch.compile(fn, dynamic=False, **kwargs)``, with dynamo's recompile limit raised to
    128: one graph per input shape (dynamic shapes hit inductor bugs here), and a step calls
    the same module at a few dozen shapes (widths, resolutions, batch sizes of the terms)."""
    from torch._dynamo import config

    for name in ("recompile_limit", "cache_size_limit"):
        if hasattr(config, name):
            setattr(config, name, max(getattr(config, name), 128))
    kwargs.setdefault("dynamic", False)
    return torch.compile(fn, **kwargs)
