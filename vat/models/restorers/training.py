"""Training (or taking) the restorer R for the embedded default; scoring R against clean pairs.

VaT never trains R; the ``train_restorer`` stage exists so the embedded default has one.
AOD-Net trains on (degraded, clean) pairs with MSE (the paper's "retrained" AOD-Net, Table 1
dagger) and keeps the epoch with the best val PSNR; SCI trains unsupervised on the degraded
images alone with its own loss and keeps its last epoch (it never sees a clean image).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vat.errors import ParamsError
from vat.io import load_rgb
from vat.seeding import item_seed

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
    if_worse: str  # warn | stop: R's test PSNR below the degraded input's (vat/eval/weak_links.py)

    def __post_init__(self) -> None:
        if self.arch == "folder" and not self.folder:
            raise ValueError("train_restorer.folder: arch folder needs the folder of restored images")
        if min(self.epochs, self.batch, self.crop) < 1 or self.lr <= 0:
            raise ValueError("train_restorer: epochs, batch, crop and lr must be positive")
        if self.if_worse not in ("warn", "stop"):
            raise ValueError(f"train_restorer.if_worse: {self.if_worse!r} is not warn | stop")


def config_of(model: torch.nn.Module, arch: str) -> dict:
    """Constructor arguments of a loaded network, saved with its weights."""
    if arch == "aodnet":
        return {"b": model.b}
    return {"layers": model.enhance.layers, "channels": model.enhance.in_conv[0].out_channels}


def train_restorer(seed: int, params: TrainRestorerParams, clean, degraded, dev, track):
    """Adam on random crops; keep the epoch with the best val PSNR (SCI: the last epoch).
    Returns (frozen network, its config, per-epoch history)."""
    from vat.data.images import PairedCrops, pair_records
    from vat.models.restorers import AODNet, SCITrain, freeze
    from vat.models.restorers.base import cpu_layout

    gen = torch.Generator().manual_seed(item_seed(seed, "train_restorer"))
    train_pairs = pair_records(degraded, clean, "train")
    val_pairs = pair_records(degraded, clean, "val")
    if not train_pairs:
        raise ParamsError(
            "train_restorer: no (degraded, clean) training pairs to train on (photographs given degraded "
            "have none): set train_restorer.weights, or arch dcp | identity | folder"
        )
    if params.arch == "aodnet":
        net = AODNet().init_weights(gen)
        config = {"b": 1.0}
    else:
        net = SCITrain().init_weights(gen)
        config = dict(net.config)
    net = cpu_layout(net.to(dev)).train()
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
        val = quality(inference, val_pairs, dev, ssim=False)["psnr_restored"] if val_pairs else float("nan")
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_psnr": val})
        # SCI never sees a clean image, not even to pick an epoch: it keeps the last one.
        if params.arch == "sci" or val > best or best_state is None:
            best = val
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    net.load_state_dict(best_state)
    model = net if params.arch == "aodnet" else net.to_inference()
    return freeze(model.cpu()), config, history


@torch.no_grad()
def quality(restorer, pairs, dev, ssim: bool = True) -> dict:
    """Mean PSNR / SSIM of degraded and restored images against the clean ones."""
    from vat.eval.metrics import psnr
    from vat.eval.metrics import ssim as ssim_of
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
