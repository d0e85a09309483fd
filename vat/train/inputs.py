"""What a translator's training reads, loaded and checked: the pseudo-labelled images, D, the val split.

``train``, ``unpaired``, ``ablate``, ``study`` and ``classify`` all read it through
:func:`load_inputs`, from the folders a :class:`vat.layout.Layout` names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from vat.errors import DataError
from vat.layout import REFERENCE, Layout


def label_file(task: str) -> str:
    """The pseudo-label table of ``data/pseudolabel/`` a training reads: soft labels or boxes."""
    return "labels.parquet" if task == "classify" else "boxes.parquet"


def val_key(task: str) -> str:
    """The val score a checkpoint is selected on: mAP@0.5, or accuracy for classification."""
    return "val_accuracy" if task == "classify" else "val_map50"


def input_files(task: str, layout: Layout) -> list[Path]:
    """The files a training's result depends on (the resume state's fingerprint hashes them)."""
    d_file = "classifier" if task == "classify" else "detector.pt"
    online = [] if task == "classify" else [REFERENCE]  # what train.labels: online reads
    labels = ["images.parquet", label_file(task), *online]
    files = [layout.pseudolabels / f for f in labels] + [layout.clean, layout.degraded, layout.restored]
    return files + sorted(layout.models.glob(d_file + "*"))


@dataclass
class Inputs:
    """What a translator's training reads, loaded and checked."""

    task: str
    classes: list[str]
    detector: object  # the frozen D, in its own class space (the loss)
    scorer: object  # D speaking the task's classes (validation, sample pictures)
    data: object  # vat.train.data.TrainingData
    spe: int  # steps per epoch
    val: list  # (degraded, restored, truth) records of the val split; empty with select: last


def load_inputs(task: str, batch: int, select: str, layout: Layout, dev: torch.device) -> Inputs:
    """The pseudo-labelled training images (at D's scale for detection), D, and the val split
    for selection (``select: val``)."""
    from vat.data.manifest import read_manifest
    from vat.eval.evaluation import load_vision_model, translation_triples
    from vat.train.data import load_classification_data, load_training_data, steps_per_epoch

    pl = layout.pseudolabels
    for p in (pl / "images.parquet", pl / label_file(task)):
        if not p.is_file():
            raise DataError(f"{p}: missing; run `vat pseudolabel` first")
    clean = read_manifest(layout.clean)
    detector = load_vision_model(task, layout.models, clean.classes, dev)
    scorer = detector
    if task != "classify":
        from vat.models.classmap import MappedDetector, load_class_map

        scorer = MappedDetector(detector, load_class_map(layout.models, detector.names, clean.classes))
    paths = (pl, layout.clean, layout.degraded, layout.restored)
    if task == "classify":
        data = load_classification_data(*paths)
    else:
        data = load_training_data(*paths, detector.imgsz if detector.resize else None)
    spe = steps_per_epoch(len(data.degraded), batch)
    if spe < 1:
        raise DataError(
            f"{pl / 'images.parquet'}: {len(data.degraded)} degraded training images, "
            f"fewer than train.batch={batch}"
        )
    truth = {r.image_id: r for r in clean.split("val")}
    use_val = select == "val" or (select == "auto" and truth)
    val = translation_triples(truth, layout.degraded, layout.restored, "val") if use_val else []
    if select == "val" and not val:
        raise DataError(f"{layout.clean}: no val split to select a checkpoint on; set train.select: last")
    return Inputs(task, clean.classes, detector, scorer, data, spe, val)
