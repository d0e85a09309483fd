"""train_restorer: the frozen restorer R that VaT will sit behind.

VaT never trains R; this stage only exists so the embedded default has one. It trains
AOD-Net on (degraded, clean) training pairs (the paper's "retrained" AOD-Net, Table 1 †)
or SCI unsupervised on the degraded images alone (its own loss), picks the epoch with the
best PSNR on the val split, and reports PSNR / SSIM of the degraded input and of R's
output against the clean test images. With ``train_restorer.weights`` (a public AOD-Net or
SCI file, or one of ours) it trains nothing and only converts and checks that file; DCP
and identity need no weights; ``folder`` takes outputs any restorer produced elsewhere.

Reads:   params.yaml [common, train_restorer]; data/prepare/, data/degrade/
Writes:  data/train_restorer/restorer.json   {"arch", "weights", "folder"}: what restore builds
         data/train_restorer/restorer.pt     the weights (networks only), weights-only format
         reports/train_restorer/metrics.json PSNR / SSIM on the test split, per-epoch history
         reports/train_restorer/samples.png  degraded / restored / clean
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.datasets import PairedCrops, pair_records, resolve_device
from vat.errors import ParamsError
from vat.io import atomic_dir, load_rgb, save_png, write_json
from vat.manifest import read_manifest
from vat.seeding import item_seed

CLEAN = Path("data/prepare/manifest.parquet")
DEGRADED = Path("data/degrade/manifest.parquet")
OUT = Path("data/train_restorer")
REPORTS = Path("reports/train_restorer")
TRAINABLE = ("aodnet", "sci")


@dataclass(frozen=True)
class TrainRestorerParams:
    """``train_restorer``: which restorer R is, and how to train it when we must."""

    arch: Literal["aodnet", "sci", "dcp", "identity", "folder"]
    weights: str | None  # a trained checkpoint to use as is (no training); null: train one
    folder: str | None  # arch folder: restored images made elsewhere, named <image_id>.<ext>
    epochs: int  # passes over the training pairs
    batch: int  # crops per step
    crop: int  # training crop side, px
    lr: float  # Adam learning rate
    weight_decay: float  # Adam weight decay

    def __post_init__(self) -> None:
        if self.arch == "folder" and not self.folder:
            raise ValueError("train_restorer.folder: arch folder needs the folder of restored images")
        if min(self.epochs, self.batch, self.crop) < 1 or self.lr <= 0:
            raise ValueError("train_restorer: epochs, batch, crop and lr must be positive")


def run(
    common: CommonParams,
    params: TrainRestorerParams,
    clean_path: Path = CLEAN,
    degraded_path: Path = DEGRADED,
    out: Path = OUT,
    reports: Path = REPORTS,
    device: str = "auto",
    track: Track = no_track,
) -> dict:
    from vat.models.restorers import build_restorer, load_restorer, save_checkpoint

    dev = resolve_device(device)
    clean, degraded = read_manifest(clean_path), read_manifest(degraded_path)
    history: list[dict] = []
    with atomic_dir(out) as tmp:
        spec = {"arch": params.arch, "weights": None, "folder": params.folder}
        if params.arch in TRAINABLE:
            if params.weights:
                model = load_restorer(params.arch, params.weights)
                config = _config_of(model, params.arch)
            else:
                model, config, history = _train(common, params, clean, degraded, dev, track)
            save_checkpoint(model, params.arch, config, tmp / "restorer.pt")
            spec["weights"] = str(out / "restorer.pt")
        elif params.weights:
            raise ParamsError(f"train_restorer.weights: arch {params.arch!r} takes no weights file")
        write_json(spec, tmp / "restorer.json")
        restorer = build_restorer(
            params.arch, weights=tmp / "restorer.pt" if spec["weights"] else None, folder=params.folder
        )
        if hasattr(restorer, "to"):
            restorer = restorer.to(dev)
        quality = _quality(restorer, pair_records(degraded, clean, "test"), dev)
    metrics = {"arch": params.arch, "trained": bool(history), "device": str(dev)} | quality
    metrics["history"] = history
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    _samples(restorer, pair_records(degraded, clean, "test")[:4], dev, reports / "samples.png")
    return metrics


def _config_of(model: torch.nn.Module, arch: str) -> dict:
    """Constructor arguments of a loaded network, saved with its weights."""
    if arch == "aodnet":
        return {"b": model.b}
    return {"layers": model.enhance.layers, "channels": model.enhance.in_conv[0].out_channels}


def _train(common, params, clean, degraded, dev, track):
    """Adam on random crops; keep the epoch with the best val PSNR (SCI: the last epoch)."""
    from vat.models.restorers import AODNet, SCITrain, freeze

    gen = torch.Generator().manual_seed(item_seed(common.seed, "train_restorer"))
    train_pairs = pair_records(degraded, clean, "train")
    val_pairs = pair_records(degraded, clean, "val")
    if not train_pairs:
        raise ParamsError(
            "train_restorer: no (degraded, clean) training pairs; run degrade on the train split"
        )
    if params.arch == "aodnet":
        net = AODNet().init_weights(gen)
        config = {"b": 1.0}
    else:
        net = SCITrain().init_weights(gen)
        config = dict(net.config)
    net = net.to(dev).train()
    opt = torch.optim.Adam(net.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    data = PairedCrops(train_pairs, params.crop, gen)
    loader = torch.utils.data.DataLoader(data, batch_size=params.batch, shuffle=True, generator=gen)
    best, best_state, history = -np.inf, None, []
    for epoch in track(range(params.epochs), f"train_restorer {params.arch}", params.epochs):
        net.train()
        losses = []
        for low, target in loader:
            low, target = low.to(dev), target.to(dev)
            # AOD-Net: supervised MSE on pairs. SCI: its own unsupervised loss, no clean image.
            loss = (
                torch.nn.functional.mse_loss(net(low), target) if params.arch == "aodnet" else net.loss(low)
            )
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        inference = net if params.arch == "aodnet" else net.to_inference()
        inference.eval()
        val = _quality(inference, val_pairs, dev, ssim=False)["psnr_restored"] if val_pairs else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_psnr": val})
        # SCI never sees a clean image, not even to pick an epoch: it keeps the last one.
        if params.arch == "sci" or val > best or best_state is None:
            best = val
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    model = net if params.arch == "aodnet" else net.to_inference()
    return freeze(model.cpu()), config, history


@torch.no_grad()
def _quality(restorer, pairs, dev, ssim: bool = True) -> dict:
    """Mean PSNR / SSIM of degraded and restored images against the clean ones."""
    from vat.metrics import psnr
    from vat.metrics import ssim as ssim_of
    from vat.models.restorers import restore_image

    if not pairs:
        return {}
    rows: dict[str, list[float]] = {}
    for low_rec, clean_rec in pairs:
        low, clean = load_rgb(low_rec.path), load_rgb(clean_rec.path)
        restored = restore_image(restorer, low, low_rec.image_id, device=dev)
        for name, im in (("degraded", low), ("restored", restored)):
            rows.setdefault(f"psnr_{name}", []).append(min(psnr(im, clean, data_range=255), 100.0))
            if ssim:
                rows.setdefault(f"ssim_{name}", []).append(ssim_of(im, clean, data_range=255))
    out = {k: round(float(np.mean(v)), 4) for k, v in rows.items()}
    out["images"] = len(pairs)
    return out


@torch.no_grad()
def _samples(restorer, pairs, dev, path: Path) -> None:
    from vat.models.restorers import restore_image
    from vat.viz import grid

    tiles = []
    for low_rec, clean_rec in pairs:
        low = load_rgb(low_rec.path)
        tiles += [low, restore_image(restorer, low, low_rec.image_id, device=dev), load_rgb(clean_rec.path)]
    if tiles:
        save_png(grid(tiles, ncols=3), path)


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train (or take) the frozen restorer R: AOD-Net on pairs, SCI unsupervised, or DCP / identity / folder.

    Params: common, train_restorer. Reads data/prepare/ and data/degrade/. Writes
    data/train_restorer/ (restorer.json, restorer.pt) and reports/train_restorer/
    (metrics.json with test PSNR of degraded and restored images, samples.png).
    """
    common = load_common(params_file)
    params = load_section(TrainRestorerParams, "train_restorer", params_file)
    m = run(common, params, device=device, track=rich_track)
    console.print(
        f"train_restorer: {params.arch} ({'trained' if m['trained'] else 'as given'}), test PSNR "
        f"degraded {m.get('psnr_degraded')} dB -> restored {m.get('psnr_restored')} dB -> {OUT}"
    )
