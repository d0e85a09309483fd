"""COCO detection json: ``images``, ``annotations`` (bbox ``[x, y, w, h]`` pixels), ``categories``.

Which json: ``annotations`` names one (relative to the root; no split from it), or the
root holds ``annotations/instances_{train,val,test}*.json`` (split from the name), or
exactly one ``*.json`` in the root or its ``annotations/`` folder. ``file_name`` is looked
up under ``<root>/<json tag>`` (``instances_val2017`` -> ``val2017/``),
``<root>/images/<tag>``, ``<root>/images/<split>``, ``<root>/images`` and ``<root>``.
``iscrowd = 1`` annotations are left out and counted (``n_crowd_skipped``), not errors.
"""

from __future__ import annotations

import json
from pathlib import Path

from vat.data.readers.common import RawItem, RawObject, ReadContext, resolve_under
from vat.errors import DataError
from vat.io import read_text


def _split_of(json_path: Path) -> str | None:
    tag = json_path.stem.lower().removeprefix("instances_")
    for split in ("train", "val", "test"):
        if tag.startswith(split):
            return split
    return None


def find_jsons(root: Path, annotations: str | None) -> list[tuple[Path, str | None]]:
    """The annotation files to read, each with the split its name gives (if any)."""
    if annotations:
        return [(resolve_under(root, annotations), None)]
    ann_dir = root / "annotations"
    instances = sorted(ann_dir.glob("instances_*.json")) if ann_dir.is_dir() else []
    with_split = [(p, _split_of(p)) for p in instances if _split_of(p)]
    if with_split:
        return with_split
    singles = sorted(root.glob("*.json")) or (sorted(ann_dir.glob("*.json")) if ann_dir.is_dir() else [])
    if len(singles) == 1:
        return [(singles[0], None)]
    raise DataError(
        f"{root}: no COCO annotations found (expected annotations/instances_{{train,val,test}}*.json, "
        f"one *.json, or prepare.annotations naming the file)"
    )


def _image_dirs(root: Path, json_path: Path, split: str | None) -> list[Path]:
    tag = json_path.stem.removeprefix("instances_")
    dirs = [root / tag, root / "images" / tag]
    if split:
        dirs.append(root / "images" / split)
    dirs += [root / "images", root, json_path.parent]
    return [d for d in dirs if d.is_dir()] or [root]


def _load(path: Path, ctx: ReadContext) -> dict | None:
    try:
        data = json.loads(read_text(path))
    except DataError as e:
        ctx.fail(str(e))
        return None
    except json.JSONDecodeError as e:
        ctx.fail(f"{path}: not readable JSON ({e})")
        return None
    missing = [
        k for k in ("images", "annotations", "categories") if not isinstance(data, dict) or k not in data
    ]
    if missing:
        ctx.fail(f"{path}: COCO json lacks key(s) {', '.join(missing)}")
        return None
    return data


def _categories(data: dict, path: Path, ctx: ReadContext) -> dict[int, str]:
    cats: dict[int, str] = {}
    for i, c in enumerate(data["categories"]):
        try:
            cats[int(c["id"])] = str(c["name"])
        except (KeyError, TypeError, ValueError):
            ctx.fail(f"{path}: categories[{i}] lacks an integer 'id' or a 'name'")
    return cats


def _objects(data: dict, cats: dict[int, str], known: set[object], path: Path, ctx: ReadContext) -> dict:
    """image id -> list of RawObject (crowd annotations counted and left out)."""
    out: dict = {}
    for j, a in enumerate(data["annotations"]):
        where = f"annotations[{j}] (id {a.get('id', '?') if isinstance(a, dict) else '?'})"
        try:
            image_id, bbox, cat = a["image_id"], a["bbox"], int(a["category_id"])
            x, y, w, h = (float(v) for v in bbox)
        except (KeyError, TypeError, ValueError):
            ctx.fail(f"{path}: {where} lacks image_id, category_id or a 4-number bbox")
            continue
        if a.get("iscrowd", 0):
            ctx.report.n_crowd_skipped += 1
            continue
        if not isinstance(image_id, int | str) or image_id not in known:
            ctx.fail(f"{path}: {where} refers to image id {image_id!r}, which is not in 'images'")
            continue
        if cat not in cats:
            ctx.fail(f"{path}: {where} has category_id {cat}, which is not in 'categories'")
            continue
        out.setdefault(image_id, []).append(RawObject(cats[cat], x, y, x + w, y + h, where=where))
    return out


def _size(im: dict) -> tuple[int, int] | None:
    try:
        w, h = int(im["width"]), int(im["height"])
    except (KeyError, TypeError, ValueError):
        return None
    return (w, h) if w > 0 and h > 0 else None


def read_coco_json(root: Path, path: Path, split: str | None, ctx: ReadContext) -> list[RawItem]:
    data = _load(path, ctx)
    if data is None:
        return []
    cats = _categories(data, path, ctx)
    images: list[tuple[object, str, tuple[int, int] | None]] = []
    for i, im in enumerate(data["images"]):
        try:
            images.append((im["id"], str(im["file_name"]), _size(im)))
        except (KeyError, TypeError):
            ctx.fail(f"{path}: images[{i}] lacks 'id' or 'file_name'")
    objects = _objects(data, cats, {i for i, _, _ in images}, path, ctx)
    dirs = _image_dirs(root, path, split)
    items = []
    for image_id, file_name, size in images:
        image = next((d / file_name for d in dirs if (d / file_name).is_file()), dirs[0] / file_name)
        items.append(
            RawItem(
                image_path=image,
                ann_path=path,
                split=split,
                objects=objects.get(image_id, []),
                declared_size=size,
                group=split or path.stem,
            )
        )
    return items


def read_coco(root: Path, ctx: ReadContext, annotations: str | None = None) -> list[RawItem]:
    """One item per entry of ``images`` in each json."""
    items: list[RawItem] = []
    for path, split in find_jsons(root, annotations):
        if not path.is_file():
            raise DataError(f"{path}: COCO annotation file not found")
        items += read_coco_json(root, path, split, ctx)
    return items
