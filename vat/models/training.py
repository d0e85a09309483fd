"""Training the frozen vision model D for the embedded default (VaT never trains D).

Detection: a small YOLO from its yaml on the clean train split through ultralytics' own
trainer (offline: no weights, fonts or datasets are fetched), the epoch selected on the val
split (ultralytics' best.pt, by its val fitness). Classification: a small CNN on the clean
crops, or an open_clip model wrapped (``clip:<model name>`` with a local weights file).
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from vat.data.manifest import Manifest
from vat.errors import ParamsError
from vat.io import load_rgb, write_json
from vat.seeding import item_seed


@dataclass(frozen=True)
class TrainDetectorParams:
    """``train_detector``: which D, and how to train it when we must."""

    model: str  # YOLO yaml (yolov8n.yaml, yolov3u.yaml, yolo11n.yaml, a path) | small_cnn | clip:<name>
    weights: str | None  # a trained D to use as is (ultralytics .pt or ours; CLIP weights file); null: train
    imgsz: int  # training and inference long side, px
    epochs: int  # passes over the clean train split
    batch: int  # images per step
    optimizer: str  # ultralytics optimizer: SGD | Adam | AdamW | auto (classify: always AdamW)
    lr0: float  # initial learning rate
    warmup_epochs: float  # ultralytics warm-up, epochs
    mosaic: float  # ultralytics mosaic probability
    close_mosaic: int  # last epochs without mosaic
    prompts: list[str]  # clip: zero-shot prompt templates, "{}" = class name
    class_map: dict[str, str | None]  # D's class name -> task class (null: dropped), over the alias table
    min_clean_score: (
        float | None
    )  # warn when D's clean test mAP@0.5 (classify: accuracy) is below; null: never

    def __post_init__(self) -> None:
        if min(self.imgsz, self.epochs, self.batch) < 1 or self.lr0 <= 0:
            raise ValueError("train_detector: imgsz, epochs, batch and lr0 must be positive")


def fit_detector(common, params: TrainDetectorParams, clean: Manifest, tmp: Path, dev, track) -> dict:
    """D for a detection task into ``tmp/detector.pt``: the given weights (converted and checked),
    or a YOLO trained on the clean train split; returns its clean val / test mAP@0.5."""
    from vat.eval.evaluation import detection_map
    from vat.models.detectors import load_detector, save_detector

    if params.model in ("small_cnn",) or params.model.startswith("clip:"):
        raise ParamsError(
            f"train_detector.model: {params.model!r} is a classifier; task {common.task} detects"
        )
    from vat.models.classmap import MappedDetector, build_class_map, save_class_map

    history: list[dict] = []
    if params.weights:
        det = load_detector(params.weights, imgsz=params.imgsz)  # ultralytics or the original YOLOv5
    elif not any(r.boxes for r in clean.split("train") if r.domain != "degraded"):
        raise ParamsError(
            "train_detector: no labelled clean training images to train D on (source folder has none): "
            "set train_detector.weights to your trained detector"
        )
    else:
        det, history = train_yolo(common, params, clean, dev, track)
    cm = build_class_map(det.names, list(clean.classes), params.class_map)
    save_detector(det, tmp / "detector.pt", imgsz=params.imgsz)
    save_class_map(cm, tmp)
    det = MappedDetector(load_detector(tmp / "detector.pt", device=dev), cm)
    metrics: dict = {"model": params.model, "trained": not params.weights, "weights": params.weights}
    metrics["imgsz"] = params.imgsz
    metrics["family"] = type(det.detector).__name__  # YOLOv5Detector (the original) or FrozenDetector
    metrics["class_map"] = {"d_classes": len(cm.d_names), "mapped": cm.mapped, "dropped": len(cm.dropped)}
    for split in ("val", "test"):
        recs = [r for r in clean.split(split) if r.domain != "degraded"]  # clean images only
        if recs:
            r = detection_map(det, recs, recs, clean.classes, device=dev)
            metrics[f"{split}_clean_map50"] = round(r.map, 4)
            metrics[f"{split}_clean_ap50"] = {k: round(v, 4) for k, v in r.ap.items()}
    metrics["interpolation"] = "voc_all_point"
    metrics["history"] = history
    return metrics


@contextlib.contextmanager
def _quiet_bars():
    """ultralytics' image-caching bars ignore its verbosity and write colour codes and line
    clears even into a log file: off while it trains (our own bar counts the epochs)."""
    import ultralytics.data.base as base
    import ultralytics.data.dataset as dataset

    class Quiet(base.TQDM):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **(kwargs | {"disable": True}))

    saved = base.TQDM, dataset.TQDM
    base.TQDM = dataset.TQDM = Quiet
    try:
        yield
    finally:
        base.TQDM, dataset.TQDM = saved


def train_yolo(common, params, clean: Manifest, dev, track):
    """ultralytics' trainer on a YOLO-format view of the clean train / val splits."""
    from ultralytics import YOLO, settings

    from vat.env import install_font
    from vat.models.detectors import FrozenDetector, resolve_yaml

    install_font()
    # No analytics, and none of its experiment-tracker callbacks (DVCLive is installed here
    # and would write into our repo).
    off = ("sync", "dvc", "tensorboard", "wandb", "mlflow", "comet", "clearml", "raytune", "neptune")
    settings.update({k: False for k in off if k in settings})
    with tempfile.TemporaryDirectory(prefix="vat-yolo-") as work:
        data = export_yolo(clean, Path(work) / "dataset")
        try:
            model = YOLO(resolve_yaml(params.model))
        except FileNotFoundError as e:
            raise ParamsError(
                f"train_detector.model: {params.model}: no such model yaml or checkpoint ({e})"
            ) from e
        # ultralytics runs its own loop (verbose off); a rich bar advances once per epoch.
        epochs = iter(track(range(params.epochs), f"train_detector {Path(params.model).stem}", params.epochs))
        model.add_callback("on_fit_epoch_end", lambda _trainer: next(epochs, None))
        # ultralytics sets torch to cpu_count - 1 threads for CPU training (select_device): one
        # thread on a 2-core machine, half its speed. Its loop runs with the process's threads.
        threads = torch.get_num_threads()
        model.add_callback("on_pretrain_routine_end", lambda _trainer: torch.set_num_threads(threads))
        with _quiet_bars():
            model.train(
                data=str(data),
                epochs=params.epochs,
                imgsz=params.imgsz,
                batch=params.batch,
                optimizer=params.optimizer,
                lr0=params.lr0,
                warmup_epochs=params.warmup_epochs,
                mosaic=params.mosaic,
                close_mosaic=params.close_mosaic,
                device="cpu" if dev.type == "cpu" else str(dev.index or 0),
                workers=min(4, os.cpu_count() or 1),
                # Decoded images in RAM when they fit: speed only, the same batches either way.
                cache="ram" if sum(3 * r.width * r.height for r in clean.records) < 2 << 30 else False,
                seed=item_seed(common.seed, "train_detector") % (2**31),
                deterministic=True,
                pretrained=False,
                amp=False,  # its AMP check downloads a model
                plots=False,
                verbose=False,
                project=str(Path(work) / "runs"),
                name="train",
                exist_ok=True,
            )
        torch.set_num_threads(threads)  # as the stage had them (select_device changed them)
        next(epochs, None)  # finish the bar
        best = Path(model.trainer.best)
        history = history_of(Path(model.trainer.save_dir) / "results.csv")
        det = FrozenDetector(best, imgsz=params.imgsz)
    return det, history


