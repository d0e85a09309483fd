"""bench: speed and memory measurements, written under reports/bench/ (never asserted by tests).

``vat bench degrade`` times the degradations on random images, end to end (decode, degrade,
encode) and the vectorised haze against IA-YOLO's per-pixel loop, all in one run so the
ratios hold on whatever machine runs it.
"""

from __future__ import annotations

import math
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from stages._ui import console, friendly_errors
from vat.io import load_rgb, save_png, to_float, to_uint8, write_json

app = typer.Typer(help="Measure speed and memory; results go to reports/bench/.", no_args_is_help=True)
REPORTS = Path("reports/bench")


def machine() -> dict:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "processor": platform.processor(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "gpu": gpu,
    }


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
    from vat.degradations import apply, corrupt, haze_iayolo

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


@app.command("degrade")
@friendly_errors
def degrade_command(
    size: int = typer.Option(512, help="image side, px"),
    n: int = typer.Option(20, help="images per measurement"),
    out: Path = typer.Option(REPORTS / "degrade.json", help="where to write the numbers"),
) -> None:
    """Images/s of each degradation at SIZE x SIZE, and the speed-up over IA-YOLO's per-pixel loop."""
    result = run_degrade(size, n)
    write_json(result, out)
    for k, v in result["images_per_s"].items():
        console.print(f"{k:28s} {v:10.2f} img/s")
    console.print(
        f"IA-YOLO per-pixel loop       {result['iayolo_loop_images_per_s']:10.4f} img/s "
        f"(ours is {result['speedup_vs_iayolo_loop']}x faster) -> {out}"
    )


@app.command("nuq")
@friendly_errors
def nuq_command(
    n_ref: int = typer.Option(100_000, help="reference features"),
    n_query: int = typer.Option(100_000, help="query features"),
    dim: int = typer.Option(256, help="feature dimension"),
    k: int = typer.Option(20, help="neighbours"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda"),
    chunk: int = typer.Option(4096, help="queries (and references) per distance block"),
    out: Path = typer.Option(
        None, help="where to write the numbers (default reports/bench/nuq-<device>.json)"
    ),
) -> None:
    """NUQ queries/s and peak memory at N_REF x N_QUERY x DIM (exact k-NN, chunked)."""
    from vat.bench_nuq import bench_nuq
    from vat.datasets import resolve_device

    dev = resolve_device(device)
    result = bench_nuq(n_ref, n_query, dim, k, str(dev), chunk, 0) | {"machine": machine()}
    out = out or REPORTS / f"nuq-{dev.type}.json"
    write_json(result, out)
    console.print(f"nuq: {result} -> {out}")
