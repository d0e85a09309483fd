"""A user's own setup, generated: the folders `vat profile own` expects, made of embedded scenes.

- ``degraded/``: hazy scenes as plain images, no labels (a user's real hazy photographs);
- ``clean/``: other, clean scenes, no labels, unpaired;
- ``val/``: hazy scenes with their boxes in VOC layout; ``test/``: the same in YOLO layout;
- ``detector.pt``: a detector with COCO-style classes, more than the task's (``motorcycle``
  maps to ``motorbike`` through the alias table, ``truck`` and ``airplane`` are dropped);
- ``restorer.pth``: an AOD-Net checkpoint in the public port's key names.

``scramble=True`` writes label files beside the unlabelled training images too (VOC XML,
YOLO txt) with nonsense boxes: the pipeline must never read them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

HAZE = ["bicycle", "bus", "car", "motorbike", "person"]
D_NAMES = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "truck"]


def _scene(seed: int, i: int, width: int, height: int):
    from vat.data.embedded import SceneSpec, render_scene
    from vat.seeding import item_rng

    spec = SceneSpec(width=width, height=height, targets=(1, 4), distractors=(3, 8))
    return render_scene(spec, item_rng(seed, "own", i))


def _hazy(image: np.ndarray, i: int) -> np.ndarray:
    from vat.data.degradations import haze_iayolo
    from vat.io import to_float, to_uint8

    return to_uint8(haze_iayolo(to_float(image), 0.06 + 0.01 * (i % 6)))


def _voc_xml(path: Path, filename: str, size: tuple[int, int], boxes) -> None:
    objects = "".join(
        f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
        f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        for name, x1, y1, x2, y2 in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{filename}</filename><size><width>{size[0]}</width>"
                    f"<height>{size[1]}</height><depth>3</depth></size>{objects}</annotation>")  # fmt: skip


def _boxes(scene) -> list[tuple]:
    return [(HAZE[b.cls], round(b.x1) + 1, round(b.y1) + 1, round(b.x2), round(b.y2))
            for b in scene.boxes if b.x2 - b.x1 > 3 and b.y2 - b.y1 > 3]  # fmt: skip


def make_own(root: Path, n_train: int = 12, n_eval: int = 4, width: int = 128, height: int = 96,
             scramble: bool = False, seed: int = 0) -> Path:  # fmt: skip
    """The folders and files under ``root``; returns it."""
    for folder in ("degraded", "clean", "val/JPEGImages", "test/images/test", "test/labels/test"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    for i in range(n_train):
        hazy = _hazy(_scene(seed, i, width, height).image, i)
        Image.fromarray(hazy).save(root / "degraded" / f"photo_{i:03d}.jpg", quality=95)
        clean = _scene(seed, 1000 + i, width, height).image  # other scenes: unpaired
        Image.fromarray(clean).save(root / "clean" / f"view_{i:03d}.png")
        if scramble:  # labels beside training images: never to be read
            nonsense = [("car", 1, 1, 9, 9), ("person", 2, 2, 20, 30)]
            _voc_xml(
                root / "degraded" / f"photo_{i:03d}.xml", f"photo_{i:03d}.jpg", (width, height), nonsense
            )
            (root / "clean" / f"view_{i:03d}.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    for i in range(n_eval):
        scene = _scene(seed, 2000 + i, width, height)
        Image.fromarray(_hazy(scene.image, i)).save(root / "val/JPEGImages" / f"v{i}.png")
        _voc_xml(root / "val/Annotations" / f"v{i}.xml", f"v{i}.png", (width, height), _boxes(scene))
        scene = _scene(seed, 3000 + i, width, height)
        Image.fromarray(_hazy(scene.image, i + 1)).save(root / "test/images/test" / f"t{i}.png")
        lines = [
            f"{HAZE.index(n)} {(x1 + x2) / 2 / width:.6f} {(y1 + y2) / 2 / height:.6f} "
            f"{(x2 - x1) / width:.6f} {(y2 - y1) / height:.6f}"
            for n, x1, y1, x2, y2 in _boxes(scene)
        ]
        (root / "test/labels/test" / f"t{i}.txt").write_text("\n".join(lines) + "\n")
    (root / "test/data.yaml").write_text(f"path: .\ntest: images/test\nnames: {HAZE}\n")
    return root


def save_own_models(root: Path, imgsz: int = 128) -> None:
    """``detector.pt`` (an ultralytics YOLOv8n with D_NAMES, random but lively weights: scores
    near 0.5, so it finds boxes) and ``restorer.pth`` (a random AOD-Net, public key names)."""
    from conftest import lively_detector

    from vat.models.detectors import save_detector
    from vat.models.restorers import AODNet

    det = lively_detector(nc=len(D_NAMES), imgsz=imgsz)
    det.model.names = dict(enumerate(D_NAMES))
    save_detector(det, root / "detector.pt", imgsz=imgsz)
    net = AODNet().init_weights(torch.Generator().manual_seed(0))
    torch.save({k.replace("e_conv", "conv"): v for k, v in net.state_dict().items()}, root / "restorer.pth")


def save_yolov5_repository_detector(path: Path, imgsz: int = 128) -> None:
    """``path``: an original YOLOv5 checkpoint with D_NAMES, as the YOLOv5 repository's train.py
    writes it (a pickled ``models.yolo.DetectionModel``, fp16), by the reference code."""
    from test_yolov5 import _lively
    from test_yolov5_files import _repository_file

    _repository_file(_lively(imgsz=imgsz, nc=len(D_NAMES)), path, names=D_NAMES)
