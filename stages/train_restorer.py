"""train_restorer: the frozen restorer R that VaT will sit behind.

VaT never trains R; this stage only exists so the embedded default has one. It trains
AOD-Net on (degraded, clean) training pairs (the paper's "retrained" AOD-Net, Table 1 †)
or SCI unsupervised on the degraded images alone (its own loss), picks the epoch with the
best PSNR on the val split (vat/models/restorers/training.py), and reports PSNR / SSIM of
the degraded input and of R's output against the clean test images. With
``train_restorer.weights`` (a public AOD-Net or SCI file, or one of ours) it trains nothing
and only converts and checks that file; DCP and identity need no weights; ``folder`` takes
outputs any restorer produced elsewhere.

R's test PSNR below the degraded input's is a warning (or, with ``if_worse: stop``, an error
that keeps nothing of the stage).

Reads:   params.yaml [common, train_restorer]; data/prepare/, data/degrade/
Writes:  data/train_restorer/restorer.json   {"arch", "weights", "folder"}: what restore builds
         data/train_restorer/restorer.pt     the weights (networks only), weights-only format
         data/train_restorer/inputs.json     the fingerprint of your weights / folder (stages/inputs.py)
         reports/train_restorer/metrics.json PSNR / SSIM on the test split, per-epoch history, warnings
         reports/train_restorer/samples.png  degraded / restored / clean
"""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track, shout
from vat.config import CommonParams, load_common, load_section
from vat.data.images import pair_records, resolve_device
from vat.data.manifest import read_manifest
from vat.errors import ParamsError
from vat.eval.summary import write_metrics
from vat.eval.weak_links import restorer_worse
from vat.inputs import record, section_paths
from vat.io import atomic_dirs, load_rgb, save_png, write_json
from vat.layout import MAIN, RESTORER_SPEC, Layout
from vat.models.restorers.training import TRAINABLE, TrainRestorerParams, config_of, quality, train_restorer

__all__ = ["TrainRestorerParams", "command", "run"]


def run(
    common: CommonParams,
    params: TrainRestorerParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    track: Track = no_track,
) -> dict:
    """Train (or take) R into ``data/train_restorer``; returns the metrics."""
    from vat.models.restorers import build_restorer, load_restorer, save_checkpoint

    out, reports = layout.out("train_restorer"), layout.report("train_restorer")
    dev = resolve_device(device)
    clean, degraded = read_manifest(layout.clean), read_manifest(layout.degraded)
    history: list[dict] = []
    with atomic_dirs(out, reports) as (tmp, rtmp):
        spec = {"arch": params.arch, "weights": None, "folder": params.folder}
        if params.arch in TRAINABLE:
            if params.weights:
                model = load_restorer(params.arch, params.weights)
                config = config_of(model, params.arch)
            else:
                model, config, history = train_restorer(common.seed, params, clean, degraded, dev, track)
            save_checkpoint(model, params.arch, config, tmp / "restorer.pt")
            spec["weights"] = str(out / "restorer.pt")
        elif params.weights:
            raise ParamsError(f"train_restorer.weights: arch {params.arch!r} takes no weights file")
        write_json(spec, tmp / RESTORER_SPEC)
        record(section_paths("train_restorer", params), tmp, layout.data)  # your weights' fingerprint
        restorer = build_restorer(
            params.arch, weights=tmp / "restorer.pt" if spec["weights"] else None, folder=params.folder
        )
        if hasattr(restorer, "to"):
            restorer = restorer.to(dev)
        scores = quality(restorer, pair_records(degraded, clean, "test"), dev)
        warnings = restorer_worse(scores, params.arch, params.if_worse)  # if_worse stop: raises, nothing kept
        metrics = {"arch": params.arch, "trained": bool(history), "weights": params.weights,
                   "device": str(dev)} | scores  # fmt: skip
        metrics["warnings"] = warnings
        metrics["history"] = history
        write_metrics("train_restorer", metrics, rtmp)
        _samples(restorer, pair_records(degraded, clean, "test")[:4], dev, rtmp / "samples.png", params.arch)
    return metrics


@torch.no_grad()
def _samples(restorer, pairs, dev, path: Path, arch: str = "R") -> None:
    from vat.eval.viz import grid, label_strip
    from vat.models.restorers import restore_image

    tiles = []
    for low_rec, clean_rec in pairs:
        low = load_rgb(low_rec.path)
        restored = restore_image(restorer, low, low_rec.image_id, device=dev)
        clean_image = load_rgb(clean_rec.path)
        tiles += [
            label_strip(low, f"degraded {low_rec.image_id}"),
            label_strip(restored, f"restored by {arch}"),
        ]
        tiles.append(label_strip(clean_image, "clean"))
    if tiles:
        save_png(grid(tiles, ncols=3), path)


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train (or take) the frozen restorer R: AOD-Net, SCI, or DCP / identity / a folder."""
    common = load_common(params_file)
    params = load_section(TrainRestorerParams, "train_restorer", params_file)
    m = run(common, params, device=device, track=rich_track)
    finish(
        f"train_restorer: {params.arch} ({'trained' if m['trained'] else 'as given'}), test PSNR "
        f"degraded {m.get('psnr_degraded')} dB -> restored {m.get('psnr_restored')} dB -> "
        f"{MAIN.out('train_restorer')}"
    )
    shout("train_restorer", m)
