"""What every dataset reader shares.

A format module only *parses*: it turns its files into :class:`RawItem` objects (the
image path it expects, the dataset's own split if any, the boxes as written in the
annotation with class *names*). :func:`build_manifest` then does the rest the same way
for every format:

- image ids: the file stem, prefixed with the item's group (split or subfolder) only where
  stems collide;
- splits: the dataset's own where it has one (see :func:`resolve_split`), otherwise a
  deterministic hash of (seed, image id);
- images: fully decoded once; a missing, truncated or corrupt file stops the read or is
  skipped; anything that is not plain upright 8-bit RGB is rewritten as an RGB PNG in
  ``convert_dir``;
- classes: names mapped with :func:`vat.data.classes.canonical`; names outside the task list
  are counted as *ignored* (a known VOC/ExDark class) or *unknown*, never dropped silently;
- boxes: clipped to the image; a box fully outside, of zero area or not finite stops the
  read or is skipped.
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from vat.data.classes import KNOWN_NAMES, canonical
from vat.data.manifest import SPLITS, Box, Manifest, Record, check
from vat.errors import DataError, ParamsError
from vat.io import exif_orientation, load_rgb, open_image, save_png
from vat.seeding import item_seed

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
ON_ERROR = ("stop", "skip")
TASK_KINDS = ("detect", "classify")
MAX_LISTED = 100  # entries of skipped / converted kept in ReadReport.to_dict()


@dataclass
class ReadReport:
    """What a read did besides producing the manifest; ``to_dict`` goes into metrics.json."""

    n_images: int = 0
    n_boxes: int = 0
    unknown_classes: dict[str, int] = field(default_factory=dict)
    ignored_classes: dict[str, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    converted: list[str] = field(default_factory=list)
    n_empty_dropped: int = 0
    n_crowd_skipped: int = 0  # COCO iscrowd=1 annotations left out (not an error)
    n_unlisted: int = 0  # annotation files in none of the dataset's split lists (VOC ImageSets), left out
    n_ratio_split: int = 0  # images the dataset gives no split: split by split_ratios (a weak link)
    split_counts: dict[str, int] = field(default_factory=dict)
    class_counts: dict[str, int] = field(default_factory=dict)  # boxes (or labels) per task class

    def to_dict(self) -> dict:
        return {
            "n_images": self.n_images,
            "n_boxes": self.n_boxes,
            "split_counts": dict(self.split_counts),
            "class_counts": dict(self.class_counts),
            "unknown_classes": dict(sorted(self.unknown_classes.items())),
            "ignored_classes": dict(sorted(self.ignored_classes.items())),
            "n_skipped": len(self.skipped),
            "skipped": self.skipped[:MAX_LISTED],
            "n_converted": len(self.converted),
            "converted": self.converted[:MAX_LISTED],
            "n_empty_dropped": self.n_empty_dropped,
            "n_crowd_skipped": self.n_crowd_skipped,
            "n_unlisted": self.n_unlisted,
            "n_ratio_split": self.n_ratio_split,
        }


@dataclass
class RawObject:
    """One annotated object as the file states it (class name, pixel or normalised corners)."""

    name: str
    x1: float
    y1: float
    x2: float
    y2: float
    difficult: bool = False
    normalized: bool = False  # corners are fractions of the image size (YOLO)
    where: str = ""  # position in the annotation file for messages, e.g. "line 3"


@dataclass
class RawItem:
    """One image as a format module found it, before checking and mapping."""

    image_path: Path  # where the image is expected (as given: root joined with a relative path)
    ann_path: Path | None = None  # annotation file, named in messages
    split: str | None = None  # train | val | test | trainval as the dataset defines it, or None
    objects: list[RawObject] = field(default_factory=list)
    declared_size: tuple[int, int] | None = None  # (width, height) the annotation states
    label_name: str | None = None  # image-level class (classification)
    group: str = ""  # split or subfolder, prefixed to the id when stems collide
    image_id: str | None = None  # preset id (otherwise the image file stem)
    array: np.ndarray | None = None  # pixels to write out (CIFAR python batches)


@dataclass
class ReadContext:
    """Options of one read plus the report it fills."""

    classes: list[str]
    seed: int
    convert_dir: Path
    source: str
    split_ratios: tuple[float, float, float] = (0.8, 0.1, 0.1)
    on_error: str = "stop"
    keep_empty: bool = True
    aliases: dict[str, str] | None = None
    task_kind: str = "detect"
    report: ReadReport = field(default_factory=ReadReport)
    _index: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.on_error not in ON_ERROR:
            raise ParamsError(f"on_error: {self.on_error!r} is not one of {', '.join(ON_ERROR)}")
        if self.task_kind not in TASK_KINDS:
            raise ParamsError(f"task_kind: {self.task_kind!r} is not one of {', '.join(TASK_KINDS)}")
        ratios = tuple(float(r) for r in self.split_ratios)
        if len(ratios) != 3 or any(not r >= 0 for r in ratios) or sum(ratios) <= 0:
            raise ParamsError(f"split_ratios: expected 3 non-negative numbers, got {self.split_ratios!r}")
        self.split_ratios = ratios  # type: ignore[assignment]
        if not self.classes:
            raise ParamsError("classes: the task class list is empty")
        for i, name in enumerate(self.classes):
            key = canonical(name, self.aliases)
            if key in self._index:
                raise ParamsError(f"classes: {name!r} repeats {self.classes[self._index[key]]!r}")
            self._index[key] = i

    def fail(self, message: str) -> None:
        """A bad image, annotation or box: raise (stop) or record it and go on (skip)."""
        if self.on_error == "stop":
            raise DataError(message)
        self.report.skipped.append(message)

    def class_index(self, name: str) -> int | None:
        """Index of ``name`` in the task classes; otherwise count it as ignored or unknown."""
        key = canonical(name, self.aliases)
        if key in self._index:
            return self._index[key]
        counts = self.report.ignored_classes if key in KNOWN_NAMES else self.report.unknown_classes
        counts[key] = counts.get(key, 0) + 1
        return None


# ---------------------------------------------------------------- files


def resolve_under(root: Path, name: str | Path) -> Path:
    """``name`` relative to ``root`` when it exists there, else as given (absolute or cwd)."""
    p = Path(name)
    if p.is_absolute():
        return p
    return root / p if (root / p).exists() or not p.exists() else p


def find_images(folder: Path, exclude: Path | None = None) -> list[Path]:
    """Image files under ``folder``, sorted, skipping hidden entries and ``exclude``."""
    skip = exclude.resolve() if exclude is not None else None
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(
            d for d in dirnames if not d.startswith(".") and (skip is None or (here / d).resolve() != skip)
        )
        found += [
            here / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_SUFFIXES
        ]
    return found


def image_candidates(folder: Path, stem: str) -> list[Path]:
    return [folder / f"{stem}{s}" for s in (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG", ".bmp", ".tif")]


# ---------------------------------------------------------------- splits


def split_unit(seed: int, image_id: str) -> float:
    """A number in [0, 1) fixed by (seed, image id)."""
    return item_seed(seed, "split", image_id) / 2.0**64


def ratio_split(u: float, ratios: tuple[float, float, float]) -> str:
    total = sum(ratios)
    if u < ratios[0] / total:
        return "train"
    if u < (ratios[0] + ratios[1]) / total:
        return "val"
    return "test"


def resolve_split(given: str | None, defined: set[str], u: float, ratios: tuple[float, float, float]) -> str:
    """The split of one item from the dataset's own split and the set the dataset defines.

    - one split (or none) defined for the whole set, e.g. a single ``instances_val.json``:
      not a split definition; hash over ``ratios``;
    - ``val`` / ``test``: kept;
    - ``train`` with a val split defined: kept; with a test split only: val carved out
      with fraction ratios[1] / (ratios[0] + ratios[1]);
    - ``trainval`` with a test split: train/val carved the same way;
    - not listed (None) while others are: hash over ``ratios``.
    """
    if given is None or len(defined) < 2:
        return ratio_split(u, ratios)
    if given in ("val", "test"):
        return given
    if given == "train" and "val" in defined:
        return "train"
    if "test" in defined:
        denom = ratios[0] + ratios[1]
        return "val" if denom > 0 and u < ratios[1] / denom else "train"
    return ratio_split(u, ratios)


# ---------------------------------------------------------------- ids

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_id(text: str) -> str:
    return _UNSAFE.sub("_", text).strip("_") or "image"


def unique_ids(items: list[RawItem]) -> list[str]:
    """Stem ids; colliding stems get their group as prefix, then a counter if still needed."""
    base = [safe_id(it.image_id or it.image_path.stem) for it in items]
    counts = Counter(base)
    ids = [
        safe_id(f"{it.group}_{b}") if counts[b] > 1 and it.group and not it.image_id else b
        for it, b in zip(items, base, strict=True)
    ]
    taken = set(ids)
    seen: set[str] = set()
    out: list[str] = []
    for i in ids:
        if i in seen:
            n = 2
            while f"{i}_{n}" in taken:
                n += 1
            i = f"{i}_{n}"
            taken.add(i)
        seen.add(i)
        out.append(i)
    return out


# ---------------------------------------------------------------- boxes


def clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> tuple[float, ...] | str:
    """The box clipped to the image (float32-exact), or the reason it cannot be kept."""
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return "has a coordinate that is not a finite number"
    if x2 <= x1 or y2 <= y1:
        return "has zero or negative area"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return f"lies fully outside the {width}x{height} image"
    c = [float(np.float32(v)) for v in (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))]
    if c[2] <= c[0] or c[3] <= c[1]:
        return f"has zero area after clipping to the {width}x{height} image"
    return tuple(c)


# ---------------------------------------------------------------- images

_PLAIN_MODES = ("RGB",)


@dataclass
class CheckedImage:
    path: str
    width: int
    height: int


def check_image(item: RawItem, image_id: str, ctx: ReadContext) -> CheckedImage | None:
    """Decode the image once; convert it if needed; None when it was skipped."""
    src = item.image_path
    if item.array is not None:
        dst = Path(ctx.convert_dir) / f"{image_id}.png"
        save_png(np.ascontiguousarray(item.array), dst)
        return CheckedImage(str(dst), int(item.array.shape[1]), int(item.array.shape[0]))
    if not src.is_file():
        where = item.ann_path if item.ann_path is not None else src
        ctx.fail(f"{where}: names image {src}, which does not exist")
        return None
    try:
        with open_image(src) as im:
            mode, raw_size = im.mode, im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        ctx.fail(f"{src}: truncated, corrupt or oversized image ({e})")
        return None
    orientation = exif_orientation(src)
    rotated = orientation in (2, 3, 4, 5, 6, 7, 8)
    shown_size = (raw_size[1], raw_size[0]) if orientation in (5, 6, 7, 8) else raw_size
    # Boxes drawn on the raw pixels (the annotation states the raw size, not the shown one):
    # keep the raw orientation.
    use_exif = not (rotated and item.declared_size == raw_size and item.declared_size != shown_size)
    try:
        pixels = load_rgb(src, exif=use_exif)
    except DataError as e:
        ctx.fail(str(e))
        return None
    except Image.DecompressionBombError as e:
        ctx.fail(f"{src}: oversized image ({e})")
        return None
    height, width = pixels.shape[:2]
    reasons = []
    if mode not in _PLAIN_MODES:
        reasons.append(f"mode {mode}")
    if rotated:
        reasons.append(
            f"EXIF orientation {orientation} " + ("applied" if use_exif else "ignored (raw-size boxes)")
        )
    if not reasons:
        return CheckedImage(str(src), width, height)
    dst = Path(ctx.convert_dir) / f"{image_id}.png"
    save_png(pixels, dst)
    ctx.report.converted.append(f"{src}: {', '.join(reasons)} -> {dst}")
    return CheckedImage(str(dst), width, height)


# ---------------------------------------------------------------- assembly


def _task_objects(item: RawItem, ctx: ReadContext) -> list[tuple[int, RawObject]]:
    """Objects of a task class with their index; the other names are counted."""
    found = [(ctx.class_index(obj.name), obj) for obj in item.objects]
    return [(cls, obj) for cls, obj in found if cls is not None]


def _boxes(
    item: RawItem, objects: list[tuple[int, RawObject]], image: CheckedImage, ctx: ReadContext
) -> list[Box]:
    boxes: list[Box] = []
    for cls, obj in objects:
        sx, sy = (image.width, image.height) if obj.normalized else (1, 1)
        coords = (obj.x1 * sx, obj.y1 * sy, obj.x2 * sx, obj.y2 * sy)
        clipped = clip_box(*coords, image.width, image.height)
        if isinstance(clipped, str):
            where = f"{obj.where}: " if obj.where else ""
            shown = ", ".join(f"{v:g}" for v in coords)
            ctx.fail(f"{item.ann_path or item.image_path}: {where}box {obj.name} ({shown}) {clipped}")
            continue
        boxes.append(Box(cls, *clipped, difficult=obj.difficult))
    return boxes


def build_manifest(items: list[RawItem], ctx: ReadContext) -> Manifest:
    """Check, convert, map and split the items into a validated manifest; fill the report."""
    ids = unique_ids(items)
    defined = {it.split for it in items if it.split}
    report = ctx.report
    records: list[Record] = []
    for item, image_id in zip(items, ids, strict=True):
        label = -1
        if ctx.task_kind == "classify":
            # Images of other classes are left out before decoding; their names are counted.
            label_index = ctx.class_index(item.label_name) if item.label_name is not None else None
            if label_index is None:
                if item.label_name is None:
                    ctx.fail(f"{item.ann_path or item.image_path}: image {item.image_path} has no label")
                continue
            label = label_index
        objects = _task_objects(item, ctx) if ctx.task_kind == "detect" else []
        if ctx.task_kind == "detect" and not objects and not ctx.keep_empty:
            report.n_empty_dropped += 1  # dropped before decoding: the image is never used
            continue
        image = check_image(item, image_id, ctx)
        if image is None:
            continue
        boxes = _boxes(item, objects, image, ctx)
        if ctx.task_kind == "detect" and not boxes and not ctx.keep_empty:
            report.n_empty_dropped += 1
            continue
        split = resolve_split(item.split, defined, split_unit(ctx.seed, image_id), ctx.split_ratios)
        report.n_ratio_split += item.split is None or len(defined) < 2  # resolve_split's fallback
        records.append(
            Record(
                image_id=image_id,
                path=image.path,
                width=image.width,
                height=image.height,
                split=split,
                source=ctx.source,
                label=label,
                boxes=boxes,
            )
        )
    manifest = Manifest(records=records, classes=list(ctx.classes))
    check(manifest, f"{ctx.source} reader")
    report.n_images = len(records)
    report.n_boxes = sum(len(r.boxes) for r in records)
    report.split_counts = {s: sum(r.split == s for r in records) for s in SPLITS}
    per_class = Counter(b.cls for r in records for b in r.boxes) + Counter(
        r.label for r in records if r.label >= 0
    )
    report.class_counts = {c: per_class.get(i, 0) for i, c in enumerate(ctx.classes)}
    return manifest
