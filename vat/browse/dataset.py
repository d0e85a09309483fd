"""The pseudo-labels, with their uncertainties, as a FiftyOne dataset (``vat browse``).

Not a DVC stage: it only reads. The Parquet files stay the source of truth; the FiftyOne
dataset is a disposable view of them, rebuilt (and replaced) on every run.

Reads:   data/pseudolabel/boxes.parquet    one row per pseudo-label box (written by pseudolabel)
         data/pseudolabel/images.parquet   the self-training images and their domain
         data/prepare/manifest.parquet     clean images I_HQ and ground-truth boxes
         data/degrade/manifest.parquet     degraded images I_LQ (same ids)
         data/restore/manifest.parquet     restored images R(I_LQ) (same ids)
Writes:  only the FiftyOne database (FIFTYONE_DATABASE_DIR; vat sets it to
         ~/.cache/vat/fiftyone-db unless already set): one persistent dataset, by name.
Params:  none (CLI options only).

The dataset is grouped, one group per image id, with slices ``degraded`` (the default),
``restored`` and ``clean``, so the App shows the three versions of a scene side by side.
Sample fields:

- ``ground_truth``: the manifest's boxes (VOC ``difficult`` kept as an attribute).
- ``pseudo``: the kept pseudo-labels; ``pseudo_all``: every box, with ``kept`` set.
  Each detection carries confidence, aleatoric, epistemic, total, weight, source, kept.
  Domain ``degraded`` labels (boxes for I_LQ, merged from D on I_LQ and on R(I_LQ)) sit on
  the ``degraded`` slice and, for viewing, on ``restored`` too (same frame); domain
  ``clean`` labels sit on the ``clean`` slice. A sample whose image was not pseudo-labelled
  in that domain has no ``pseudo`` field (an empty one means "labelled, no box").
- ``image_id``, ``split``, ``domain`` (the pseudo-label domain of the slice),
  ``pseudolabelled``.
- ``eval_tp`` / ``eval_fp`` / ``eval_fn``: ``pseudo`` against ``ground_truth`` at IoU 0.5
  (FiftyOne's COCO-style matching, class-wise), on the ``degraded`` and ``clean`` slices
  only, so no box is counted twice; ``eval_all_*`` the same for ``pseudo_all``, so the
  filter's effect is one comparison away.

Saved views (the App's view menu): ``pseudolabelled`` (the degraded and clean slices,
labelled images only), ``eval_patches`` and ``eval_all_patches`` (their TP / FP / FN
patches). ``dataset.to_evaluation_patches("eval")`` works too, on the active slice; there
the ground truth of images not pseudo-labelled in the slice's domain appears untyped.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from vat.data.manifest import Manifest, Record, read_manifest
from vat.errors import DataError
from vat.layout import MAIN

if TYPE_CHECKING:  # FiftyOne is imported lazily: importing it costs seconds on every `vat` call
    import fiftyone as fo

PSEUDO_DIR = MAIN.pseudolabels
MANIFESTS = {"degraded": MAIN.degraded, "restored": MAIN.restored, "clean": MAIN.clean}
SLICES = ("degraded", "restored", "clean")  # group slices; the first present is the default
WRITER = {"degraded": "degrade", "restored": "restore", "clean": "prepare"}  # stage writing each manifest
SLICE_DOMAIN = {"degraded": "degraded", "restored": "degraded", "clean": "clean"}  # whose labels it shows
EVAL_SLICES = ("degraded", "clean")  # one slice per pseudo-label domain: nothing counted twice
IOU = 0.5
FIELD_COLORS = {"ground_truth": "#2ecc40", "pseudo": "#ff6d04", "pseudo_all": "#7f8cff"}

BOX_COLUMNS = (
    "image_id",
    "domain",
    "source",
    "cls",
    "confidence",
    "x1",
    "y1",
    "x2",
    "y2",
    "aleatoric",
    "epistemic",
    "total",
    "weight",
    "kept",
)
IMAGE_COLUMNS = ("image_id", "domain", "split")
DOMAINS = ("degraded", "clean")
SOURCES = ("degraded", "restored", "clean")
FLOAT_ATTRS = ("aleatoric", "epistemic", "total", "weight")


# ---------------------------------------------------------------------------------------------
# reading and checking the Parquet inputs (no FiftyOne needed)


def _need(path: Path, stage: str) -> None:
    if not path.is_file():
        raise DataError(f"{path}: not found; the `{stage}` stage writes it (run `vat {stage}` first)")


def _read_table(path: Path, columns: tuple[str, ...]) -> list[dict]:
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from e
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise DataError(f"{path}: lacks columns {missing}")
    return table.select(list(columns)).to_pylist()


def read_inputs(
    pseudo_dir: Path, manifests: dict[str, Path]
) -> tuple[list[dict], list[dict], dict[str, Manifest]]:
    """Read and check boxes.parquet, images.parquet and the manifests (DataError on any problem)."""
    unknown = set(manifests) - set(SLICES)
    if unknown:
        raise ValueError(f"manifests: unknown slices {sorted(unknown)}; use {SLICES}")
    boxes_path, images_path = Path(pseudo_dir) / "boxes.parquet", Path(pseudo_dir) / "images.parquet"
    if not boxes_path.is_file() and (Path(pseudo_dir) / "labels.parquet").is_file():
        raise DataError(f"{boxes_path}: not found; browse shows detection pseudo-labels, not labels.parquet")
    for path in (boxes_path, images_path):
        _need(path, "pseudolabel")
    for slice_, path in manifests.items():
        _need(Path(path), WRITER[slice_])
    boxes = _read_table(boxes_path, BOX_COLUMNS)
    images = _read_table(images_path, IMAGE_COLUMNS)
    loaded = {s: read_manifest(p) for s, p in manifests.items()}
    _check(boxes, images, boxes_path, images_path, loaded, manifests)
    return boxes, images, loaded


def _check(boxes, images, boxes_path, images_path, loaded, paths) -> None:
    for path, rows, column, allowed in (
        (boxes_path, boxes, "domain", DOMAINS),
        (boxes_path, boxes, "source", SOURCES),
        (images_path, images, "domain", DOMAINS),
    ):
        bad = sorted({r[column] for r in rows} - set(allowed))
        if bad:
            raise DataError(f"{path}: column {column} has values {bad}; expected {allowed}")
    # every labelled (image, domain) must have its image in the manifest of that domain's slice
    for path, rows in ((boxes_path, boxes), (images_path, images)):
        for domain in DOMAINS:
            slice_ = domain  # the slice holding the image the labels are for
            if slice_ not in loaded:
                continue
            known = {r.image_id for r in loaded[slice_].records}
            absent = sorted({r["image_id"] for r in rows if r["domain"] == domain} - known)
            if absent:
                raise DataError(
                    f"{path}: {len(absent)} {domain} image ids are not in {paths[slice_]} "
                    f"(first: {absent[:3]}); were the inputs made by different runs?"
                )


def _classes(loaded: dict[str, Manifest], paths: dict[str, Path]) -> list[str]:
    named = [(paths[s], m.classes) for s, m in loaded.items()]
    if not named:
        raise ValueError("manifests: give at least one manifest, or the class list")
    first_path, first = named[0]
    for path, classes in named[1:]:
        if classes != first:
            raise DataError(f"{path}: class list {classes} differs from {first_path}'s {first}")
    return list(first)


# ---------------------------------------------------------------------------------------------
# the FiftyOne dataset


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The library prints nothing: hush FiftyOne's INFO logging (banners, "Evaluating...")."""
    log = logging.getLogger("fiftyone")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        yield
    finally:
        log.setLevel(level)


