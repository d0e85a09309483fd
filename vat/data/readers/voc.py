"""PASCAL VOC: ``Annotations/*.xml`` + ``JPEGImages/`` (+ ``ImageSets/Main/*.txt`` splits).

VOC XML corners are 1-based and inclusive, so a box covers pixel edges
``xmin - 1 .. xmax``; that is what the manifest stores (0-based edges). ``difficult`` is
kept. The XML parser here is shared with ExDark's XML conversions.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from vat.data.readers.common import (
    IMAGE_SUFFIXES,
    RawItem,
    RawObject,
    ReadContext,
    image_candidates,
    read_lines,
    resolve_under,
)
from vat.errors import DataError

SPLIT_FILES = ("train", "val", "test", "trainval")


@dataclass
class VocAnnotation:
    filename: str | None
    size: tuple[int, int] | None  # (width, height) as stated; None when absent or 0
    objects: list[RawObject] = field(default_factory=list)


def _declared_size(root: ET.Element) -> tuple[int, int] | None:
    size = root.find("size")
    if size is None:
        return None
    try:
        w, h = int(float(size.findtext("width") or 0)), int(float(size.findtext("height") or 0))
    except ValueError:
        return None
    return (w, h) if w > 0 and h > 0 else None


def parse_voc_xml(path: Path, ctx: ReadContext) -> VocAnnotation | None:
    """Objects of one VOC-style XML (1-based corners -> 0-based edges); None if unreadable."""
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as e:
        ctx.fail(f"{path}: not readable XML ({e})")
        return None
    ann = VocAnnotation(filename=(root.findtext("filename") or "").strip() or None, size=_declared_size(root))
    for i, obj in enumerate(root.findall("object"), 1):
        name = (obj.findtext("name") or "").strip()
        box = obj.find("bndbox")
        if not name or box is None:
            ctx.fail(f"{path}: object {i} has no <name> or no <bndbox>")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(box.findtext(k) or "") for k in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            ctx.fail(f"{path}: object {i} ({name}) has a missing or non-numeric bndbox coordinate")
            continue
        difficult = (obj.findtext("difficult") or "0").strip().lower() in ("1", "true")
        ann.objects.append(RawObject(name, xmin - 1, ymin - 1, xmax, ymax, difficult, where=f"object {i}"))
    return ann


def _split_lists(main: Path, ctx: ReadContext) -> tuple[dict[str, str], dict[str, Path]]:
    """image id -> split from ImageSets/Main; ids -> the list file naming them."""
    present = {s: main / f"{s}.txt" for s in SPLIT_FILES if (main / f"{s}.txt").is_file()}
    use = [s for s in ("train", "val", "test") if s in present]
    if "trainval" in present and not {"train", "val"} & set(present):
        use = ["trainval", *(["test"] if "test" in present else [])]
    splits: dict[str, str] = {}
    listed_in: dict[str, Path] = {}
    for s in use:
        for _, line in read_lines(present[s], ctx):
            parts = line.split()
            if parts and parts[0] not in splits:
                splits[parts[0]] = s
                listed_in[parts[0]] = present[s]
    return splits, listed_in


def _find_image(dirs: list[Path], xml: Path, filename: str | None) -> Path:
    stem = xml.stem  # "2007_000027" or, for ExDark-style names, "2015_02057.jpg"
    names: list[str] = [stem] if Path(stem).suffix.lower() in IMAGE_SUFFIXES else []
    if filename:
        names.append(filename)
    for d in dirs:
        for p in [d / n for n in names] + image_candidates(d, stem):
            if p.is_file():
                return p
    return dirs[0] / (names[0] if names else f"{stem}.jpg")


def voc_image_dirs(root: Path, ann_dir: Path) -> list[Path]:
    dirs = [root / "JPEGImages", root / "images", ann_dir, root]
    return [d for d in dirs if d.is_dir()] or [root / "JPEGImages"]


def read_voc(root: Path, ctx: ReadContext, annotations: str | None = None) -> list[RawItem]:
    """One item per XML (or per id in ImageSets/Main when those lists exist)."""
    ann_dir = resolve_under(root, annotations) if annotations else root / "Annotations"
    if not ann_dir.is_dir():
        raise DataError(f"{ann_dir}: VOC annotation folder not found (expected {root}/Annotations)")
    image_dirs = voc_image_dirs(root, ann_dir)
    xmls = {p.stem: p for p in sorted(ann_dir.glob("*.xml"))}
    splits, listed_in = _split_lists(root / "ImageSets" / "Main", ctx)
    if splits:
        ids = sorted(splits)
        for i in ids:
            if i not in xmls:
                ctx.fail(f"{listed_in[i]}: lists {i!r} but {ann_dir / (i + '.xml')} does not exist")
        ids = [i for i in ids if i in xmls]
        ctx.report.n_unlisted = len(set(xmls) - set(splits))
    else:
        ids = sorted(xmls)
    items: list[RawItem] = []
    for i in ids:
        xml = xmls[i]
        ann = parse_voc_xml(xml, ctx)
        if ann is None:
            continue
        items.append(
            RawItem(
                image_path=_find_image(image_dirs, xml, ann.filename),
                ann_path=xml,
                split=splits.get(i),
                objects=ann.objects,
                declared_size=ann.size,
            )
        )
    return items
