"""A researcher's own copy of the paper's data, generated: what `vat profile paper` and `vat
profile paper_dark` expect under data/external/, made of embedded scenes at mixed sizes.

- ``VOC2007/``: ``JPEGImages/*.jpg`` and ``Annotations/*.xml`` (VOC XML, 1-based corners), images
  of several sizes and aspect ratios, and no ``ImageSets`` (the split falls back to ratios);
- ``RTTS/``: hazy photographs in the same VOC layout (the paper's real haze set);
- ``ExDark/``: dark photographs in class folders with bbGt boxes and ``imageclasslist.txt``;
- ``cifar10/cifar-10-batches-py/``: CIFAR-10's python batches (random 32 px pictures);
- stand-in weights in the public formats, random: AOD-Net's ``dehazer.pth`` (``e_convN``
  keys), SCI's ``medium.pt`` (``enhance.*`` and ``calibrate.*`` keys) and a YOLO ``.pt``.

What a test checks with them is that every stage works on mixed sizes, not the scores.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from own_folders import HAZE, _boxes, _hazy, _scene, _voc_xml
from PIL import Image

# (width, height): landscape, portrait, square, wide; none a multiple of another's shape.
SIZES = [(160, 120), (96, 136), (128, 128), (200, 88), (120, 168), (176, 104)]
EXDARK = {"bicycle": "Bicycle", "bus": "Bus", "car": "Car", "motorbike": "Motorbike", "person": "People"}


def _dark(image: np.ndarray, i: int) -> np.ndarray:
    return (255 * (image / 255.0) ** (2.0 + 0.3 * (i % 5))).round().astype(np.uint8)


def make_voc(root: Path, n: int, seed: int = 0, haze: bool = False) -> Path:
    """``n`` scenes at the sizes of :data:`SIZES` in VOC layout without ImageSets (hazy ones
    with ``haze``); every image has at least one box."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    done, i = 0, 0
    while done < n:
        w, h = SIZES[i % len(SIZES)]
        scene = _scene(seed, i, w, h)
        boxes = _boxes(scene)
        i += 1
        if not boxes:
            continue
        image = _hazy(scene.image, i) if haze else scene.image
        name = f"{2007 + seed}_{i:06d}"
        Image.fromarray(image).save(root / "JPEGImages" / f"{name}.jpg", quality=95)
        _voc_xml(root / "Annotations" / f"{name}.xml", f"{name}.jpg", (w, h), boxes)
        done += 1
    return root


def make_exdark(root: Path, n: int, seed: int = 7) -> Path:
    """``n`` dark scenes in ExDark's layout: ``<Class>/<image>``, bbGt files under
    ``ExDark_Annotations/<Class>/``, and an ``imageclasslist.txt`` that lists them."""
    rows = ["Name | Class | Light | In/Out | Train/Val/Test"]
    done, i = 0, 0
    while done < n:
        w, h = SIZES[(i + 2) % len(SIZES)]
        scene = _scene(seed, i, w, h)
        boxes = _boxes(scene)
        i += 1
        if not boxes:
            continue
        folder = EXDARK[boxes[0][0]]
        name = f"dark_{i:04d}.jpg"
        (root / "ExDark" / folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(_dark(scene.image, i)).save(root / "ExDark" / folder / name, quality=95)
        lines = ["% bbGt version=3"] + [
            f"{EXDARK[c]} {x1 - 1} {y1 - 1} {x2 - x1 + 1} {y2 - y1 + 1} 0 0 0 0 0 0 0"
            for c, x1, y1, x2, y2 in boxes
        ]
        (root / "ExDark_Annotations" / folder).mkdir(parents=True, exist_ok=True)
        (root / "ExDark_Annotations" / folder / f"{name}.txt").write_text("\n".join(lines) + "\n")
        rows.append(f"{name} 1 1 1 3")
        done += 1
    (root / "imageclasslist.txt").write_text("\n".join(rows) + "\n")
    return root


def make_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> Path:
    """CIFAR-10's python batches (``data_batch_1``, ``test_batch``, ``batches.meta``): random
    32 x 32 pictures, each class a different mean colour so a classifier has something to learn."""
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in names]}, f)  # keys and names as bytes (py2 pickles)
    for file, n in (("data_batch_1", n_train), ("test_batch", n_test)):
        labels = [int(x) for x in rng.integers(0, 10, n)]
        base = np.array([[25 * k, 250 - 25 * k, 120] for k in labels], dtype=np.float64)[:, :, None]
        pixels = np.clip(base + rng.normal(0, 30, (n, 3, 1024)), 0, 255).astype(np.uint8).reshape(n, 3072)
        with open(folder / file, "wb") as f:
            pickle.dump({b"data": pixels, b"labels": labels}, f)
    return root


def save_public_weights(root: Path, imgsz: int = 96) -> None:
    """Random stand-ins in the public files' formats: ``dehazer.pth`` (AOD-Net, plain state_dict
    with ``e_convN`` keys, as MayankSingal's port), ``SCI/medium.pt`` (``enhance.*`` and
    ``calibrate.*`` keys, as SCI's repository) and ``yolo/detector.pt`` (an ultralytics YOLOv8n
    with the five haze classes, lively random weights)."""
    from conftest import lively_detector

    from vat.models.detectors import save_detector
    from vat.models.restorers import AODNet, SCITrain

    net = AODNet().init_weights(torch.Generator().manual_seed(0))
    torch.nn.init.zeros_(net.e_conv5.bias)  # the public port's init: J = b, far from the input
    root.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), root / "dehazer.pth")
    (root / "SCI").mkdir(exist_ok=True)
    sci = SCITrain().init_weights(torch.Generator().manual_seed(1)).state_dict()
    sci |= {
        k.replace("enhance.conv.", "enhance.blocks.0."): v
        for k, v in sci.items()
        if k.startswith("enhance.conv.")
    }
    torch.save(sci, root / "SCI/medium.pt")  # SCI's file stores its one block twice
    det = lively_detector(nc=len(HAZE), imgsz=imgsz)
    det.model.names = dict(enumerate(HAZE))
    (root / "yolo").mkdir(exist_ok=True)
    save_detector(det, root / "yolo/detector.pt", imgsz=imgsz)
