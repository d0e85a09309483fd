"""Dataset readers: a real dataset folder -> the project's manifest plus a report.

>>> manifest, report = read_dataset("voc", "data/VOC2012", TASK_CLASSES["haze"], seed=0,
...                                 convert_dir="data/prepare/images")  # doctest: +SKIP

Formats (one module each; shared rules in :mod:`vat.data.readers.common`):

- ``voc``: ``Annotations/*.xml``, ``JPEGImages/``, splits from ``ImageSets/Main``;
- ``yolo``: ``data.yaml`` (names, path, train/val/test) and ``labels/*.txt``;
- ``coco``: ``instances_*.json`` (or the json named by ``annotations``);
- ``exdark``: bbGt ``.txt`` or VOC-style ``.xml`` per image, splits from imageclasslist;
- ``cifar10``: python batches, ``labels.csv`` + images, or class folders (classification).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vat.data.manifest import Manifest
from vat.data.readers.cifar10 import read_cifar10
from vat.data.readers.coco import read_coco
from vat.data.readers.common import RawItem, ReadContext, ReadReport, build_manifest
from vat.data.readers.exdark import read_exdark
from vat.data.readers.voc import read_voc
from vat.data.readers.yolo import read_yolo
from vat.errors import DataError, ParamsError

__all__ = ["FORMATS", "ReadReport", "read_dataset"]

FORMATS = ("voc", "yolo", "coco", "exdark", "cifar10")
CLASSIFY_FORMATS = ("cifar10",)

_READERS: dict[str, Callable[[Path, ReadContext, str | None], list[RawItem]]] = {
    "voc": read_voc,
    "yolo": read_yolo,
    "coco": read_coco,
    "exdark": read_exdark,
    "cifar10": read_cifar10,
}


# Eleven arguments: the prepare section's reading options, each documented below.
def read_dataset(
    fmt: str,
    root: str | Path,
    classes: list[str],
    *,
    seed: int,
    convert_dir: str | Path,
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
    on_error: str = "stop",
    keep_empty: bool = True,
    aliases: dict[str, str] | None = None,
    annotations: str | None = None,
    task_kind: str = "detect",
) -> tuple[Manifest, ReadReport]:
    """Read the dataset at ``root`` in format ``fmt`` into a manifest over ``classes``.

    Bad images, annotations and boxes raise :class:`DataError` naming the file
    (``on_error="stop"``) or are left out and listed in ``report.skipped`` (``"skip"``).
    Images that are not plain upright 8-bit RGB are rewritten as PNG in ``convert_dir``.
    """
    if fmt not in _READERS:
        raise ParamsError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    if task_kind == "classify" and fmt not in CLASSIFY_FORMATS:
        raise ParamsError(
            f"format {fmt!r} has boxes, not image labels; classification reads {CLASSIFY_FORMATS}"
        )
    if task_kind == "detect" and fmt in CLASSIFY_FORMATS:
        raise ParamsError(f"format {fmt!r} has image labels only; use it with the classify task")
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset folder not found")
    ctx = ReadContext(
        classes=list(classes),
        seed=seed,
        convert_dir=Path(convert_dir),
        source=fmt,
        split_ratios=split_ratios,
        on_error=on_error,
        keep_empty=keep_empty,
        aliases=dict(aliases) if aliases else None,
        task_kind=task_kind,
        where=str(root),
    )
    items = _READERS[fmt](root, ctx, annotations)
    ctx.stop_if_failed()
    if not items:
        skipped = ctx.report.skipped
        detail = f"; {len(skipped)} skipped, first: {skipped[0]}" if skipped else ""
        raise DataError(f"{root}: no {fmt} images found{detail}")
    return build_manifest(items, ctx), ctx.report
