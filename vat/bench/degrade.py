"""The degradations' speed, end to end (decode, degrade, encode), against IA-YOLO's per-pixel loop.

All in one run so the ratios hold on whatever machine runs it.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path

import numpy as np

from vat.bench import machine
from vat.io import load_rgb, save_png, to_float, to_uint8


def _rate(fn, n: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def haze_loop_iayolo(image: np.ndarray, beta: float, A: float = 0.5) -> np.ndarray:
    """IA-YOLO's original per-pixel loop (reference for the speed ratio only)."""
    out = image.copy()
    r, c = image.shape[:2]
    size = math.sqrt(max(r, c))
    for j in range(r):
        for ll in range(c):
            d = -0.04 * math.sqrt((j - r / 2) ** 2 + (ll - c / 2) ** 2) + size
            td = math.exp(-beta * d)
            out[j, ll, :] = image[j, ll, :] * td + A * (1 - td)
    return out


def run_degrade(size: int = 512, n: int = 20, seed: int = 0) -> dict:
    from vat.data.corruptions import corrupt
    from vat.data.degradations import apply, haze_iayolo

    rng = np.random.default_rng(seed)
    image = rng.random((size, size, 3), dtype=np.float32)
    depth = rng.uniform(1, 200, (size, size)).astype(np.float32)
    base = {
        "method": None,
        "beta": None,
        "airlight": 0.5,
        "gamma": None,
        "corruption": None,
        "severity": None,
        "seed": 0,
    }
    cases = {
        "haze": base | {"method": "haze", "beta": 0.1},
        "haze_depth": base | {"method": "haze_depth", "beta": 0.05},
        "lowlight": base | {"method": "lowlight", "gamma": 3.0},
    }
    result: dict = {"size": size, "images": n, "images_per_s": {}, "machine": machine()}
    for name, p in cases.items():
        result["images_per_s"][name] = round(_rate(lambda p=p: apply(image, p, depth=depth), n), 2)
    result["images_per_s"]["imagecorruptions/fog"] = round(
        _rate(lambda: corrupt(image, "imagecorruptions/fog", 3, 0), max(2, n // 5)), 2
    )
    # End to end as the stage does it: decode PNG, degrade, encode PNG.
    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.png", Path(d) / "out.png"
        save_png(to_uint8(image), src)
        result["images_per_s"]["haze_png_roundtrip"] = round(
            _rate(lambda: save_png(to_uint8(apply(to_float(load_rgb(src)), cases["haze"])), dst), n), 2
        )
    # The per-pixel loop at the same size, once (it is slow), in the same run.
    t0 = time.perf_counter()
    ref = haze_loop_iayolo(image, 0.1)
    loop_s = time.perf_counter() - t0
    ours = haze_iayolo(image, 0.1)
    result["iayolo_loop_images_per_s"] = round(1 / loop_s, 4)
    result["speedup_vs_iayolo_loop"] = round(result["images_per_s"]["haze"] * loop_s, 1)
    result["max_abs_diff_vs_loop"] = float(np.abs(ref - ours).max())
    return result
