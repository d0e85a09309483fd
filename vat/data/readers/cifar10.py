"""CIFAR-10 (image-level labels): python batches, or an image folder with its labels.

(a) ``cifar-10-batches-py/`` (or the root itself) with pickled ``data_batch_1..5`` (train)
    and ``test_batch`` (test): dicts with ``b"data"`` (N x 3072 uint8, channel-major
    32 x 32) and ``b"labels"``; ``batches.meta`` gives ``b"label_names"``. The pickles
    are loaded with an unpickler that only admits numpy arrays, and each image is written
    as a PNG into ``convert_dir``.
(b) a labels file (``labels.csv``, or ``annotations`` naming one) with a header
    ``filename,label_index,label_name[,split,...]``; files are under ``images/`` when that
    folder exists, else beside the csv. ``label_name`` wins; without it ``label_index``
    is read in the standard CIFAR order.
(c) class-named folders ``<class>/*.png``, optionally under ``train/``, ``val/``,
    ``test/`` (which then give the splits).
"""

from __future__ import annotations

import csv
import io
import pickle
from pathlib import Path

import numpy as np

from vat.data.classes import TASK_CLASSES
from vat.data.readers.common import RawItem, ReadContext, find_images, resolve_under
from vat.errors import DataError
from vat.io import read_text

CIFAR10_ORDER: tuple[str, ...] = tuple(TASK_CLASSES["classify"])
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Admits plain containers and numpy arrays only; anything else is refused."""

    def find_class(self, module: str, name: str) -> object:
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_batch(path: Path) -> dict:
    """A CIFAR python batch as a dict with bytes keys; DataError if unreadable or unsafe."""
    try:
        obj = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except Exception as e:  # pickle raises many types for damaged input
        raise DataError(f"{path}: not a readable CIFAR python batch ({e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _batch_dir(root: Path) -> Path | None:
    for d in (root / "cifar-10-batches-py", root):
        if (d / "test_batch").is_file() or (d / "data_batch_1").is_file():
            return d
    return None


def _label_names(batch_dir: Path) -> tuple[str, ...]:
    meta = batch_dir / "batches.meta"
    if not meta.is_file():
        return CIFAR10_ORDER
    names = load_batch(meta).get(b"label_names")
    if not isinstance(names, list) or not names:
        raise DataError(f"{meta}: expected b'label_names', a list of class names")
    return tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


def _batch_items(path: Path, split: str, names: tuple[str, ...], ctx: ReadContext) -> list[RawItem]:
    batch = load_batch(path)
    data, labels = batch.get(b"data"), batch.get(b"labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: b'data' must be an N x 3072 uint8 array")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{path}: b'labels' must list one label per row of b'data'")
    pixels = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    items = []
    for i, label in enumerate(labels):
        if not 0 <= int(label) < len(names):
            ctx.fail(f"{path}: image {i} has label {label}, outside 0..{len(names) - 1}")
            continue
        items.append(
            RawItem(
                image_path=path,
                ann_path=path,
                split=split,
                label_name=names[int(label)],
                image_id=f"{path.name}_{i:05d}",
                array=pixels[i],
            )
        )
    return items


def read_batches(batch_dir: Path, ctx: ReadContext) -> list[RawItem]:
    names = _label_names(batch_dir)
    items: list[RawItem] = []
    for path in sorted(batch_dir.glob("data_batch_*")):
        items += _batch_items(path, "train", names, ctx)
    if (batch_dir / "test_batch").is_file():
        items += _batch_items(batch_dir / "test_batch", "test", names, ctx)
    return items


def _row_label(row: dict[str, str]) -> str | None:
    name = (row.get("label_name") or "").strip()
    if name:
        return name
    index = (row.get("label_index") or "").strip()
    if index.isdigit() and int(index) < len(CIFAR10_ORDER):
        return CIFAR10_ORDER[int(index)]
    return None


def read_labels_csv(root: Path, path: Path, ctx: ReadContext) -> list[RawItem]:
    image_dir = root / "images" if (root / "images").is_dir() else path.parent
    with io.StringIO(read_text(path), newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if "filename" not in header or not {"label_name", "label_index"} & set(header):
            raise DataError(
                f"{path}: expected a header with filename and label_name or label_index, got {header}"
            )
        items = []
        for n, row in enumerate(reader, 2):
            label, filename = _row_label(row), (row.get("filename") or "").strip()
            if not filename or label is None:
                ctx.fail(f"{path}: line {n}: needs a filename and a label_name or label_index 0..9")
                continue
            split = (row.get("split") or "").strip().lower() or None
            items.append(
                RawItem(
                    image_path=image_dir / filename, ann_path=path, split=split, label_name=label, group=label
                )
            )
    return items


def read_class_folders(root: Path, ctx: ReadContext) -> list[RawItem]:
    split_dirs = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    tops = [(root / s, s) for s in split_dirs] or [(root, None)]
    items = []
    for top, split in tops:
        for class_dir in sorted(d for d in top.iterdir() if d.is_dir() and not d.name.startswith(".")):
            group = f"{split}_{class_dir.name}" if split else class_dir.name
            items += [
                RawItem(image_path=p, split=split, label_name=class_dir.name, group=group)
                for p in find_images(class_dir, ctx.convert_dir)
            ]
    return items


def read_cifar10(root: Path, ctx: ReadContext, annotations: str | None = None) -> list[RawItem]:
    """Items with image-level labels from whichever of the three layouts the root holds."""
    batch_dir = _batch_dir(root)
    if batch_dir is not None and not annotations:
        return read_batches(batch_dir, ctx)
    csv_path = resolve_under(root, annotations) if annotations else root / "labels.csv"
    if csv_path.is_file():
        return read_labels_csv(root, csv_path, ctx)
    if annotations:
        raise DataError(f"{csv_path}: CIFAR-10 labels file not found")
    return read_class_folders(root, ctx)
