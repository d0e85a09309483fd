"""The restricted unpickler for the YOLOv5 repository's checkpoints (no YOLOv5 code, no torch.load).

A YOLOv5 v7.0 checkpoint (Jocher et al., https://github.com/ultralytics/yolov5) is a torch zip
archive whose ``data.pkl`` pickles ``{"model": models.yolo.DetectionModel (often fp16), "ema",
"optimizer", "opt", "epoch", "git", "date", ...}``; the PyPI package pickles the same classes
under ``yolov5.models``. :func:`read_repository_checkpoint` reads it with
:class:`_RestrictedUnpickler`, a ``pickle.Unpickler`` whose ``find_class`` allows:

- the YOLOv5 classes (``models.yolo``, ``models.common``, ``models.experimental``) and
  ``torch.nn.modules`` classes, each as an inert stand-in (:class:`_Recorded`) that only records
  the arguments and the state the pickle gives it: nothing of the real classes runs;
- torch's tensor-rebuild helpers (replaced by our own, which make lazy tensors), its storage
  types (storages are read from the archive by ``persistent_load``, only for the tensors
  kept), ``OrderedDict``, ``set``, ``frozenset`` and latin-1 ``_codecs.encode`` (how protocol 2
  pickles bytes);
- numpy arrays and scalars, ``argparse.Namespace`` and paths, as inert stand-ins too (a
  checkpoint saved mid-training holds ``best_fitness`` as a numpy array), then discarded.

Anything else (``builtins.eval``, ``os.system``, ``builtins.getattr``, any other class) is
refused with a :class:`~vat.errors.DataError` naming the object and the file, before anything
of the file is called. Used by :mod:`vat.models.detectors.yolov5_files`.
"""

from __future__ import annotations

import pickle
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vat.errors import DataError

__all__ = ["YOLOV5_MODULES", "plain_data", "read_repository_checkpoint"]

YOLOV5_MODULES = frozenset(
    f"{root}models.{m}" for root in ("", "yolov5.") for m in ("yolo", "common", "experimental")
)


class _Recorded:
    """Stand-in for an allowed class of the file: never the real class, it only records the
    arguments and the state the pickle gives it."""

    qualname = ""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Recorded:
        obj = object.__new__(cls)
        obj.args, obj.state = args, None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state


_STUBS: dict[str, type[_Recorded]] = {}


def _stub_class(qualname: str) -> type[_Recorded]:
    if qualname not in _STUBS:
        _STUBS[qualname] = type(qualname.rpartition(".")[2], (_Recorded,), {"qualname": qualname})
    return _STUBS[qualname]


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


class _LazyStorage:
    """A storage of the archive, read once, when a kept tensor needs it."""

    def __init__(self, archive: zipfile.ZipFile, name: str, dtype: torch.dtype):
        self.archive, self.name, self.dtype = archive, name, dtype
        self._flat: Tensor | None = None

    def flat(self) -> Tensor:
        if self._flat is None:
            data = self.archive.read(self.name)
            self._flat = (
                torch.frombuffer(bytearray(data), dtype=self.dtype)
                if data
                else torch.empty(0, dtype=self.dtype)
            )
        return self._flat


@dataclass
class _LazyTensor:
    storage: _LazyStorage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype | None = None  # _rebuild_tensor_v3: a byte storage viewed as this dtype

    def materialize(self) -> Tensor:
        flat = self.storage.flat()
        if self.dtype is not None and flat.dtype != self.dtype:
            flat = flat.view(self.dtype)
        return flat.as_strided(self.size, self.stride, self.offset).clone()


def _ints(x: Any) -> tuple[int, ...]:
    if not isinstance(x, (tuple, list)) or not all(isinstance(v, int) for v in x):
        raise ValueError(f"bad tensor geometry {x!r}")
    return tuple(x)


def _rebuild_v2(
    storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None
):  # torch's args
    if not isinstance(storage, _LazyStorage) or not isinstance(offset, int):
        raise ValueError("tensor without a storage of the archive")
    return _LazyTensor(storage, offset, _ints(size), _ints(stride))


def _rebuild_v3(storage, offset, size, stride, requires_grad, hooks, dtype, metadata=None):  # torch's args
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"bad tensor dtype {dtype!r}")
    t = _rebuild_v2(storage, offset, size, stride)
    t.dtype = dtype
    return t


def _rebuild_parameter(data, requires_grad, hooks, state=None):
    return data


