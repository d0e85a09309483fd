"""Reading checkpoints safely: ``torch.load(weights_only=True)`` only, every failure one line.

A file that needs arbitrary unpickling is refused with a :class:`~vat.errors.DataError`
naming the file and the object it stores, never loaded. :func:`state_dict_of` finds the
tensors inside the usual wrappers (``{"state_dict" | "model" | "net": ...}``, DataParallel's
``module.`` and torch.compile's ``_orig_mod.`` prefixes).
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vat.errors import DataError

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params")
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure as a DataError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        if m:
            raise DataError(
                f"{path}: checkpoint stores the Python object {m.group(1)}, which only an unsafe "
                "load (weights_only=False, arbitrary code execution) could rebuild; we refuse. "
                "Re-save it as a plain state_dict: torch.save(model.state_dict(), path)"
            ) from e
        tail = msg.split("WeightsUnpickler error:", 1)[-1]
        why = next((line.strip() for line in tail.splitlines() if line.strip()), "no detail")
        raise DataError(f"{path}: not a readable torch checkpoint (corrupt or not torch.save: {why})") from e
    except Exception as e:  # torch raises RuntimeError/EOFError/OSError/... here
        detail = str(e).splitlines()[0] if str(e) else "no detail"
        raise DataError(
            f"{path}: not a readable torch checkpoint (empty, truncated or corrupt: "
            f"{type(e).__name__}: {detail})"
        ) from e


def state_dict_of(obj: Any, path: str | Path) -> dict[str, torch.Tensor]:
    for _ in range(4):  # wrappers nest at most a few levels ({"model": {"state_dict": ...}})
        if not isinstance(obj, Mapping):
            break
        tensors = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
        if tensors and len(tensors) == len(obj):
            return tensors
        inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
        if inner is None:
            if tensors:  # a state_dict with a few extra entries (epoch, ...): keep the tensors
                return tensors
            break
        obj = inner
    what = f"keys {sorted(map(str, obj))[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
    raise DataError(f"{path}: no state_dict of tensors found ({what})")
