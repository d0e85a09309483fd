"""bench: speed and memory measurements, written under reports/bench/ (never asserted by tests).

``vat bench degrade`` times the degradations on random images, end to end (decode, degrade,
encode) and the vectorised haze against IA-YOLO's per-pixel loop, all in one run so the
ratios hold on whatever machine runs it.
"""

from __future__ import annotations

from pathlib import Path

import typer

from stages._ui import console, friendly_errors
from vat.bench import machine, torch_name
from vat.io import write_json
from vat.layout import MAIN

app = typer.Typer(help="Measure speed and memory; results go to reports/bench/.", no_args_is_help=True)
REPORTS = MAIN.report("bench")  # not a stage: measurements only


@app.command("degrade")
@friendly_errors
def degrade_command(
    size: int = typer.Option(512, help="image side, px"),
    n: int = typer.Option(20, help="images per measurement"),
    out: Path = typer.Option(REPORTS / "degrade.json", help="where to write the numbers"),
) -> None:
    """Images/s of each degradation at SIZE x SIZE, and the speed-up over IA-YOLO's per-pixel loop."""
    from vat.bench.degrade import run_degrade

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
    from vat.bench.nuq import bench_nuq
    from vat.data.images import resolve_device

    dev = resolve_device(device)
    result = bench_nuq(n_ref, n_query, dim, k, str(dev), chunk, 0) | {"machine": machine()}
    out = out or REPORTS / f"nuq-{dev.type}.json"
    write_json(result, out)
    console.print(f"nuq: {result} -> {out}")


@app.command("detector")
@friendly_errors
def detector_command(
    size: int = typer.Option(256, help="image side, px (a multiple of 32)"),
    batch: int = typer.Option(4, help="images per step"),
    steps: int = typer.Option(10, help="timed steps per detector"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda"),
    out: Path = typer.Option(
        None, help="where to write the numbers (default reports/bench/detector-<device>.json)"
    ),
) -> None:
    """Images/s of D's predict and of a loss step, for the YOLOv5 port, YOLOv5's reference code
    (when installed) and ultralytics YOLOv8n, at the same size, in one run."""
    from vat.bench.detector import bench_detectors
    from vat.data.images import resolve_device

    dev = resolve_device(device)
    rows = bench_detectors(size, batch, steps, dev)
    out = out or REPORTS / f"detector-{'cpu' if dev.type != 'cuda' else torch_name(dev)}.json"
    write_json({"machine": machine(), "rows": rows}, out)
    for r in rows:
        speed = r.get("skipped") or f"predict {r['predict_img_s']} img/s, loss step {r['loss_img_s']} img/s"
        console.print(f"bench detector: {r['model']:75s} {speed}")
    console.print(f"bench detector -> {out}")


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
    from vat.bench.train import label, measure, pipeline_ratios, suite, train_table
    from vat.data.images import resolve_device

    dev = resolve_device(device)
    tag = "cpu" if dev.type != "cuda" else torch_name(dev)
    out = out or REPORTS
    json_path, md_path = out / f"train-{tag}.json", out / f"train-{tag}.md"
    result = {"device": tag, "machine": machine(), "rows": []}
    for row in measure(suite(dev, quick), dev, largest=largest and dev.type == "cuda" and not quick):
        result["rows"].append(row)
        write_json(result, json_path)  # after every row: a run cut short keeps what it measured
        status = (
            f"{row['images_per_s']:.2f} img/s, peak {row.get('peak_gib', '-')} GiB, "
            f"step peak {row.get('step_peak_gib', '-')} GiB, saved {row.get('saved_gib', '-')} GiB"
            if "images_per_s" in row
            else row.get("error") or "out of memory"
        )
        console.print(f"bench train: {label(row):60s} {status}")
    result["ratios"] = pipeline_ratios(result["rows"])
    write_json(result, json_path)
    md_path.write_text(train_table(result))
    console.print(f"bench train -> {json_path}, {md_path}")
