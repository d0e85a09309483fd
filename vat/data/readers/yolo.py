"""YOLO (Ultralytics / darknet): ``data.yaml`` + images + one ``.txt`` per image.

``data.yaml`` gives ``names`` (a list, or a dict id -> name, e.g. 1-based COCO ids),
``path`` (base folder; relative to the yaml's folder) and ``train`` / ``val`` / ``test``,
each a folder, a ``.txt`` list of image paths, or a list of those. The label file of an
image is found as Ultralytics does: the last ``/images/`` of its path replaced by
``/labels/`` and the suffix by ``.txt``. Lines are ``class cx cy w h`` normalised to the
image (after EXIF rotation); polygon lines ``class x1 y1 x2 y2 ...`` become their
bounding box. A missing or empty label file is an image with no boxes.

Without a yaml: ``classes.txt`` (or one ``*.names`` file) in the root, one name per line,
and images under ``images/{train,val,test}`` (splits) or ``images/`` or the root.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import yaml

from vat.config import yaml_problem
from vat.data.readers.common import RawItem, RawObject, ReadContext, find_images, read_lines, resolve_under
from vat.errors import DataError
from vat.io import read_text


def label_path(image: Path) -> Path:
    """Ultralytics' rule: .../images/x.jpg -> .../labels/x.txt (else x.txt beside the image)."""
    sa, sb = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    s = str(image)
    return Path(sb.join(s.rsplit(sa, 1)) if sa in s else s).with_suffix(".txt")


def parse_yolo_txt(
    path: Path, names: dict[int, str], names_from: Path, ctx: ReadContext
) -> list[RawObject] | None:
    """Objects of one label file (normalised corners); [] when absent or empty."""
    if not path.is_file():
        return []
    try:
        text = read_text(path)
    except DataError as e:
        ctx.fail(str(e))
        return None
    objects: list[RawObject] = []
    for n, line in enumerate(text.splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        try:
            vals = [float(p) for p in parts]
        except ValueError:
            ctx.fail(f"{path}: line {n}: expected numbers 'class cx cy w h', got {line.strip()!r}")
            continue
        if len(vals) == 5:
            _, cx, cy, w, h = vals
            corners = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
        elif len(vals) >= 7 and len(vals) % 2 == 1:  # polygon: class x1 y1 x2 y2 x3 y3 ...
            xs, ys = vals[1::2], vals[2::2]
            corners = (min(xs), min(ys), max(xs), max(ys))
        else:
            ctx.fail(f"{path}: line {n}: expected 5 numbers 'class cx cy w h', got {len(vals)}")
            continue
        cls = vals[0]
        if not (math.isfinite(cls) and cls.is_integer() and int(cls) in names):
            ctx.fail(f"{path}: line {n}: class id {parts[0]} is not among the names of {names_from}")
            continue
        objects.append(RawObject(names[int(cls)], *corners, normalized=True, where=f"line {n}"))
    return objects


def _names(value: object, where: Path) -> dict[int, str]:
    if isinstance(value, list):
        return {i: str(n) for i, n in enumerate(value)}
    if isinstance(value, dict):
        try:
            return {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: names: class ids must be integers ({e})") from e
    raise DataError(f"{where}: 'names' must be a list or a mapping of id -> name, got {value!r}")


def _load_yaml(path: Path) -> dict:
    try:
        cfg = yaml.safe_load(read_text(path))
    except yaml.YAMLError as e:
        raise DataError(yaml_problem(path, e)) from e
    if not isinstance(cfg, dict) or "names" not in cfg:
        raise DataError(f"{path}: expected a mapping with 'names' (and train/val/test)")
    return cfg


def _base(cfg: dict, yaml_path: Path) -> Path:
    given = cfg.get("path")
    if not given:
        return yaml_path.parent
    p = Path(str(given))
    if p.is_absolute():
        return p
    return yaml_path.parent / p if (yaml_path.parent / p).exists() or not p.exists() else p


def _entry_images(base: Path, value: str, yaml_path: Path, ctx: ReadContext) -> list[Path]:
    """Images of one train/val/test entry: a folder or a .txt list of paths."""
    p = Path(value) if Path(value).is_absolute() else base / value
    if p.is_dir():
        return find_images(p, ctx.convert_dir)
    if p.is_file() and p.suffix == ".txt":
        out = []
        for n, line in read_lines(p, ctx):
            line = line.strip()
            if not line:
                continue
            q = Path(line) if Path(line).is_absolute() else base / line.removeprefix("./")
            if not q.is_file():
                ctx.fail(f"{p}: line {n}: names image {q}, which does not exist")
                continue
            out.append(q)
        return out
    raise DataError(f"{yaml_path}: split entry {value!r} -> {p} is neither a folder nor a .txt list")


def _from_yaml(yaml_path: Path, ctx: ReadContext) -> tuple[list[tuple[Path, str | None]], dict[int, str]]:
    cfg = _load_yaml(yaml_path)
    names = _names(cfg["names"], yaml_path)
    base = _base(cfg, yaml_path)
    found: list[tuple[Path, str | None]] = []
    for split in ("train", "val", "test"):
        value = cfg.get(split)
        for v in value if isinstance(value, list) else ([value] if value else []):
            found += [(p, split) for p in _entry_images(base, str(v), yaml_path, ctx)]
    return found, names


def _from_folders(root: Path, ctx: ReadContext) -> tuple[list[tuple[Path, str | None]], dict[int, str], Path]:
    lists = [root / "classes.txt"] if (root / "classes.txt").is_file() else sorted(root.glob("*.names"))
    if len(lists) != 1:
        raise DataError(
            f"{root}: no data.yaml, and not exactly one classes.txt or *.names file for the class names"
        )
    names = {i: n.strip() for i, n in enumerate(read_text(lists[0]).splitlines()) if n.strip()}
    images = root / "images" if (root / "images").is_dir() else root
    split_dirs = [s for s in ("train", "val", "test") if (images / s).is_dir()]
    if split_dirs:
        found = [(p, s) for s in split_dirs for p in find_images(images / s, ctx.convert_dir)]
    else:
        found = [(p, None) for p in find_images(images, ctx.convert_dir)]
    return found, names, lists[0]


def find_yaml(root: Path, annotations: str | None) -> Path | None:
    if annotations:
        return resolve_under(root, annotations)
    if root.is_file():
        return root
    for name in ("data.yaml", "data.yml", "dataset.yaml"):
        if (root / name).is_file():
            return root / name
    yamls = sorted(root.glob("*.yaml"))
    return yamls[0] if len(yamls) == 1 else None


def read_yolo(root: Path, ctx: ReadContext, annotations: str | None = None) -> list[RawItem]:
    """One item per image listed by data.yaml (or found in the folders)."""
    yaml_path = find_yaml(root, annotations)
    if yaml_path is not None:
        found, names = _from_yaml(yaml_path, ctx)
        names_from = yaml_path
    else:
        found, names, names_from = _from_folders(root, ctx)
    items: list[RawItem] = []
    seen: dict[Path, str | None] = {}
    for image, split in found:
        if image in seen:
            ctx.fail(f"{image}: listed in split {seen[image]} and again in {split}")
            continue
        seen[image] = split
        txt = label_path(image)
        objects = parse_yolo_txt(txt, names, names_from, ctx)
        if objects is None:
            continue
        items.append(
            RawItem(
                image_path=image, ann_path=txt, split=split, objects=objects, group=split or image.parent.name
            )
        )
    return items