def export_yolo(clean: Manifest, root: Path) -> Path:
    """images/<split>/ symlinks and labels/<split>/*.txt (normalised cx cy w h), data.yaml."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for r in clean.split(split):
            src = Path(r.path).resolve()
            os.symlink(src, root / "images" / split / f"{r.image_id}{src.suffix}")
            lines = [
                f"{b.cls} {(b.x1 + b.x2) / 2 / r.width:.6f} {(b.y1 + b.y2) / 2 / r.height:.6f} "
                f"{(b.x2 - b.x1) / r.width:.6f} {(b.y2 - b.y1) / r.height:.6f}"
                for b in r.boxes
            ]
            (root / "labels" / split / f"{r.image_id}.txt").write_text("\n".join(lines))
    if not clean.split("val"):
        raise ParamsError("train_detector: the val split is empty; D is selected on it")
    names = {i: n for i, n in enumerate(clean.classes)}
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\nnames: {names}\n")
    return root / "data.yaml"


def history_of(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    with open(path) as f:
        rows = list(csv.DictReader(f))
    keep = {"epoch", "train/box_loss", "train/cls_loss", "metrics/mAP50(B)", "metrics/mAP50-95(B)"}
    return [{k.strip(): float(v) for k, v in row.items() if k.strip() in keep} for row in rows]


def fit_classifier(common, params: TrainDetectorParams, clean: Manifest, tmp: Path, dev, track) -> dict:
    """D for the classification task into ``tmp``: a small CNN (trained, or given weights) as
    ``classifier.pt``, or a CLIP spec as ``classifier.json``; returns its clean accuracy."""
    from vat.models.classifier import SmallCNN, TorchClassifier, save_small_cnn, train_small_cnn
    from vat.models.clip import CLIPClassifier

    history: list[dict] = []
    if params.model == "small_cnn":
        if params.weights:
            clf = TorchClassifier.load(params.weights, device=dev)
        else:
            images, labels = stack_images(clean.split("train"))
            net = SmallCNN(len(clean.classes), seed=item_seed(common.seed, "train_detector") % (2**31))
            progress = iter(track(range(params.epochs), "train_detector small_cnn", params.epochs))
            history = train_small_cnn(
                net, images, labels, epochs=params.epochs, lr=params.lr0, batch_size=params.batch,
                seed=item_seed(common.seed, "train_detector", "data") % (2**31), device=dev,
                on_epoch=lambda _: next(progress, None),
            )  # fmt: skip
            save_small_cnn(tmp / "classifier.pt", net.cpu(), clean.classes, image_size=params.imgsz)
            clf = TorchClassifier.load(tmp / "classifier.pt", device=dev)
        if params.weights:
            clf.save(tmp / "classifier.pt")
    elif params.model.startswith("clip:"):
        name = params.model.split(":", 1)[1]
        clf = CLIPClassifier(name, clean.classes, weights=params.weights, prompts=params.prompts, device=dev,
                             params_key="train_detector.weights")  # fmt: skip
        write_json({"arch": "clip", "model": name, "weights": params.weights, "prompts": params.prompts},
                   tmp / "classifier.json")  # fmt: skip
    else:
        raise ParamsError(
            f"train_detector.model: task classify needs small_cnn or clip:<name>, got {params.model!r}"
        )
    metrics: dict = {"model": params.model, "trained": bool(history)}
    for split in ("val", "test"):
        recs = clean.split(split)
        if recs:
            images, labels = stack_images(recs)
            with torch.no_grad():
                pred = clf.predict(torch.as_tensor(images).permute(0, 3, 1, 2).float().div(255).to(dev))
            metrics[f"{split}_clean_accuracy"] = round(float((pred.labels.cpu().numpy() == labels).mean()), 4)
    metrics["history"] = history
    return metrics


def stack_images(records) -> tuple[np.ndarray, np.ndarray]:
    images = np.stack([load_rgb(r.path) for r in records])  # (N, H, W, 3) uint8
    return images, np.array([r.label for r in records])
