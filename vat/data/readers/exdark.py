"""ExDark: low-light images, boxes as bbGt ``.txt`` or VOC-style ``.xml``, splits from a list.

Layouts read: the full dataset (``ExDark/<Class>/<image>`` with
``ExDark_Annotations/<Class>/<image>.txt``) and flat ones (``images/`` with
``Annotations_xml/<image>.xml``). Images are found anywhere under the root; each is paired
with the annotation file named ``<image file>.txt|.xml`` (or ``<stem>.txt|.xml``) anywhere
under the root (or under ``annotations`` when given), preferring one in a folder of the
same name as the image's (the class folder).

bbGt: first line ``% bbGt version=3``, then ``Name left top width height occ ... ign ang``
in pixels; ``ign = 1`` is kept as ``difficult``. XML follows VOC (1-based corners).
Splits: ``imageclasslist*.txt`` rows ``Name Class Light In/Out Split`` with Split 1 train,
2 val, 3 test; images not in the list get a hashed split.
"""

from __future__ import annotations

import os
from pathlib import Path

from vat.data.readers.common import (
    IMAGE_SUFFIXES,
    RawItem,
    RawObject,
    ReadContext,
    find_images,
    read_lines,
    resolve_under,
)
from vat.data.readers.voc import parse_voc_xml
from vat.errors import DataError
from vat.io import read_text

SPLIT_CODES = {"1": "train", "2": "val", "3": "test"}
BBGT_HEADER = "% bbGt"


def parse_bbgt(path: Path, ctx: ReadContext) -> list[RawObject] | None:
    """Objects of one bbGt file (left top width height -> corners); None if unreadable."""
    try:
        lines = read_text(path).splitlines()
    except DataError as e:
        ctx.fail(str(e))
        return None
    if not lines or not lines[0].startswith(BBGT_HEADER):
        ctx.fail(f"{path}: line 1: expected the header '% bbGt version=3'")
        return None
    objects: list[RawObject] = []
    for n, line in enumerate(lines[1:], 2):
        parts = line.split()
        if not parts:
            continue
        try:
            left, top, width, height = (float(v) for v in parts[1:5])
        except ValueError:
            ctx.fail(f"{path}: line {n}: expected 'Name left top width height ...', got {line.strip()!r}")
            continue
        ignore = len(parts) > 10 and parts[10] == "1"
        objects.append(RawObject(parts[0], left, top, left + width, top + height, ignore, where=f"line {n}"))
    return objects


def parse_class_list(path: Path, ctx: ReadContext) -> dict[str, str]:
    """Lower-case image file name -> split, from ExDark's imageclasslist."""
    splits: dict[str, str] = {}
    for n, line in read_lines(path, ctx):
        parts = line.split()
        if not parts or (n == 1 and not (len(parts) >= 5 and parts[4].isdigit())):
            continue  # blank, or the header "Name | Class | Light | In/Out | Train/Val/Test"
        if len(parts) < 5 or parts[4] not in SPLIT_CODES:
            ctx.fail(f"{path}: line {n}: expected 'Name Class Light In/Out Split(1-3)', got {line.strip()!r}")
            continue
        splits[parts[0].lower()] = SPLIT_CODES[parts[4]]
    return splits


def _text_files(folder: Path) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and Path(f).suffix.lower() in (".txt", ".xml")
        ]
    return found


def _match(index: dict[str, list[Path]], image: Path) -> tuple[str, Path] | None:
    for key in (image.name.lower(), image.stem.lower()):
        found = index.get(key, [])
        same_folder = [p for p in found if p.parent.name.lower() == image.parent.name.lower()]
        if same_folder or found:
            return key, (same_folder or found)[0]
    return None


def _is_annotation(path: Path) -> bool:
    if path.suffix.lower() == ".xml":
        return True
    try:
        with open(path, errors="replace") as f:
            return f.readline().startswith(BBGT_HEADER)
    except OSError:
        return False


def read_exdark(root: Path, ctx: ReadContext, annotations: str | None = None) -> list[RawItem]:
    """One item per image under the root, paired with its bbGt or XML file."""
    ann_root = resolve_under(root, annotations) if annotations else root
    texts = _text_files(root)
    lists = [p for p in texts if p.name.lower().startswith("imageclasslist")]
    splits = parse_class_list(lists[0], ctx) if lists else {}
    ann_files = texts if ann_root == root else _text_files(ann_root)
    index: dict[str, list[Path]] = {}
    for p in ann_files:
        if p not in lists:
            index.setdefault(p.name[: -len(p.suffix)].lower(), []).append(p)
    items: list[RawItem] = []
    matched: set[str] = set()
    for image in find_images(root, ctx.convert_dir):
        found = _match(index, image)
        if found is None:
            ctx.fail(
                f"{image}: no annotation file {image.name}.txt or {image.name}.xml found under {ann_root}"
            )
            continue
        key, ann = found
        matched.add(key)
        if ann.suffix.lower() == ".xml":
            voc = parse_voc_xml(ann, ctx)
            objects, size = (voc.objects, voc.size) if voc else (None, None)
        else:
            objects, size = parse_bbgt(ann, ctx), None
        if objects is None:
            continue
        split = splits.get(image.name.lower()) or splits.get(image.stem.lower())
        items.append(RawItem(image, ann, split, objects, declared_size=size, group=image.parent.name))
    for key, paths in index.items():
        ann = paths[0]
        name = ann.name[: -len(ann.suffix)]
        if key not in matched and _is_annotation(ann):
            hint = "" if Path(name).suffix.lower() in IMAGE_SUFFIXES else " (any image suffix)"
            ctx.fail(f"{ann}: names image {name}{hint}, which was not found under {root}")
    return items
