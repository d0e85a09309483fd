"""Running a frozen vision model over a manifest and scoring it against ground truth."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from vat.data.images import same_size_batches, to_tensor
from vat.data.manifest import Record
from vat.eval.metrics import DetectionResult, evaluate_detections
from vat.io import load_rgb

# The usual mAP settings: a low score threshold so the whole precision-recall curve counts.
EVAL_CONF = 0.001
EVAL_IOU = 0.7


def load_vision_model(task: str, models: Path, classes: list[str], device: torch.device | str = "cpu"):
    """The frozen D that the train_detector stage left in ``models``.

    Detection: ``detector.pt``. Classification: ``classifier.json`` (a CLIP spec) or
    ``classifier.pt`` (a small CNN).
    """
    if task != "classify":
        from vat.models.detectors import load_detector

        return load_detector(models / "detector.pt", device=device)  # ultralytics or YOLOv5
    from vat.models.classifier import TorchClassifier
    from vat.models.clip import CLIPClassifier

    if (models / "classifier.json").is_file():
        spec = json.loads((models / "classifier.json").read_text())
        return CLIPClassifier(spec["model"], classes, weights=spec["weights"], prompts=spec["prompts"],
                              device=device)  # fmt: skip
    return TorchClassifier.load(models / "classifier.pt", device=device)


def scoring_model(task: str, models: Path, classes: list[str], device: torch.device | str = "cpu"):
    """D for scoring against the task's ground truth: a detector's predictions mapped to the
    task's classes (:class:`vat.models.classmap.MappedDetector`, by the map train_detector
    wrote beside it); a classifier as it is (its classes are the task's)."""
    model = load_vision_model(task, models, classes, device)
    if task == "classify":
        return model
    from vat.models.classmap import MappedDetector, load_class_map

    return MappedDetector(model, load_class_map(models, model.names, classes))


@torch.no_grad()
def run_records(
    predict: Callable[[torch.Tensor], list],
    records: Sequence[Record],
    batch: int = 16,
    device: torch.device | str = "cpu",
    track: Callable[[Iterable, str, int | None], Iterable] | None = None,
    label: str = "detect",
    load: Callable[[Path], np.ndarray] = load_rgb,
) -> list:
    """``predict`` on each record's image, batching consecutive same-size images; results in order.
    ``load`` reads an image file (:func:`vat.io.load_rgb`, or a :class:`vat.io.ImageCache`)."""
    groups = list(same_size_batches(records, batch))
    if track is not None:
        groups = track(groups, label, len(groups))
    out = []
    for group in groups:
        x = torch.stack([to_tensor(load(r.path)) for r in group]).to(device)  # (B, 3, H, W)
        out.append(predict(x))
    return out


def predict_records(
    detector,
    records: Sequence[Record],
    batch: int = 16,
    conf: float = EVAL_CONF,
    iou: float = EVAL_IOU,
    device: torch.device | str = "cpu",
    track: Callable[[Iterable, str, int | None], Iterable] | None = None,
    load: Callable[[Path], np.ndarray] = load_rgb,
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """D's detections on each record's image: (boxes (N, 4), scores (N,), classes (N,)) in order."""
    batches = run_records(
        lambda x: detector.predict(x, conf=conf, iou=iou), records, batch, device, track, load=load
    )
    return [
        (d.boxes.cpu().numpy(), d.scores.cpu().numpy(), d.classes.cpu().numpy())
        for dets in batches
        for d in dets
    ]


def detection_map(
    detector,
    records: Sequence[Record],
    truth: Sequence[Record],
    classes: list[str],
    interpolation: str = "voc_all_point",
    batch: int = 16,
    device: torch.device | str = "cpu",
    track=None,
) -> DetectionResult:
    """mAP@0.5 of ``detector`` on ``records``' images against ``truth``'s boxes (same order)."""
    dets = predict_records(detector, records, batch=batch, device=device, track=track)
    return evaluate_detections([t.boxes for t in truth], dets, classes, iou=0.5, interpolation=interpolation)


def translation_triples(
    truth: dict[str, Record], degraded_path: Path, restored_path: Path, split: str
) -> list[tuple[Record, Record, Record]]:
    """(degraded, restored, truth) records of every image of ``truth`` (one split), by id."""
    from vat.data.manifest import read_manifest
    from vat.errors import DataError

    low = {r.image_id: r for r in read_manifest(degraded_path).records if r.image_id in truth}
    rest = {r.image_id: r for r in read_manifest(restored_path).records if r.image_id in truth}
    for name, table, path in (("degraded", low, degraded_path), ("restored", rest, restored_path)):
        if len(table) != len(truth):
            raise DataError(f"{path}: has {len(table)} of the {len(truth)} {split} images ({name}); "
                            f"include {split} in its stage's splits")  # fmt: skip
    return [(low[i], rest[i], truth[i]) for i in sorted(truth)]


def translated_detections(
    detector,
    translator,
    triples: Sequence[tuple[Record, Record, Record]],
    device: torch.device | str = "cpu",
    bf16: bool = False,
    each: Callable[[tuple[Record, Record, Record], dict[str, torch.Tensor], int], None] | None = None,
    load: Callable | None = None,
) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], list]:
    """D's detections on T_A(G(I_R, I_LQ)) of each triple and its truth boxes, in order.

    ``each(triple, results, i)``, when given, sees every translated image (``results`` as
    :func:`vat.models.translate.translate_pairs` yields them, ``i`` the image's row in them);
    ``load`` reads the image files (translate_pairs').
    """
    from vat.models.translate import translate_pairs

    dets, truth_boxes = [], []
    for group, res in translate_pairs(translator, triples, device, bf16, load=load):
        found = detector.predict(res["out"], conf=EVAL_CONF, iou=EVAL_IOU)
        for i, (triple, d) in enumerate(zip(group, found, strict=True)):
            dets.append((d.boxes.cpu().numpy(), d.scores.cpu().numpy(), d.classes.cpu().numpy()))
            truth_boxes.append(triple[2].boxes)
            if each is not None:
                each(triple, res, i)
    return dets, truth_boxes


def translated_classifications(
    classifier,
    translator,
    triples: Sequence[tuple[Record, Record, Record]],
    device: torch.device | str = "cpu",
    bf16: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """D's class probabilities (N, K) on T_A(G(I_R, I_LQ)) of each triple, and the true labels
    (N,), in order (classification)."""
    from vat.models.translate import translate_pairs

    probs, labels = [], []
    for group, res in translate_pairs(translator, triples, device, bf16):
        probs.append(classifier.predict(res["out"]).probs.cpu().numpy())
        labels += [t[2].label for t in group]
    return np.concatenate(probs), np.array(labels)
