"""unpaired: the CycleGAN-style baseline: VaT's translator trained adversarially, no pseudo-labels.

The same translator as ``train`` (``train.translator``, its gate G, T_A and T_B, the same
size and init), the same images, crops, batches, steps and val selection, but the objective
of CycleGAN (vat/train/unpaired.py): cycle consistency plus least-squares adversarial
losses from two PatchGAN critics, one judging T_A(I_F) against clean images and one
T_B(I_HQ) against fused degraded ones. D (the detector) is not in the loss; it is used only
to choose the checkpoint on the val split, as for VaT, so the two rows differ in the
objective alone. The pseudo-label tables are read only for their lists of degraded and
clean training images (the same disjoint halves VaT trains on); their boxes are never used.
The loop is :func:`vat.train.loop.fit` (resumable as ``train``); single process, fp32.

Reads:   params.yaml [common, train (translator, batch, crop, epochs, schedule, selection),
         unpaired]; data/pseudolabel/images.parquet (image lists), data/prepare/,
         data/degrade/, data/restore/, data/train_detector/ (val selection only)
Writes:  data/unpaired/translator.pt, last.pt   as data/train/ (G + T_A)
         reports/unpaired/metrics.json           steps, img/s, val mAP per epoch, final losses
         reports/unpaired/live/                  DVCLive logs (losses, val mAP)
         reports/unpaired/samples.png            val images: degraded / restored / gate / translated
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track, sayer
from vat.config import CommonParams, load_common, load_section
from vat.layout import MAIN, Layout
from vat.train.config import TrainParams, UnpairedParams

__all__ = ["UnpairedParams", "command", "run"]


def run(
    common: CommonParams,
    train: TrainParams,
    params: UnpairedParams,
    layout: Layout = MAIN,
    *,
    device: str = "auto",
    fresh: bool = False,
    track: Track = no_track,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Train the baseline; returns what ``reports/unpaired/metrics.json`` holds (``fresh``,
    ``say``: as ``train``'s)."""
    import torch

    from vat.data.images import resolve_device
    from vat.errors import ParamsError
    from vat.seeding import item_seed
    from vat.train.inputs import input_files, load_inputs
    from vat.train.loop import Run, fit
    from vat.train.results import build_translator
    from vat.train.resume import fingerprint
    from vat.train.speed import PLAIN
    from vat.train.unpaired import CycleGANObjective

    if common.task == "classify":
        raise ParamsError("unpaired: the classification task is not built yet (detection only)")
    dev = resolve_device(device)
    fp = fingerprint([asdict(common), asdict(train), asdict(params)], input_files(common.task, layout))
    ins = load_inputs(common.task, train.batch, train.select, layout, dev)
    torch.manual_seed(item_seed(common.seed, "unpaired-init"))  # the critics' init
    model = build_translator(train, item_seed(common.seed, "train-init"), PLAIN, dev, use_cycle=True)
    objective = CycleGANObjective(model, params, train, common.seed, dev)
    spec = layout.restorer_spec
    meta = {"restorer": json.loads(spec.read_text()) if spec.is_file() else None, "objective": "cyclegan"}
    return fit(objective, Run(common.seed, replace(train, use_cycle=True), ins, dev, layout.out("unpaired"),
                              layout.report("unpaired"), layout.resume("unpaired"), fp, epochs=params.epochs,
                              base_meta=meta, fresh=fresh, track=track, speed=PLAIN, say=say))  # fmt: skip


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    fresh: bool = typer.Option(
        False, "--fresh", help="start over: a resumable state in data/unpaired.resume is moved aside (kept)"
    ),
) -> None:
    """Train the CycleGAN-style unpaired baseline: VaT's translator, cycle + adversarial, no pseudo-labels."""
    common = load_common(params_file)
    train = load_section(TrainParams, "train", params_file)
    params = load_section(UnpairedParams, "unpaired", params_file)
    m = run(common, train, params, device=device, fresh=fresh, track=rich_track,
            say=sayer("unpaired"))  # fmt: skip
    sel = m["selected"]
    score = f", val mAP@0.5 {sel['val_map50']:.4f}" if "val_map50" in sel else ""
    finish(
        f"unpaired: {m['translator']} ({m['params_inference'] / 1e6:.3f}M) + critics "
        f"({m['params_critics'] / 1e6:.3f}M), {m['steps']} steps at {m['images_per_second']} img/s; "
        f"selected epoch {sel['epoch']} ({sel['selected']}{score}) -> {MAIN.translator('unpaired')}"
    )
