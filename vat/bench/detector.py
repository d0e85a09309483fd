"""Speed of the frozen detectors D: prediction and a loss step, images per second.

:func:`bench_detectors` times, at one image size and batch, with random weights:

- ``yolov5n`` through vat's port (:class:`~vat.models.detectors.yolov5.YOLOv5Detector`);
- ``yolov8n`` through :class:`~vat.models.detectors.ultralytics.FrozenDetector`;
- ``yolov5n`` through the YOLOv5 v7.0 reference code (Jocher et al.; its ``Model`` in eval
  mode with frozen parameters, ``non_max_suppression`` and ``ComputeLoss``) with the port's
  weights, when the package imports (:mod:`vat.bench.yolov5_reference`); otherwise that row
  says why it was skipped.

``predict``: D's predictions on a batch (letterbox, forward, NMS; the port also gathers the
per-box features). ``loss step``: forward, loss against a few boxes per image, and backward
to the input images (what a translator's training step asks of D). Images are square,
``size`` a multiple of 32, so letterboxing does nothing. Numbers go to reports, never tests.

Random weights, with each BatchNorm's statistics calibrated on the benchmark batch (as a
trained network's, activations stay around 1): with fresh statistics a random YOLOv5's
activations shrink layer after layer into float32's subnormal range, where a CPU's
convolutions can run 10-20 times slower (measured here: 3 s instead of 0.2 s for a yolov5n
forward of 4 images at 256 px), which no trained detector does. The heads' bias priors stay,
so few boxes pass ``conf`` and NMS costs little.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

__all__ = ["bench_detectors"]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rates(fns: list[Callable[[], object]], images: int, steps: int, warmup: int, device) -> list[float]:
    """Images per second of each of ``fns`` (one batch of ``images`` a call), timed round-robin
    (one call of each per round, so a machine's changing load spreads over all of them alike),
    after ``warmup`` untimed rounds."""
    spent = [0.0] * len(fns)
    for r in range(warmup + steps):
        for i, fn in enumerate(fns):
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            if r >= warmup:
                spent[i] += time.perf_counter() - t0
    return [round(images * steps / t, 2) for t in spent]


def _targets(batch: int, size: int, nc: int, gen: torch.Generator, boxes: int = 6) -> list[dict]:
    xy = torch.rand(batch, boxes, 2, generator=gen) * size * 0.7
    wh = 12 + torch.rand(batch, boxes, 2, generator=gen) * size * 0.25
    b = torch.cat([xy, (xy + wh).clamp(max=size)], 2)
    cls = torch.randint(0, nc, (batch, boxes), generator=gen)
    return [{"boxes": b[i], "classes": cls[i]} for i in range(batch)]


def _calibrate(model: torch.nn.Module, x: torch.Tensor) -> None:
    """BatchNorm statistics of ``model`` from one batch (train-mode forward), then eval mode."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.reset_running_stats()
                m.momentum = None  # the batch's own statistics
        torch.nn.Module.train(model, True)
        model(x)
        model.eval()


def _detector_fns(det, x: torch.Tensor, targets: list[dict]) -> tuple[Callable, Callable]:
    """(predict, loss step) of a vat detector."""

    def step() -> None:
        xi = x.clone().requires_grad_(True)
        det.loss(xi, targets)[0].backward()

    return lambda: det.predict(x), step


def _reference_fns(port, x: torch.Tensor, targets: list[dict]) -> tuple[Callable, Callable] | str:
    """The reference's Model / non_max_suppression / ComputeLoss with the port's weights."""
    from copy import deepcopy

    from vat.bench.yolov5_reference import import_reference
    from vat.models.detectors.targets import Targets

    ref = import_reference()
    if isinstance(ref, str):
        return ref
    model = ref.Model(deepcopy(port.model.yaml))
    model.load_state_dict(port.model.state_dict())
    model = model.to(x.device).eval().requires_grad_(False)
    model.hyp = dict(port.hyp)
    compute_loss = ref.ComputeLoss(model)
    flat = Targets.from_list(targets)
    table = port.yolo_targets(flat, tuple(x.shape[-2:]), tuple(x.shape[-2:]), (1.0, 1.0), (0, 0))[:, :6]
    table = table.to(x.device)

    def predict() -> None:
        with torch.no_grad():
            ref.non_max_suppression(model(x)[0], 0.25, 0.45, max_det=300)

    def step() -> None:
        xi = x.clone().requires_grad_(True)
        compute_loss(model(xi)[1], table)[0].sum().backward()

    return predict, step


def bench_detectors(
    size: int = 256, batch: int = 4, steps: int = 5, device: str | torch.device = "cpu", warmup: int = 1
) -> list[dict]:
    """One row per detector: ``model``, ``predict_img_s``, ``loss_img_s`` (or ``skipped``: why),
    each with ``size``, ``batch``, ``steps`` and ``device``."""
    from vat.models.detectors import FrozenDetector, YOLOv5Detector

    if size % 32:
        raise ValueError(f"size must be a multiple of 32 (no letterbox padding), got {size}")
    device = torch.device(device)
    nc = 80
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, size, size, generator=gen).to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in _targets(batch, size, nc, gen)]
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(0)
        port = YOLOv5Detector("yolov5:yolov5n.yaml", nc=nc, imgsz=size, device=device)
        v8 = FrozenDetector("yolov8n.yaml", nc=nc, imgsz=size, device=device)
    _calibrate(port.model, x)
    _calibrate(v8.model, x)
    candidates = {
        "yolov5n (vat YOLOv5Detector)": _detector_fns(port, x, targets),
        "yolov5n (YOLOv5 v7.0 reference: Model, non_max_suppression, ComputeLoss)": _reference_fns(
            port, x, targets
        ),
        "yolov8n (vat FrozenDetector, ultralytics)": _detector_fns(v8, x, targets),
    }
    runs = {k: v for k, v in candidates.items() if not isinstance(v, str)}
    predict = dict(
        zip(runs, _rates([p for p, _ in runs.values()], batch, steps, warmup, device), strict=True)
    )
    loss = dict(zip(runs, _rates([s for _, s in runs.values()], batch, steps, warmup, device), strict=True))
    where = {"size": size, "batch": batch, "steps": steps}
    where["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    return [
        {"model": k, "skipped": v} | where
        if isinstance(v, str)
        else {"model": k, "predict_img_s": predict[k], "loss_img_s": loss[k]} | where
        for k, v in candidates.items()
    ]
