"""The manifest: one Parquet table describing a labelled image set.

Every reader (embedded generator, VOC, YOLO, COCO, ExDark, CIFAR-10) produces it and
every later stage reads it. One row per image:

=============  ==============================  ==========================================
column         type                            meaning
=============  ==============================  ==========================================
image_id       string                          unique id within the manifest
path           string                          RGB image file (relative to the repo root
                                               or absolute)
width          int32                           image width in pixels (after EXIF rotation)
height         int32                           image height in pixels
split          string                          ``train`` | ``val`` | ``test``
source         string                          reader that produced the row
label          int32                           image-level class index, -1 for detection
depth_path     string (nullable)               per-pixel depth ``.npy`` (embedded data)
boxes          list<struct<cls: int32,         boxes in pixels, x1 y1 x2 y2, class index
               x1, y1, x2, y2: float32,        into the manifest's class list; VOC's
               difficult: bool>>               ``difficult`` flag kept for evaluation
domain         string                          ``""`` (a clean image, degraded later by the
                                               pipeline), or for photographs given as they
                                               are: ``degraded`` (already degraded) or
                                               ``clean`` (a training image seen clean only)
=============  ==============================  ==========================================

The class list is stored in the Parquet schema metadata under ``vat.classes`` (JSON), so
class indices never travel without their names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from vat.errors import DataError
from vat.io import atomic_path

SPLITS = ("train", "val", "test")

BOX_TYPE = pa.struct(
    [
        ("cls", pa.int32()),
        ("x1", pa.float32()),
        ("y1", pa.float32()),
        ("x2", pa.float32()),
        ("y2", pa.float32()),
        ("difficult", pa.bool_()),
    ]
)

SCHEMA = pa.schema(
    [
        ("image_id", pa.string()),
        ("path", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("split", pa.string()),
        ("source", pa.string()),
        ("label", pa.int32()),
        ("depth_path", pa.string()),
        ("boxes", pa.list_(BOX_TYPE)),
        ("domain", pa.string()),
    ]
)
DOMAINS = ("", "degraded", "clean")


@dataclass(frozen=True)
class Box:
    """One box in pixels, x1 y1 x2 y2 (x2 > x1, y2 > y1), class index into the class list."""

    cls: int
    x1: float
    y1: float
    x2: float
    y2: float
    difficult: bool = False


@dataclass
class Record:
    """One manifest row."""

    image_id: str
    path: str
    width: int
    height: int
    split: str
    source: str
    label: int = -1
    depth_path: str | None = None
    boxes: list[Box] = field(default_factory=list)
    domain: str = ""  # "": clean, degraded by the pipeline; "degraded" / "clean": given as such


@dataclass
class Manifest:
    """Rows plus the class list their indices refer to."""

    records: list[Record]
    classes: list[str]

    def split(self, name: str) -> list[Record]:
        return [r for r in self.records if r.split == name]


def check(manifest: Manifest, where: str = "manifest") -> None:
    """Raise DataError if ids repeat, splits are unknown or boxes are invalid."""
    seen: set[str] = set()
    n = len(manifest.classes)
    for r in manifest.records:
        if r.image_id in seen:
            raise DataError(f"{where}: image_id {r.image_id!r} appears twice")
        seen.add(r.image_id)
        if r.split not in SPLITS:
            raise DataError(f"{where}: image {r.image_id!r} has unknown split {r.split!r}")
        if r.domain not in DOMAINS:
            raise DataError(f"{where}: image {r.image_id!r} has unknown domain {r.domain!r}")
        if not -1 <= r.label < n:
            raise DataError(f"{where}: image {r.image_id!r} has label {r.label} outside 0..{n - 1}")
        for b in r.boxes:
            if not 0 <= b.cls < n:
                raise DataError(f"{where}: image {r.image_id!r} has box class {b.cls} outside 0..{n - 1}")
            if not (0 <= b.x1 < b.x2 <= r.width and 0 <= b.y1 < b.y2 <= r.height):
                raise DataError(
                    f"{where}: image {r.image_id!r} has box {(b.x1, b.y1, b.x2, b.y2)} "
                    f"outside its {r.width}x{r.height} frame or of zero area"
                )


def to_table(manifest: Manifest) -> pa.Table:
    rows = {name: [] for name in SCHEMA.names}
    for r in manifest.records:
        rows["image_id"].append(r.image_id)
        rows["path"].append(r.path)
        rows["width"].append(r.width)
        rows["height"].append(r.height)
        rows["split"].append(r.split)
        rows["source"].append(r.source)
        rows["label"].append(r.label)
        rows["depth_path"].append(r.depth_path)
        rows["boxes"].append([b.__dict__ for b in r.boxes])
        rows["domain"].append(r.domain)
    meta = {b"vat.classes": json.dumps(list(manifest.classes)).encode()}
    return pa.Table.from_pydict(rows, schema=SCHEMA.with_metadata(meta))


def write_manifest(manifest: Manifest, path: str | Path) -> None:
    """Validate and write atomically."""
    check(manifest, str(path))
    with atomic_path(path) as tmp:
        pq.write_table(to_table(manifest), tmp)


def read_manifest(path: str | Path) -> Manifest:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: manifest not found (run the stage that writes it first)")
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet manifest ({e})") from e
    meta = table.schema.metadata or {}
    if b"vat.classes" not in meta:
        raise DataError(f"{path}: Parquet file has no vat.classes metadata; not a vat manifest")
    missing = set(SCHEMA.names) - set(table.column_names) - {"domain"}  # domain: absent in older ones
    if missing:
        raise DataError(f"{path}: manifest lacks columns {sorted(missing)}")
    classes = json.loads(meta[b"vat.classes"])
    records = [
        Record(
            image_id=row["image_id"],
            path=row["path"],
            width=row["width"],
            height=row["height"],
            split=row["split"],
            source=row["source"],
            label=row["label"],
            depth_path=row["depth_path"],
            boxes=[Box(**b) for b in row["boxes"]],
            domain=row.get("domain") or "",
        )
        for row in table.to_pylist()
    ]
    return Manifest(records=records, classes=classes)