def _abs(path: str) -> str:
    """Manifest paths are relative to the repo root (the working directory) or absolute."""
    return str(Path(path).absolute())


def _rel_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> list[float]:
    """Pixel x1 y1 x2 y2 -> FiftyOne's relative [x, y, w, h] in [0, 1]."""
    return [x1 / width, y1 / height, (x2 - x1) / width, (y2 - y1) / height]


def _ground_truth(record: Record, classes: list[str]):
    import fiftyone as fo

    if record.label >= 0:  # an image-level label (classification manifest): no boxes to show
        return None
    return fo.Detections(
        detections=[
            fo.Detection(
                label=classes[b.cls],
                bounding_box=_rel_box(b.x1, b.y1, b.x2, b.y2, record.width, record.height),
                difficult=bool(b.difficult),
            )
            for b in record.boxes
        ]
    )


def _pseudo(rows: list[dict], classes: list[str], width: int, height: int, kept_only: bool):
    import fiftyone as fo

    dets = []
    for r in rows:
        if kept_only and not r["kept"]:
            continue
        dets.append(
            fo.Detection(
                label=classes[r["cls"]],
                bounding_box=_rel_box(r["x1"], r["y1"], r["x2"], r["y2"], width, height),
                confidence=float(r["confidence"]),
                source=r["source"],
                kept=bool(r["kept"]),
                **{k: float(r[k]) for k in FLOAT_ATTRS},
            )
        )
    return fo.Detections(detections=dets)


