"""Reading checkpoints safely: ``torch.load(weights_only=True)`` only, every failure one line.

A file that needs arbitrary unpickling is refused with a :class:`~vat.errors.DataError`
naming the file and the object it stores, never loaded. :func:`state_dict_of` finds the
tensors inside the usual wrappers (``{"state_dict" | "model" | "net": ...}``, DataParallel's
``module.`` and torch.compile's ``_orig_mod.`` prefixes).
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from vat.errors import DataError

_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "params")
PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile
# The lines of torch's weights_only error that say nothing about the file.
_TORCH_BOILERPLATE = ("Weights only load failed", "Please file an issue", "Check the documentation")


class PickledObject(DataError):
    """The checkpoint pickles a Python object (a class, a function) that weights_only refuses;
    readers of formats that pickle their models (ultralytics, YOLOv5) go on with their own
    restricted unpickler."""


def read_checkpoint(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure as a one-line DataError naming the
    file (:class:`PickledObject` when it pickles an object weights_only refuses)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: checkpoint file not found")
    try:
        with warnings.catch_warnings():  # torch warns of pickle protocols it may not read: we say so
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        m = re.search(r"Unsupported global: GLOBAL (\S+)", msg)
        blocked = re.search(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked", msg)
        if blocked:  # a module torch never unpickles from a checkpoint (os, posix, subprocess, ...)
            raise PickledObject(
                f"{path}: checkpoint pickles a call to {blocked.group(1)} (module {blocked.group(2)}), "
                "which loading would run as code; refused"
            ) from e
        if m:
            raise PickledObject(
                f"{path}: checkpoint stores the Python object {m.group(1)}, which only an unsafe "
                "load (weights_only=False, arbitrary code execution) could rebuild; we refuse. "
                "Re-save it as a plain state_dict: torch.save(model.state_dict(), path)"
            ) from e
        tail = msg.split("WeightsUnpickler error:", 1)[-1]
        lines = [line.strip() for line in tail.splitlines() if line.strip()]
        why = next((line for line in lines if not line.startswith(_TORCH_BOILERPLATE)), "no detail")
        raise DataError(f"{path}: not a readable torch checkpoint (corrupt or not torch.save: {why})") from e
    except Exception as e:  # torch raises RuntimeError/EOFError/OSError/... here
        if path.stat().st_size == 0:
            raise DataError(f"{path}: empty file (0 bytes), not a torch checkpoint") from e
        detail = str(e).splitlines()[0].split(". ")[0] if str(e) else "no detail"  # torch's first sentence
        raise DataError(
            f"{path}: not a readable torch checkpoint (truncated or corrupt: {type(e).__name__}: {detail})"
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


def describe(obj: Any) -> str:
    """What a loaded checkpoint holds, in a few words, for a message saying it is the wrong kind."""
    if isinstance(obj, torch.nn.Module):
        return f"a pickled {type(obj).__module__}.{type(obj).__qualname__}"
    if isinstance(obj, Mapping):
        if isinstance(obj.get("arch"), str):
            from vat.models.restorers import RESTORERS

            kind = "a restorer checkpoint" if obj["arch"] in RESTORERS else "a checkpoint"
            return f"{kind} of arch {obj['arch']!r}"
        if "format" in obj and "config" in obj:
            return f"a checkpoint of format {obj['format']!r} (a translator's?)"
        tensors = [k for k, v in obj.items() if isinstance(v, torch.Tensor)]
        if tensors and len(tensors) == len(obj):
            return (
                f"a bare state_dict of {len(tensors)} tensors ({tensors[0]!r}, ...) without its architecture"
            )
        return f"a dict with keys {sorted(map(str, obj))[:6]}" if obj else "an empty dict"
    return f"a {type(obj).__name__}"
