"""Restorer weights: our ``{"arch", "config", "state_dict"}`` files and foreign checkpoints.

The filter accepts plain state_dicts and their wrappers (:func:`vat.models.checkpoints.state_dict_of`),
AOD-Net ``convN`` names, SCI's duplicated ``blocks.N`` keys (the original appends one module
object to a ModuleList, so ``state_dict()`` stores it twice) and training-only ``calibrate.*``
keys, and our own files written by :func:`save_checkpoint`; a checkpoint that does not fit
says which keys and shapes differ, and which registered network it looks like.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vat.errors import DataError
from vat.io import save_torch
from vat.models.checkpoints import PREFIXES, state_dict_of
from vat.models.restorers.base import CheckpointMismatch


def remap_for(model: nn.Module) -> Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]:
    fn = getattr(type(model), "remap_state_dict", None)
    return fn if fn is not None else (lambda s: s)


def filter_state_dict(
    obj: Any,
    arch: str,
    path: str | Path,
    remap: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Checkpoint object -> (state_dict with our key names, saved config or {}).

    ``remap`` defaults to the registered class's ``remap_state_dict`` for ``arch``.
    """
    config: dict[str, Any] = {}
    if isinstance(obj, Mapping) and "arch" in obj and "state_dict" in obj:
        if obj["arch"] != arch:
            raise DataError(f"{path}: checkpoint is for architecture {obj['arch']!r}, not {arch!r}")
        config = dict(obj.get("config") or {})
        obj = obj["state_dict"]
    state = state_dict_of(obj, path)
    for prefix in PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix) :]: v for k, v in state.items()}
    if remap is None:
        from vat.models.restorers import RESTORERS

        remap = RESTORERS[arch].remap_state_dict if arch in RESTORERS else (lambda s: s)
    try:
        state = remap(state)
    except CheckpointMismatch as e:
        raise DataError(f"{path}: does not fit architecture {arch!r}: {e}") from e
    return state, config


def load_state(model: nn.Module, state: dict[str, torch.Tensor], arch: str, path: Path) -> None:
    expected = model.state_dict()
    state = dict(state)
    for k, v in expected.items():
        # Old checkpoints predate BatchNorm's counter; it does not affect eval outputs.
        if k.endswith("num_batches_tracked") and k not in state:
            state[k] = v
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape", shapes)):
            if items:
                more = f" ({len(items)} in all)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise DataError(
            f"{path}: does not fit architecture {arch!r}{_guess_arch(state, arch)}; " + "; ".join(parts)
        )
    model.load_state_dict(state, strict=True)


def _guess_arch(state: dict[str, torch.Tensor], arch: str) -> str:
    """' (it looks like a <name> checkpoint)' when the keys fit another registered net."""
    from vat.models.restorers import RESTORERS

    for name, ctor in RESTORERS.items():
        if name == arch:
            continue
        try:
            expected = ctor().state_dict()
            keys = set(ctor.remap_state_dict(dict(state)))
        except Exception:  # a guess only; never hide the real error
            continue
        if expected and {k for k in expected if not k.endswith("num_batches_tracked")} <= keys <= set(
            expected
        ):
            return f" (it looks like a {name!r} checkpoint)"
    return ""


def _check_plain(value: Any, where: str) -> None:
    """Config values must load under weights_only=True: plain Python scalars and containers."""
    if value is None or isinstance(value, bool | int | float | str):
        return
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"config key {where}.{k!r} must be a string")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"config value {where} has type {type(value).__name__}; use plain Python values")


def save_checkpoint(model: nn.Module, arch: str, config: Mapping[str, Any], path: str | Path) -> Path:
    """Write ``{"arch", "config", "state_dict"}`` atomically; :func:`load_restorer` reads it."""
    from vat.models.restorers import _constructor

    _constructor(arch)
    config = dict(config)
    _check_plain(config, "config")
    # plain layout whatever the model's (a CPU model is channels_last: base.cpu_layout)
    plain = torch.contiguous_format
    state = {k: v.detach().cpu().clone(memory_format=plain) for k, v in model.state_dict().items()}
    path = Path(path)
    save_torch({"arch": arch, "config": config, "state_dict": state}, path)
    return path