def pseudo_label_names(models: Path) -> list[str] | None:
    """The label of each of D's class ids by the class map beside D (the task class it maps to,
    else D's own name); None where D's classes are the task's."""
    import json

    path = Path(models) / "class_map.json"
    if not path.is_file():
        return None
    cm = json.loads(path.read_text())
    return [cm["task_classes"][t] if t >= 0 else d for d, t in zip(cm["d_names"], cm["to_task"], strict=True)]


def build_dataset(
    name: str,
    pseudo_dir: Path = PSEUDO_DIR,
    manifests: dict[str, Path] | None = None,
    classes: list[str] | None = None,
    overwrite: bool = True,
    track=None,
    pseudo_names: list[str] | None = None,
) -> fo.Dataset:
    """Build the persistent grouped FiftyOne dataset ``name`` from the Parquet files.

    ``manifests`` maps slice (``degraded`` | ``restored`` | ``clean``) to manifest; a slice
    left out is not shown. ``classes`` overrides the manifests' class list. ``pseudo_names``:
    the label of each of D's class ids (a D with its own classes: the task class it maps to,
    else its own name; :func:`pseudo_label_names`); default: the task's classes. The dataset is
    built under a temporary name and renamed over ``name`` only when complete, so a failed
    build leaves the previous one intact. With ``overwrite=False`` an existing dataset of
    that name is a DataError. Never writes the Parquet files.
    """
    track = track or (lambda items, *_: items)
    manifests = dict(MANIFESTS if manifests is None else manifests)
    boxes, images, loaded = read_inputs(Path(pseudo_dir), manifests)
    classes = list(classes) if classes is not None else _classes(loaded, manifests)
    names = list(pseudo_names) if pseudo_names is not None else classes
    bad = sorted({r["cls"] for r in boxes if not 0 <= r["cls"] < len(names)})
    if bad:
        raise DataError(
            f"{Path(pseudo_dir) / 'boxes.parquet'}: class indices {bad} outside 0..{len(names) - 1}"
        )

    import fiftyone as fo

    if fo.dataset_exists(name) and not overwrite:
        raise DataError(f"FiftyOne dataset {name!r} exists; rebuild it with overwrite=True")

    samples, slices = _samples(boxes, images, loaded, (classes, names), track)
    missing = [s.filepath for s in samples if not Path(s.filepath).is_file()]
    if missing:
        raise DataError(f"{missing[0]}: image not found ({len(missing)} missing in all)")

    return _publish(name, samples, slices, classes, {
        "pseudo_dir": str(pseudo_dir), "manifests": {s: str(p) for s, p in manifests.items()},
        "classes": classes, "iou": IOU,
    })  # fmt: skip


def _samples(boxes: list[dict], images: list[dict], loaded: dict[str, Manifest], names: tuple, track):
    """One FiftyOne sample per (image, slice), grouped by image id; and the slices present.
    ``names``: (the task's classes, the label of each of D's class ids)."""
    classes, pseudo_names = names
    import fiftyone as fo

    by_key: dict[tuple[str, str], list[dict]] = defaultdict(list)  # (image_id, domain) -> boxes
    for r in boxes:
        by_key[r["image_id"], r["domain"]].append(r)
    labelled = {(r["image_id"], r["domain"]) for r in images} | set(by_key)
    split_of = {r["image_id"]: r["split"] for r in images}
    ids = sorted({image_id for image_id, _ in labelled})
    records = {s: {r.image_id: r for r in m.records} for s, m in loaded.items()}
    slices = [s for s in SLICES if s in loaded]

    samples = []
    for image_id in track(ids, "browse: samples", len(ids)):
        group = fo.Group()
        for slice_ in slices:
            rec = records[slice_].get(image_id)
            if rec is None or (slice_ == "clean" and rec.domain == "degraded"):
                continue  # a photograph given degraded has no clean picture to show
            domain = SLICE_DOMAIN[slice_]
            # labels live in the frame of the image they were made for (I_LQ for both
            # degraded and restored); relative coordinates carry them onto R(I_LQ)
            frame = records.get(domain, records[slice_]).get(image_id, rec)
            sample = fo.Sample(
                filepath=_abs(rec.path),
                group=group.element(slice_),
                metadata=fo.ImageMetadata(width=rec.width, height=rec.height),
                image_id=image_id,
                split=split_of.get(image_id, rec.split),
                domain=domain,
                pseudolabelled=(image_id, domain) in labelled,
                ground_truth=_ground_truth(rec, classes),
            )
            if (image_id, domain) in labelled:
                rows = by_key.get((image_id, domain), [])
                sample["pseudo"] = _pseudo(rows, pseudo_names, frame.width, frame.height, kept_only=True)
                sample["pseudo_all"] = _pseudo(rows, pseudo_names, frame.width, frame.height, kept_only=False)
            samples.append(sample)
    return samples, slices


