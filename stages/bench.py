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


SPEED_OPTIONS = (
    "bf16", "channels_last", "fold_batchnorm", "one_detector_pass",
    "compile", "compile_detector", "checkpoint", "checkpoint_detector",
)  # fmt: skip


def _label(row: dict) -> str:
    opts = [k for k in SPEED_OPTIONS if row.get(k)]
    return f"{row['translator']} {row['pipeline']} b{row['batch']} " + ("+".join(opts) or "eager fp32")


def train_table(result: dict) -> str:
    """Markdown: one row per configuration, with the ratio to the first (plain eager) row."""
    rows = result["rows"]
    base = next((r for r in rows if "images_per_s" in r), None)
    lines = [
        f"# One VaT training step on {result['device']} ({rows[0]['size']} px)",
        "",
        "| configuration | img/s | x plain eager | step ms | peak GiB | step peak GiB | saved GiB "
        "| x plain saved | fwd GFLOP/img | T share | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "images_per_s" not in r:
            lines.append(f"| {_label(r)} | {r.get('error') or 'out of memory'} | | | | | | | | | |")
            continue
        ratio = r["images_per_s"] / base["images_per_s"] if base else float("nan")
        saved = r.get("saved_gib", "-")
        base_saved = base.get("saved_gib") if base else None
        saved_ratio = f"{saved / base_saved:.2f}" if saved != "-" and base_saved else "-"
        flops = f"{r.get('gflop_fwd', '-')} | {r.get('translator_share', '-')}"
        lines.append(f"| {_label(r)} | {r['images_per_s']:.2f} | {ratio:.2f} | {r['step_ms']:.1f} | "
                     f"{r.get('peak_gib', '-')} | {r.get('step_peak_gib', '-')} | {saved} | {saved_ratio} | "
                     f"{flops} | {r['warmup_s']} |")  # fmt: skip
    lines.append(
        "\npeak GiB (CUDA only): the allocator's peak over the timed steps. step peak GiB: the"
        " peak of the tensors one step allocates (vat.bench_train.TensorMemory), saved GiB: what"
        " autograd keeps from the forward for the backward (SavedForBackward); both measured alike"
        " on every device in one more, untimed step (not under compile). fwd GFLOP/img: the"
        " step's forward matmul and convolution FLOPs per image (vat.bench_train.forward_flops;"
        " the backward adds about 2x the translator's and 1x D's), T share: the translator's part."
    )
    for k, v in result.get("ratios", {}).items():
        lines.append(f"\n{k}: {v}")
    return "\n".join(lines) + "\n"


@app.command("train")
@friendly_errors
def train_command(
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda"),
    quick: bool = typer.Option(False, help="the small CPU suite even on a GPU"),
    largest: bool = typer.Option(True, help="GPU: also find the largest batch that fits (memory mode)"),
    out: Path = typer.Option(None, help="folder for the numbers (default reports/bench)"),
) -> None:
    """Images/s and peak memory of one training step: cached vs per-step pipeline, each speed option.

    GPU: 512 px, batch 4, vat-w16 and vat-w48, frozen YOLOv3u. CPU: 128 px, batch 2, vat-w4.
    Everything in one run, so the ratios hold. Writes train-<device>.json and .md.
    """
    from dataclasses import asdict, replace

    from vat.bench_train import FAST, MEMORY, BenchConfig, bench_train, release, suite
    from vat.datasets import resolve_device

    dev = resolve_device(device)
    tag = "cpu" if dev.type != "cuda" else torch_name(dev)
    out = out or REPORTS
    json_path, md_path = out / f"train-{tag}.json", out / f"train-{tag}.md"
    result = {"device": tag, "machine": machine(), "rows": []}

    def record(row: dict) -> None:
        result["rows"].append(row)
        write_json(result, json_path)  # after every row: a run cut short keeps what it measured
        status = (
            f"{row['images_per_s']:.2f} img/s, peak {row.get('peak_gib', '-')} GiB, "
            f"step peak {row.get('step_peak_gib', '-')} GiB, saved {row.get('saved_gib', '-')} GiB"
            if "images_per_s" in row
            else row.get("error") or "out of memory"
        )
        console.print(f"bench train: {_label(row):60s} {status}")

    for cfg in suite(dev, quick):
        try:
            row = bench_train(cfg, dev)
        except Exception as e:  # a mode that fails here (a compiler error, say) is reported, not fatal
            row = asdict(cfg) | {"oom": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        release(dev)
        record(row)
    if largest and dev.type == "cuda" and not quick:
        mem = BenchConfig(**asdict(BenchConfig()) | FAST | MEMORY)
        batch = 8
        while batch <= 512:
            row = bench_train(replace(mem, batch=batch, steps=5, warmup=2), dev)
            release(dev)
            record(row)
            if "images_per_s" not in row:
                break
            batch *= 2
    ok = {(_label(r)): r["images_per_s"] for r in result["rows"] if "images_per_s" in r}
    ratios = {}
    for r in result["rows"]:
        if r["pipeline"] == "per_step" and "images_per_s" in r:
            twin = _label(r | {"pipeline": "cached"})
            if twin in ok:
                ratios[f"cached / per-step ({twin})"] = round(ok[twin] / r["images_per_s"], 2)
    result["ratios"] = ratios
    write_json(result, json_path)
    md_path.write_text(train_table(result))
    console.print(f"bench train -> {json_path}, {md_path}")


def torch_name(device) -> str:
    import torch

    return torch.cuda.get_device_name(device).replace(" ", "-").replace("/", "-")