def _latin1(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode``, which protocol 2 pickles of bytes call: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise ValueError(f"refusing _codecs.encode(..., {encoding!r})")
    return text.encode("latin-1")


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "DoubleStorage": torch.float64,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "UntypedStorage": torch.uint8,
}
_ALLOWED_CALLABLES: dict[str, Any] = {
    "collections.OrderedDict": OrderedDict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "_codecs.encode": _latin1,
    "torch._utils._rebuild_tensor_v2": _rebuild_v2,
    "torch._utils._rebuild_tensor_v3": _rebuild_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
}
# Plain data YOLOv5 may store beside the model (opt, best_fitness): inert stand-ins, discarded.
_INERT = frozenset(
    f"numpy.{core}.multiarray.{name}" for core in ("core", "_core") for name in ("_reconstruct", "scalar")
) | {"numpy.ndarray", "numpy.dtype", "argparse.Namespace", "pathlib.PosixPath", "pathlib.WindowsPath"}
_PY2 = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a YOLOv5 checkpoint's ``data.pkl`` with stand-ins only (module docstring)."""

    def __init__(self, file: Any, archive: zipfile.ZipFile, prefix: str, path: Path):
        super().__init__(file)
        self.archive, self.prefix, self.path = archive, prefix, path
        self.storages: dict[str, _LazyStorage] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = _PY2.get(module, module)
        full = f"{module}.{name}"
        if full in _ALLOWED_CALLABLES:
            return _ALLOWED_CALLABLES[full]
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(_STORAGE_DTYPES[name])
        if module in YOLOV5_MODULES or module.startswith("torch.nn.modules.") or full in _INERT:
            return _stub_class(full)
        raise DataError(
            f"{self.path}: refusing to unpickle {full!r}: a YOLOv5 checkpoint may only name YOLOv5 "
            "model classes, torch.nn modules and tensors (nothing was executed)"
        )

    def persistent_load(self, pid: Any) -> _LazyStorage:
        ok = isinstance(pid, tuple) and len(pid) == 5 and isinstance(pid[1], _StorageType)
        if not ok or (pid[0].decode() if isinstance(pid[0], bytes) else pid[0]) != "storage":
            raise DataError(f"{self.path}: refusing persistent id {pid!r}")
        key = str(pid[2])
        if key not in self.storages:
            self.storages[key] = _LazyStorage(self.archive, f"{self.prefix}data/{key}", pid[1].dtype)
        return self.storages[key]


def plain_data(x: Any) -> bool:
    if isinstance(x, (str, int, float, bool, type(None))):
        return True
    if isinstance(x, (list, tuple)):
        return all(plain_data(v) for v in x)
    if isinstance(x, dict):
        return all(plain_data(k) and plain_data(v) for k, v in x.items())
    return False


def _walk(stub: _Recorded, prefix: str, tensors: dict[str, _LazyTensor], bn_eps: dict[str, float]) -> None:
    """The state_dict entries (parameters, persistent buffers) and BatchNorm eps of a module tree."""
    st = stub.state
    if not isinstance(st, dict):
        raise ValueError(f"module {stub.qualname} carries no state")
    skip = st.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, t in (st.get(group) or {}).items():
            if t is None or (group == "_buffers" and name in skip):
                continue
            if not isinstance(t, _LazyTensor):
                raise ValueError(f"{prefix}{name} is not a tensor")
            tensors[prefix + name] = t
    if stub.qualname.endswith(".BatchNorm2d"):
        bn_eps[prefix[:-1]] = float(st.get("eps", 1e-5))
    for name, child in (st.get("_modules") or {}).items():
        if child is not None:
            if not isinstance(child, _Recorded):
                raise ValueError(f"{prefix}{name} is not a module")
            _walk(child, f"{prefix}{name}.", tensors, bn_eps)


def read_repository_checkpoint(path: Path) -> dict[str, Any]:
    """The parts of a repository checkpoint that make the model: ``state_dict`` (the model's, or
    its EMA's, as stored), ``stride``, ``yaml``, ``names``, ``hyp``, ``opt`` (plain data or
    ``{}``), ``bn_eps`` (per BatchNorm). DataError for a refused object; other errors for a
    malformed file (the caller names the file)."""
    with zipfile.ZipFile(path) as archive:
        pkl = [n for n in archive.namelist() if n.endswith("data.pkl") and n.count("/") == 1]
        if len(pkl) != 1:
            raise ValueError("not a torch archive (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        order = f"{prefix}byteorder"
        if order in archive.namelist() and archive.read(order).strip() != b"little":
            raise ValueError("big-endian archives are not supported")
        with archive.open(pkl[0]) as f:
            root = _RestrictedUnpickler(f, archive, prefix, path).load()
        if isinstance(root, _Recorded):
            root = {"model": root}
        if not isinstance(root, dict):
            raise ValueError(f"the archive holds a {type(root).__name__}, not a checkpoint dict")
        model = root.get("ema") or root.get("model")
        kind = getattr(model, "qualname", type(model).__name__).rpartition(".")[2]
        if kind not in ("DetectionModel", "Model"):
            raise ValueError(f"no YOLOv5 DetectionModel inside (found {kind})")
        st = model.state if isinstance(model.state, dict) else {}
        layers = (st.get("_modules") or {}).get("model")
        modules = layers.state.get("_modules") if isinstance(getattr(layers, "state", None), dict) else None
        head = list(modules.values())[-1] if modules else None
        if getattr(head, "qualname", "").rpartition(".")[2] != "Detect":
            raise ValueError(
                f"the last layer is {getattr(head, 'qualname', head)!r}, not a YOLOv5 Detect head"
            )
        tensors: dict[str, _LazyTensor] = {}
        bn_eps: dict[str, float] = {}
        _walk(model, "", tensors, bn_eps)
        stride = st.get("stride")
        opt = root.get("opt")
        opt = opt.state if isinstance(opt, _Recorded) else opt  # argparse.Namespace in old versions
        return {
            "state_dict": {k: t.materialize() for k, t in tensors.items()},
            "stride": stride.materialize() if isinstance(stride, _LazyTensor) else None,
            "yaml": st.get("yaml"),
            "names": st.get("names"),
            "hyp": st.get("hyp"),
            "opt": opt if isinstance(opt, dict) and plain_data(opt) else {},
            "bn_eps": bn_eps,
        }