def _publish(name: str, samples: list, slices: list[str], classes: list[str], info: dict) -> fo.Dataset:
    """The samples as the persistent dataset ``name``: built under a temporary name, evaluated,
    its views saved, then renamed over any old one."""
    import fiftyone as fo

    with _quiet():
        tmp = fo.Dataset(f"{name}.building-{uuid.uuid4().hex[:8]}")  # not persistent until renamed
        try:
            tmp.add_group_field("group", default=slices[0] if slices else SLICES[0])
            for field in ("pseudo", "pseudo_all", "ground_truth"):
                tmp.add_sample_field(field, fo.EmbeddedDocumentField, embedded_doc_type=fo.Detections)
            if samples:
                tmp.add_samples(samples, dynamic=True, progress=False)
            tmp.add_dynamic_sample_fields()  # custom detection attributes into the schema / sidebar
            _evaluate(tmp)
            _save_views(tmp)
            tmp.default_classes = classes
            # the App opens with ground truth and kept pseudo-labels drawn, each in one colour
            tmp.app_config.active_fields = fo.ActiveFields(paths=["ground_truth", "pseudo"])
            tmp.app_config.color_scheme = fo.ColorScheme(
                color_by="field",
                fields=[{"path": f, "fieldColor": c} for f, c in FIELD_COLORS.items()],
            )
            tmp.description = "vat pseudo-labels (rebuilt from Parquet by `vat browse`; do not edit)"
            tmp.info = info
            if fo.dataset_exists(name):
                fo.delete_dataset(name)
            tmp.name = name
            tmp.persistent = True
        except BaseException:
            tmp.delete()
            raise
    return tmp


def _evaluate(dataset: fo.Dataset) -> None:
    slices = [s for s in EVAL_SLICES if s in dataset.group_slices]
    if not slices:
        return
    view = dataset.select_group_slices(slices).exists("pseudo").exists("ground_truth")
    if len(view) == 0:
        return
    for field, key in (("pseudo", "eval"), ("pseudo_all", "eval_all")):
        view.evaluate_detections(field, gt_field="ground_truth", eval_key=key, iou=IOU, progress=False)


def _save_views(dataset: fo.Dataset) -> None:
    """Saved views (the App's view menu): the labelled images, and the TP / FP / FN patches."""
    from fiftyone import ViewField as F

    slices = [s for s in EVAL_SLICES if s in dataset.group_slices]
    if not slices:
        return
    # one slice per domain, labelled images only: an image's ground truth in a domain it was
    # not pseudo-labelled in would show up as an untyped patch
    labelled = dataset.select_group_slices(slices).match(F("pseudolabelled"))
    dataset.save_view("pseudolabelled", labelled, description="images pseudo-labelled in their domain")
    evals = dataset.list_evaluations()
    for key, what in (("eval", "kept pseudo-labels"), ("eval_all", "all pseudo-labels")):
        if key in evals:
            patches = labelled.to_evaluation_patches(key)
            dataset.save_view(f"{key}_patches", patches, description=f"TP / FP / FN of the {what}")


def summarize(dataset: fo.Dataset) -> dict:
    """Samples per slice; pseudo-labels kept / all; TP / FP / FN of kept and of all boxes."""
    present = dataset.group_slices or []
    flat = dataset.select_group_slices(present) if present else dataset.limit(0)
    per_slice = flat.count_values("group.name") if present else {}
    one_per_domain = [s for s in EVAL_SLICES if s in present]  # nothing counted twice
    labelled = dataset.select_group_slices(one_per_domain) if one_per_domain else flat
    schema = dataset.get_field_schema()
    out = {
        "samples": len(flat),
        "per_slice": {s: per_slice.get(s, 0) for s in present},
        "kept": labelled.count("pseudo.detections"),
        "all": labelled.count("pseudo_all.detections"),
    }
    for key in ("eval", "eval_all"):
        out[key] = {
            m: int(labelled.sum(f"{key}_{m}") or 0) if f"{key}_{m}" in schema else 0
            for m in ("tp", "fp", "fn")
        }
    return out
