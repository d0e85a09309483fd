"""What every dataset reader shares.

A format module only *parses*: it turns its files into :class:`RawItem` objects (the
image path it expects, the dataset's own split if any, the boxes as written in the
annotation with class *names*). :func:`build_manifest` then does the rest the same way
for every format:

- image ids: the file stem, prefixed with the item's group (split or subfolder) only where
  stems collide;
- splits: the dataset's own where it has one (see :func:`resolve_split`), otherwise a
  deterministic hash of (seed, image id);
- images: fully decoded once; a missing, truncated, corrupt or oversized file is a problem;
  anything that is not plain upright 8-bit RGB is rewritten as an RGB PNG in
  ``convert_dir``, EXIF orientation applied (:mod:`vat.data.readers.frames`: the rule);
- classes: names mapped with :func:`vat.data.classes.canonical`; names outside the task list
  are counted as *ignored* (a known VOC/ExDark class) or *unknown*, never dropped silently;
- boxes: a box partly outside the image is clipped, counted and listed; one fully outside, of
  zero area or not finite is a problem;
- problems (``on_error``): ``skip`` leaves the item out and lists it; ``stop`` goes on reading
  and then stops with every problem found, up to :data:`MAX_PROBLEMS`; a read that leaves no
  image stops either way.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vat.data.classes import KNOWN_NAMES, canonical
from vat.data.manifest import SPLITS, Box, Manifest, Record, check
from vat.data.readers.frames import CheckedImage, check_image, clip_box, turn_box
from vat.errors import DataError, ParamsError
from vat.io import not_utf8
from vat.seeding import item_seed

__all__ = ["CheckedImage", "check_image", "clip_box"]  # (from frames) and the names defined below

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif"})
ON_ERROR = ("stop", "skip")
TASK_KINDS = ("detect", "classify")
MAX_LISTED = 100  # entries of skipped / converted / clipped kept in ReadReport.to_dict()
MAX_PROBLEMS = 20  # on_error stop: a read stops at once when it has found this many


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
    clipped: list[str] = field(default_factory=list)  # boxes partly outside their image, clipped
    n_exif_oriented: int = 0  # images with an EXIF orientation (applied)
    n_exif_stored_frame: int = 0  # ... whose boxes were in the stored frame (turned with the image)
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
            "n_clipped": len(self.clipped),
            "clipped": self.clipped[:MAX_LISTED],
            "n_exif_oriented": self.n_exif_oriented,
            "n_exif_stored_frame": self.n_exif_stored_frame,
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
    where: str = ""  # the dataset (its folder), named by a stop with several problems
    report: ReadReport = field(default_factory=ReadReport)
    problems: list[str] = field(default_factory=list)  # on_error stop: found so far
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
        """A bad image, annotation or box: record it and go on; ``stop`` stops at the end of
        the read (:meth:`stop_if_failed`), or at once on the :data:`MAX_PROBLEMS` th."""
        if self.on_error == "skip":
            self.report.skipped.append(message)
            return
        self.problems.append(message)
        if len(self.problems) >= MAX_PROBLEMS:
            self.stop_if_failed()

    def stop_if_failed(self) -> None:
        """on_error stop: raise one DataError listing the problems found, if any."""
        if not self.problems:
            return
        if len(self.problems) == 1:
            raise DataError(self.problems[0])
        n = len(self.problems)
        more = f"stopped at the first {n}" if n >= MAX_PROBLEMS else f"{n} found"
        skip = "on_error: skip leaves them out and counts them"
        head = f"{self.where or self.source}: bad items ({more}; {skip}):"
        raise DataError("\n  ".join([head, *self.problems]))

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
        given = (obj.x1 * sx, obj.y1 * sy, obj.x2 * sx, obj.y2 * sy)
        coords = turn_box(given, image.orientation, image.stored_size) if image.stored_frame else given
        clipped = clip_box(*coords, image.width, image.height)
        where = f"{item.ann_path or item.image_path}: {obj.where + ': ' if obj.where else ''}"
        shown = ", ".join(f"{v:g}" for v in given)
        if isinstance(clipped, str):
            ctx.fail(f"{where}box {obj.name} ({shown}) {clipped}")
            continue
        if clipped != tuple(float(np.float32(v)) for v in coords):
            ctx.report.clipped.append(
                f"{where}box {obj.name} ({shown}) clipped to the {image.width}x{image.height} image"
            )
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
    ctx.stop_if_failed()
    if items and not records:
        raise DataError(f"{ctx.where or ctx.source}: no usable image among {len(items)}: {left_out(report)}")
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


def notes(reads: list[dict]) -> list[str]:
    """What a user should know about reads (``ReadReport.to_dict()`` s), one line each: bad
    items skipped, images converted or turned by EXIF, boxes clipped, names not used."""
    total = Counter()
    first: dict[str, str] = {}
    unknown: Counter = Counter()
    for r in reads:
        for key in ("n_skipped", "n_converted", "n_clipped", "n_exif_oriented", "n_exif_stored_frame"):
            total[key] += r.get(key, 0)
        for key in ("skipped", "converted", "clipped"):
            first.setdefault(key, (r.get(key) or [None])[0])
        unknown.update(r.get("unknown_classes", {}))
    lines = []
    if total["n_skipped"]:
        lines.append(f"skipped {total['n_skipped']} bad items (first: {first['skipped']})")
    if total["n_clipped"]:
        lines.append(
            f"clipped {total['n_clipped']} boxes partly outside their image (first: {first['clipped']})"
        )
    if total["n_exif_oriented"]:
        turned = total["n_exif_stored_frame"]
        how = (
            f"; the boxes of {turned} turned from the stored frame their annotation states" if turned else ""
        )
        lines.append(
            f"{total['n_exif_oriented']} images have an EXIF orientation: used as displayed, boxes read "
            f"as displayed{how} (data/README.md)"
        )
    if total["n_converted"]:
        lines.append(
            f"converted {total['n_converted']} images to plain RGB PNG (first: {first['converted']})"
        )
    if unknown:
        lines.append(f"unknown class names (not used): {dict(sorted(unknown.items()))}")
    return lines


def left_out(report: ReadReport) -> str:
    """Why images were left out, for a message: skipped (the first named), dropped, other classes."""
    parts = []
    if report.skipped:
        parts.append(f"{len(report.skipped)} bad items skipped (on_error: skip; first: {report.skipped[0]})")
    if report.n_empty_dropped:
        parts.append(f"{report.n_empty_dropped} without a box of a task class dropped (keep_empty: false)")
    other = sum(report.unknown_classes.values()) + sum(report.ignored_classes.values())
    if other:
        parts.append(f"{other} names outside the task classes")
    return "; ".join(parts) or "none was readable"


def read_lines(path: Path, ctx: ReadContext) -> list[tuple[int, str]]:
    """(line number, text) of a UTF-8 list file (a BOM allowed); a line that is not UTF-8 is a
    problem (``ctx.fail``, naming the file, line and byte) and is left out."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: not readable ({e})") from e
    lines: list[tuple[int, str]] = []
    for n, raw in enumerate(data.removeprefix(b"\xef\xbb\xbf").splitlines(), 1):
        try:
            lines.append((n, raw.decode("utf-8")))
        except UnicodeDecodeError as e:
            ctx.fail(f"{path}: {not_utf8(raw[e.start], n)}")
    return lines
