"""Training the VaT translator (Algorithm 1) from cached restorations and pseudo-labels.

R and D are frozen and the inputs are not augmented beyond a random crop, so what they
produce is computed once by the ``restore`` and ``pseudolabel`` stages and read from disk
here: a step never runs R, and runs D only inside the loss (on translated images).

Data: the degraded images VaT learns from (``domain == "degraded"`` in
``data/pseudolabel/images.parquet``) with their restorations and their kept pseudo-boxes,
and the clean images (``domain == "clean"``) with theirs. Only image *paths* are read from
the clean manifest, never its boxes or labels; the two sets are unpaired (disjoint halves
of the train split by default), and each step pairs them afresh at random. For
classification (:func:`load_classification_data`) each image carries instead its soft
pseudo-label (D's probabilities, ``labels.parquet``) and that label's loss weight (0 where
it was filtered).

Determinism: everything random in a step (which images, where the crops fall, lam) is
drawn from generators seeded by ``(seed, step)`` or ``(seed, epoch)``
(:func:`vat.seeding.item_seed`), never from a generator that carries state across steps.
So a run resumed from a checkpoint at step ``s`` draws exactly what the uninterrupted run
drew from step ``s`` on, and with the model, optimizer and scheduler states restored it
ends with the same weights (on CPU; CUDA kernels need not be deterministic).

Distributed: the global batch of step ``s`` is the same on every rank; rank ``r`` of ``W``
takes the contiguous slice ``[r B / W, (r + 1) B / W)`` of it, and the loss gathers the
translated images so D's loss is that of the global batch (see :mod:`vat.train.losses`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import Tensor

from vat.data.manifest import Record, read_manifest
from vat.errors import DataError
from vat.io import load_rgb
from vat.seeding import item_seed

__all__ = [
    "Batch",
    "CleanSample",
    "DegradedSample",
    "TrainingData",
    "crop_targets",
    "load_classification_data",
    "load_training_data",
    "make_batch",
    "steps_per_epoch",
]


@dataclass
class DegradedSample:
    image_id: str
    lq: Tensor  # (3, H, W) uint8, the degraded image
    restored: Tensor  # (3, H, W) uint8, R(I_LQ), same size
    boxes: Tensor  # (M, 4) float32 pixel xyxy, kept pseudo-boxes
    classes: Tensor  # (M,) int64
    weights: Tensor  # (M,) float32 in (0, 1]
    probs: Tensor | None = None  # classification: (K,) float32 soft pseudo-label (boxes then empty)
    label_weight: float = 0.0  # classification: its loss weight, 0 where the label was filtered


@dataclass
class CleanSample:
    image_id: str
    hq: Tensor  # (3, H, W) uint8
    boxes: Tensor
    classes: Tensor
    weights: Tensor
    probs: Tensor | None = None
    label_weight: float = 0.0


@dataclass
class TrainingData:
    degraded: list[DegradedSample]
    clean: list[CleanSample]


def _load(path: str) -> Tensor:
    return torch.from_numpy(np.array(load_rgb(path))).permute(2, 0, 1).contiguous()


def _boxes_by_image(boxes_path: Path, domain: str) -> dict[str, tuple[Tensor, Tensor, Tensor]]:
    table = pq.read_table(boxes_path).to_pandas()
    table = table[(table["domain"] == domain) & table["kept"] & (table["weight"] > 0)]
    out = {}
    for image_id, rows in table.groupby("image_id", sort=False):
        out[str(image_id)] = (
            torch.tensor(rows[["x1", "y1", "x2", "y2"]].to_numpy(np.float32)).reshape(-1, 4),
            torch.tensor(rows["cls"].to_numpy(np.int64)),
            torch.tensor(rows["weight"].to_numpy(np.float32)),
        )
    return out


def _rescale(image: Tensor, boxes: Tensor, long_side: int | None) -> tuple[Tensor, Tensor]:
    """``image`` (3, H, W) uint8 resized so its long side is ``long_side`` (area / bilinear), boxes alike."""
    h, w = image.shape[-2:]
    if long_side is None or max(h, w) == long_side:
        return image, boxes
    r = long_side / max(h, w)
    nh, nw = max(1, round(h * r)), max(1, round(w * r))
    x = torch.nn.functional.interpolate(
        image[None].float(), size=(nh, nw), mode="bilinear", align_corners=False, antialias=r < 1
    )
    scaled = boxes * boxes.new_tensor([nw / w, nh / h, nw / w, nh / h])
    return x[0].round().clamp(0, 255).to(torch.uint8), scaled


def _images(images_path: Path) -> dict[str, list[str]]:
    """Image ids of each domain in ``images.parquet`` (both must have some)."""
    if not images_path.is_file():
        raise DataError(f"{images_path}: missing; run `vat pseudolabel` first")
    images = pq.read_table(images_path).to_pylist()
    ids = {d: [str(r["image_id"]) for r in images if r["domain"] == d] for d in ("degraded", "clean")}
    for d, found in ids.items():
        if not found:
            raise DataError(f"{images_path}: no {d} training image")
    return ids


def _pixels(ids: dict[str, list[str]], images_path: Path, clean_path: Path, degraded_path: Path,
            restored_path: Path) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, Tensor]]:  # fmt: skip
    """Decoded (I_LQ, R(I_LQ)) of each degraded id and I_HQ of each clean id, uint8 (3, H, W)."""
    paths: dict[str, dict[str, Record]] = {}
    for name, path in (("clean", clean_path), ("degraded", degraded_path), ("restored", restored_path)):
        paths[name] = {r.image_id: r for r in read_manifest(path).records}

    def record(kind: str, image_id: str, path: Path) -> Record:
        if image_id not in paths[kind]:
            raise DataError(f"{path}: has no {kind} image {image_id!r} that {images_path} lists")
        return paths[kind][image_id]

    degraded = {}
    for i in ids["degraded"]:
        lq = _load(record("degraded", i, degraded_path).path)
        r = _load(record("restored", i, restored_path).path)
        if lq.shape != r.shape:
            raise DataError(
                f"{restored_path}: restored {i!r} is {tuple(r.shape)}, degraded {tuple(lq.shape)}"
            )
        degraded[i] = (lq, r)
    clean = {i: _load(record("clean", i, clean_path).path) for i in ids["clean"]}
    return degraded, clean


def load_training_data(
    pseudolabels: Path,
    clean_path: Path,
    degraded_path: Path,
    restored_path: Path,
    long_side: int | None = None,
) -> TrainingData:
    """The self-training images and their kept pseudo-boxes, decoded into memory (uint8).

    ``long_side``: resize every image (and its boxes) so its long side is this many pixels:
    D's input size, so crops reach D at the scale D sees whole images at (D's loss then runs
    without resizing). None keeps the images as they are.
    """
    images_path, boxes_path = pseudolabels / "images.parquet", pseudolabels / "boxes.parquet"
    for p in (images_path, boxes_path):
        if not p.is_file():
            raise DataError(f"{p}: missing; run `vat pseudolabel` first")
    ids = _images(images_path)
    pixels_lq, pixels_hq = _pixels(ids, images_path, clean_path, degraded_path, restored_path)
    empty = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    lq_boxes, hq_boxes = _boxes_by_image(boxes_path, "degraded"), _boxes_by_image(boxes_path, "clean")
    degraded = []
    for i in ids["degraded"]:
        lq, r = pixels_lq[i]
        boxes, classes, weights = lq_boxes.get(i, empty)
        lq, scaled = _rescale(lq, boxes, long_side)
        r, _ = _rescale(r, boxes, long_side)
        degraded.append(DegradedSample(i, lq, r, scaled, classes, weights))
    clean = []
    for i in ids["clean"]:
        boxes, classes, weights = hq_boxes.get(i, empty)
        hq, scaled = _rescale(pixels_hq[i], boxes, long_side)
        clean.append(CleanSample(i, hq, scaled, classes, weights))
    return TrainingData(degraded, clean)


def load_classification_data(
    pseudolabels: Path, clean_path: Path, degraded_path: Path, restored_path: Path
) -> TrainingData:
    """The self-training images (uint8, as they are) with their soft pseudo-labels and weights
    from ``labels.parquet`` (classification); an image whose label was filtered has weight 0."""
    images_path, labels_path = pseudolabels / "images.parquet", pseudolabels / "labels.parquet"
    if not labels_path.is_file():
        raise DataError(f"{labels_path}: missing; run `vat pseudolabel` with common.task: classify first")
    ids = _images(images_path)
    pixels_lq, pixels_hq = _pixels(ids, images_path, clean_path, degraded_path, restored_path)
    rows = pq.read_table(labels_path).to_pylist()
    labels = {(r["domain"], str(r["image_id"])): r for r in rows}
    empty = (torch.zeros(0, 4), torch.zeros(0, dtype=torch.long), torch.zeros(0))

    def label(domain: str, i: str) -> tuple[Tensor, float]:
        row = labels.get((domain, i))
        if row is None:
            raise DataError(f"{labels_path}: no {domain} label for image {i!r} that {images_path} lists")
        w = float(row["weight"]) if row["kept"] else 0.0
        return torch.tensor(row["probs"], dtype=torch.float32), w

    degraded = [DegradedSample(i, *pixels_lq[i], *empty, *label("degraded", i)) for i in ids["degraded"]]
    clean = [CleanSample(i, pixels_hq[i], *empty, *label("clean", i)) for i in ids["clean"]]
    return TrainingData(degraded, clean)


# -- batches ----------------------------------------------------------------------------


@dataclass
class Batch:
    lq: Tensor  # (B, 3, h, w) uint8
    restored: Tensor
    hq: Tensor
    targets_lq: list[dict[str, Tensor]]
    targets_hq: list[dict[str, Tensor]]
    ids_lq: list[str]
    ids_hq: list[str]


def steps_per_epoch(n_degraded: int, batch: int) -> int:
    """Full batches of degraded images per epoch (the last partial batch is dropped)."""
    return n_degraded // batch


def _order(n: int, seed: int, key: str, epoch: int) -> Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(item_seed(seed, key, epoch)))


def crop_targets(
    boxes: Tensor, classes: Tensor, weights: Tensor, x0: int, y0: int, w: int, h: int, min_area: float = 0.1
) -> dict[str, Tensor]:
    """Boxes shifted into a crop at (x0, y0) of size (w, h), clipped; a box keeps when at least
    ``min_area`` of its area and 2 px of width and height stay inside (ultralytics' rule)."""
    if boxes.numel() == 0:
        return {"boxes": boxes.reshape(0, 4), "classes": classes, "weights": weights}
    b = boxes - boxes.new_tensor([x0, y0, x0, y0])
    c = torch.stack([b[:, 0].clamp(0, w), b[:, 1].clamp(0, h), b[:, 2].clamp(0, w), b[:, 3].clamp(0, h)], 1)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    cw, ch = c[:, 2] - c[:, 0], c[:, 3] - c[:, 1]
    keep = (cw > 2) & (ch > 2) & (cw * ch > min_area * area)
    return {"boxes": c[keep], "classes": classes[keep], "weights": weights[keep]}


def _crop(image: Tensor, x0: int, y0: int, size: int, pad: int = 114) -> Tensor:
    """``size`` x ``size`` window at (x0, y0); padded bottom/right with ``pad`` where the image ends."""
    window = image[:, y0 : y0 + size, x0 : x0 + size]
    h, w = window.shape[-2:]
    if (h, w) == (size, size):
        return window
    out = torch.full((3, size, size), pad, dtype=image.dtype)
    out[:, :h, :w] = window
    return out


def _offset(n: int, size: int, gen: torch.Generator) -> int:
    return 0 if n <= size else int(torch.randint(0, n - size + 1, (1,), generator=gen))


def _targets(sample: DegradedSample | CleanSample, window: tuple[int, ...] | None) -> dict[str, Tensor]:
    """A sample's labels in ``window`` (x0, y0, w, h) of it (None: the whole image): its boxes
    moved into the crop, or (classification) its soft label and weight, which a crop keeps."""
    if sample.probs is not None:
        return {"probs": sample.probs, "weight": torch.tensor(sample.label_weight)}
    if window is None:
        return {"boxes": sample.boxes, "classes": sample.classes, "weights": sample.weights}
    return crop_targets(sample.boxes, sample.classes, sample.weights, *window)


def make_batch(data: TrainingData, step: int, batch: int, crop: int | None, seed: int) -> Batch:
    """The global batch of ``step``: a function of (data, step, batch, crop, seed) only."""
    spe = steps_per_epoch(len(data.degraded), batch)
    if spe < 1:
        raise DataError(f"{len(data.degraded)} degraded training images are fewer than train.batch={batch}")
    epoch, j = divmod(step, spe)
    lq_order = _order(len(data.degraded), seed, "train-degraded", epoch)
    hq_order = _order(len(data.clean), seed, "train-clean", epoch)
    lq_idx = lq_order[j * batch : (j + 1) * batch].tolist()
    hq_idx = [int(hq_order[(j * batch + k) % len(data.clean)]) for k in range(batch)]
    gen = torch.Generator().manual_seed(item_seed(seed, "train-crop", step))
    lqs, rs, hqs, t_lq, t_hq = [], [], [], [], []
    for a, b in zip(lq_idx, hq_idx, strict=True):
        d, c = data.degraded[a], data.clean[b]
        if crop is None:
            if d.lq.shape != c.hq.shape:
                raise DataError(
                    f"train.crop is null but images differ in size ({d.image_id} {tuple(d.lq.shape[1:])}, "
                    f"{c.image_id} {tuple(c.hq.shape[1:])}); set train.crop to a side in px"
                )
            lqs.append(d.lq), rs.append(d.restored), hqs.append(c.hq)
            t_lq.append(_targets(d, None))
            t_hq.append(_targets(c, None))
            continue
        h, w = d.lq.shape[-2:]
        x0, y0 = _offset(w, crop, gen), _offset(h, crop, gen)
        lqs.append(_crop(d.lq, x0, y0, crop)), rs.append(_crop(d.restored, x0, y0, crop))
        t_lq.append(_targets(d, (x0, y0, min(crop, w - x0), min(crop, h - y0))))
        h, w = c.hq.shape[-2:]
        x0, y0 = _offset(w, crop, gen), _offset(h, crop, gen)
        hqs.append(_crop(c.hq, x0, y0, crop))
        t_hq.append(_targets(c, (x0, y0, min(crop, w - x0), min(crop, h - y0))))
    return Batch(
        torch.stack(lqs),
        torch.stack(rs),
        torch.stack(hqs),
        t_lq,
        t_hq,
        [data.degraded[a].image_id for a in lq_idx],
        [data.clean[b].image_id for b in hq_idx],
    )
