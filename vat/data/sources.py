"""The clean labelled dataset a run starts from: the embedded scenes, or a dataset folder.

``prepare`` reads it into one manifest (:mod:`vat.data.manifest`); ``real`` reads its test
sets without clean pairs the same way. Params: :class:`PrepareParams` (the ``prepare``
section).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from vat.config import CommonParams
from vat.data.manifest import SPLITS, Box, Manifest, Record
from vat.errors import DataError, ParamsError
from vat.io import save_npy, save_png
from vat.seeding import item_rng


@dataclass(frozen=True)
class EmbeddedParams:
    """``prepare.embedded``: the generated road-scene dataset."""

    width: int  # image width, px
    height: int  # image height, px
    n_train: int  # images (crops for task classify) in the train split
    n_val: int  # ... in the val split (checkpoint selection)
    n_test: int  # ... in the test split (reported only)
    targets: tuple[int, int]  # target objects per scene, inclusive range
    distractors: tuple[int, int]  # non-target objects per scene (poles, trees, ...), inclusive range
    crop_size: int  # task classify: side of each object crop, px

    def __post_init__(self) -> None:
        if min(self.width, self.height) < 32:
            raise ValueError("embedded.width and embedded.height must be at least 32 px")
        if min(self.n_train, self.n_val, self.n_test) < 1:
            raise ValueError("embedded.n_train, n_val and n_test must be at least 1")
        for name in ("targets", "distractors"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"embedded.{name} must be [lo, hi] with 0 <= lo <= hi")


@dataclass(frozen=True)
class LabelledSet:
    """A labelled image set in a dataset format, for scoring (``prepare.folder.val`` / ``test``)."""

    source: Literal["voc", "yolo", "coco", "exdark"]  # its format
    root: str  # its folder, relative to prepare.root (or absolute)
    annotations: str | None  # coco: annotation json relative to its root
    split: Literal["train", "val", "test", "all"]  # which of its images (all: every one)


@dataclass(frozen=True)
class FolderParams:
    """``prepare.folder``: your own photographs, for ``source: folder``. Only the val and test
    sets carry labels; the training folders never do (and are never read for any)."""

    degraded: str | None  # folder of degraded photographs (hazy, dark), no labels: VaT's I_LQ
    clean: str | None  # folder of clean photographs of the same kind of scene, no labels, unpaired: I_HQ
    val: LabelledSet | None  # labelled degraded photographs to select the checkpoint on; null: none
    test: LabelledSet | None  # labelled degraded photographs to score on; null: none


@dataclass(frozen=True)
class PrepareParams:
    """``prepare``: where the clean labelled data comes from."""

    source: Literal["embedded", "voc", "yolo", "coco", "exdark", "cifar10", "folder"]
    root: str | None  # dataset folder (not used by embedded)
    annotations: str | None  # coco: annotation json, relative to root (optional)
    split_ratios: tuple[float, float, float]  # train/val/test when the dataset defines no split
    on_error: Literal["stop", "skip"]  # bad image or annotation: stop, or skip it and count it
    keep_empty: bool  # keep images with no box of a task class
    aliases: dict[str, str]  # extra class-name aliases, e.g. {"van": "car"}
    embedded: EmbeddedParams
    folder: FolderParams  # source folder: the photograph folders and the labelled sets

    def __post_init__(self) -> None:
        if self.source != "embedded" and not self.root:
            raise ValueError(f"prepare.root: source {self.source!r} needs the dataset folder")
        if self.source == "folder" and not (self.folder.degraded and self.folder.clean):
            raise ValueError(
                "prepare.folder: source folder needs the degraded and the clean photograph folders"
            )
        if any(r < 0 for r in self.split_ratios) or abs(sum(self.split_ratios) - 1) > 1e-6:
            raise ValueError("prepare.split_ratios must be three non-negative numbers summing to 1")


def read_embedded(
    common: CommonParams, p: EmbeddedParams, out: Path, tmp: Path, track
) -> tuple[Manifest, dict]:
    """Generate the embedded scenes into ``tmp`` (their final folder: ``out``): images, depth
    maps and boxes, or (task classify) object crops with their class as the image label."""
    from vat.data.embedded import EMBEDDED_CLASSES, SceneSpec, render_scene

    missing = [c for c in EMBEDDED_CLASSES if c not in common.classes]
    if missing:
        raise ParamsError(
            f"common.classes: the embedded dataset draws {EMBEDDED_CLASSES}; {missing} are not listed"
        )
    remap = np.array([common.classes.index(c) for c in EMBEDDED_CLASSES])
    spec = SceneSpec(width=p.width, height=p.height, targets=p.targets, distractors=p.distractors)
    counts = {"train": p.n_train, "val": p.n_val, "test": p.n_test}
    records: list[Record] = []
    for split in SPLITS:
        if common.task == "classify":
            records += _crops(common.seed, spec, p.crop_size, split, counts[split], remap, out, tmp, track)
            continue
        for i in track(range(counts[split]), f"prepare {split}", counts[split]):
            image_id = f"{split}_{i:05d}"
            scene = render_scene(spec, item_rng(common.seed, "scene", image_id))
            save_png(scene.image, tmp / "images" / f"{image_id}.png")
            save_npy(scene.depth.astype(np.float16), tmp / "depth" / f"{image_id}.npy")
            boxes = [Box(int(remap[b.cls]), b.x1, b.y1, b.x2, b.y2, b.difficult) for b in scene.boxes]
            records.append(
                Record(
                    image_id=image_id,
                    path=str(out / "images" / f"{image_id}.png"),
                    width=p.width,
                    height=p.height,
                    split=split,
                    source="embedded",
                    depth_path=str(out / "depth" / f"{image_id}.npy"),
                    boxes=boxes,
                )
            )
    return Manifest(records, list(common.classes)), {"source": "embedded"}


# Nine arguments: one split's share of read_embedded, every one its own.
def _crops(
    seed, spec, size, split, n, remap, out, tmp, track
) -> list[Record]:  # nine: one split of read_embedded
    """Classification variant: object crops with their class as the image label."""
    from vat.data.embedded import crop_objects, render_scene

    records: list[Record] = []
    scene_i = 0
    progress = iter(track(range(n), f"prepare {split} crops", n))
    while len(records) < n:
        scene = render_scene(spec, item_rng(seed, "scene", f"{split}_crops_{scene_i:05d}"))
        for j, (crop, cls) in enumerate(crop_objects(scene, size)):
            if len(records) == n:
                break
            image_id = f"{split}_{scene_i:05d}_{j}"
            save_png(crop, tmp / "images" / f"{image_id}.png")
            records.append(
                Record(
                    image_id=image_id,
                    path=str(out / "images" / f"{image_id}.png"),
                    width=size,
                    height=size,
                    split=split,
                    source="embedded",
                    label=int(remap[cls]),
                )
            )
            next(progress, None)
        scene_i += 1
        if scene_i > 100 * n + 100:
            raise ParamsError("prepare.embedded: scenes yield no object crops; raise targets or size")
    return records


def read_external(common: CommonParams, params: PrepareParams, out: Path, tmp: Path) -> tuple[Manifest, dict]:
    """Read the dataset folder ``params.root``; converted image copies go to ``tmp/images``
    (their final folder: ``out/images``)."""
    from vat.data.readers import read_dataset

    if not Path(params.root).is_dir():  # the key to edit, named (classify rewrites it in full)
        raise DataError(f"prepare.root: {params.root}: dataset folder not found")
    manifest, report = read_dataset(
        params.source,
        params.root,
        list(common.classes),
        seed=common.seed,
        convert_dir=tmp / "images",
        split_ratios=params.split_ratios,
        on_error=params.on_error,
        keep_empty=params.keep_empty,
        aliases=params.aliases,
        annotations=params.annotations,
        task_kind="classify" if common.task == "classify" else "detect",
    )
    _final_paths(manifest.records, tmp, out)
    return manifest, {"source": params.source, "read": report.to_dict()}


def read_folders(common: CommonParams, params: PrepareParams, out: Path, tmp: Path) -> tuple[Manifest, dict]:
    """``source: folder``: the degraded and clean photographs (train split, no labels, each
    image tagged with its domain) and the labelled val and test sets, as one manifest."""
    from vat.data.readers.common import resolve_under

    root, f = Path(params.root), params.folder
    records, extra = [], {"source": "folder", "read": {}}
    for domain in ("degraded", "clean"):
        part, extra["read"][domain] = _photographs(common, params, domain, tmp)
        records += part
    same = resolve_under(root, f.degraded).resolve() == resolve_under(root, f.clean).resolve()
    extra["warnings"] = ["the degraded and clean folders are the same folder: not unpaired"] if same else []
    for split in ("val", "test"):
        if getattr(f, split) is not None:
            part, extra["read"][split] = _labelled(common, params, split, tmp)
            records += part
    _final_paths(records, tmp, out)
    return Manifest(records, list(common.classes)), extra


def _photographs(common: CommonParams, params: PrepareParams, domain: str, tmp: Path) -> tuple[list, dict]:
    """The training photographs of ``domain`` (degraded or clean): checked, converted where
    needed, no labels; and what the read found."""
    from dataclasses import replace

    from vat.data.readers.common import RawItem, ReadContext, build_manifest, find_images, resolve_under

    folder = resolve_under(Path(params.root), getattr(params.folder, domain))
    if not folder.is_dir():
        raise DataError(f"{folder}: prepare.folder.{domain}: folder of photographs not found")
    files = find_images(folder)
    if not files:
        raise DataError(f"{folder}: prepare.folder.{domain}: no images in this folder")
    items = [RawItem(p, split="train", image_id=f"{domain}/{p.relative_to(folder).with_suffix('')}")
             for p in files]  # fmt: skip
    ctx = ReadContext(list(common.classes), common.seed, tmp / "images", "folder", on_error=params.on_error,
                      where=str(folder))  # fmt: skip
    part = build_manifest(items, ctx)
    found = {"folder": str(folder), "images": len(part.records)} | ctx.report.to_dict()
    return [replace(r, split="train", domain=domain) for r in part.records], found


def _labelled(common: CommonParams, params: PrepareParams, split: str, tmp: Path) -> tuple[list, dict]:
    """The labelled set ``prepare.folder.<split>`` (degraded photographs with boxes)."""
    from dataclasses import replace

    from vat.data.readers import read_dataset
    from vat.data.readers.common import resolve_under

    s: LabelledSet = getattr(params.folder, split)
    manifest, report = read_dataset(
        s.source, resolve_under(Path(params.root), s.root), list(common.classes), seed=common.seed,
        convert_dir=tmp / "images" / split, on_error=params.on_error, keep_empty=True,
        aliases=params.aliases, annotations=s.annotations,
    )  # fmt: skip
    keep = [r for r in manifest.records if s.split == "all" or r.split == s.split]
    if not keep:
        raise DataError(f"{s.root}: prepare.folder.{split}: no image in split {s.split!r} (all: every one)")
    renamed = [replace(r, image_id=f"{split}_{r.image_id}", split=split, domain="degraded") for r in keep]
    return renamed, report.to_dict()


def _final_paths(records: list[Record], tmp: Path, out: Path) -> None:
    """Converted copies were written under the temporary folder; point at their final place."""
    tmp_prefix, final_prefix = str(tmp / "images"), str(out / "images")
    for r in records:
        if r.path.startswith(tmp_prefix):
            r.path = final_prefix + r.path[len(tmp_prefix) :]


def read_source(
    common: CommonParams, params: PrepareParams, out: Path, tmp: Path, track
) -> tuple[Manifest, dict]:
    """The dataset ``params`` names, read (or generated) into ``tmp`` (final folder ``out``);
    the manifest and the report name files by their final paths.

    A labelled dataset must leave an image in each split (train, val, test; after skipping bad
    items with ``on_error: skip``), else DataError: a later stage would fail on it much later."""
    from vat.atomic import final_names

    if params.source == "embedded":
        manifest, extra = read_embedded(common, params.embedded, out, tmp, track)
    elif params.source == "folder":
        manifest, extra = read_folders(common, params, out, tmp)
    else:
        manifest, extra = read_external(common, params, out, tmp)
        empty = [s for s in SPLITS if not manifest.split(s)]
        if empty:
            read = extra["read"]
            counts = ", ".join(f"{s} {n}" for s, n in read["split_counts"].items())
            skipped = (
                f"; {read['n_skipped']} bad items skipped, first: {read['skipped'][0]}"
                if read["skipped"]
                else ""
            )
            raise DataError(
                f"{params.root}: split {' and '.join(empty)} has no image ({counts}{skipped}): fix the "
                "bad items, or the dataset's split lists or prepare.split_ratios"
            )
    return manifest, final_names(extra, tmp, out)  # "converted: a.jpg -> data/prepare/images/a.png"


def counts(manifest: Manifest) -> dict:
    """Images, boxes and labels per split and class."""
    per_split = {}
    for split in SPLITS:
        recs = manifest.split(split)
        boxes = Counter(manifest.classes[b.cls] for r in recs for b in r.boxes)
        labels = Counter(manifest.classes[r.label] for r in recs if r.label >= 0)
        per_split[split] = {
            "images": len(recs),
            "boxes": sum(boxes.values()),
            "boxes_per_class": {c: boxes.get(c, 0) for c in manifest.classes} if boxes else {},
            "labels_per_class": {c: labels.get(c, 0) for c in manifest.classes} if labels else {},
        }
    out = {"images": len(manifest.records), "classes": manifest.classes, "splits": per_split}
    domains = Counter(r.domain for r in manifest.split("train") if r.domain)
    if domains:  # photographs given as they are: how many of each, and none of them labelled
        out["train_photographs"] = {d: domains.get(d, 0) for d in ("degraded", "clean")}
    return out
