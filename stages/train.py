"""train: the VaT translator, label-free (Algorithm 1), on GPU when present, CPU otherwise.

Each step pairs a batch of degraded training images (with their cached restorations and
kept pseudo-boxes) with as many clean training images (with theirs), crops both, fuses
I_LQ and R(I_LQ) with the gate G, and minimises ``cycle_weight * L_cyc + mle_weight *
L_mle`` (vat/train/losses.py) with D frozen in eval mode; AdamW, the lr schedule in
params; the loop is :func:`vat.train.loop.fit`.

Labels: training reads no ground truth and no (degraded, clean) pair of the same picture.
The only labels this stage reads are the *val* split's boxes, to choose the checkpoint
(``select: val``); the test split is never read. The last epoch is kept as well.

Classification (``common.task: classify``, the paper's Task 2): the same loop with D a
frozen classifier; each image carries D's soft pseudo-label and its weight
(``labels.parquet``) instead of boxes, and the checkpoint is selected on val accuracy.

Resume: a killed run resumes from ``data/train.resume/state.pt`` on the next ``vat train``
/ ``dvc repro`` when params and inputs are the same, and says so; a state that does not
match is moved to ``data/train.resume.stale-N/`` (never deleted); ``--fresh`` moves it
there too and starts over. A run that fails or is killed leaves the previous outputs as
they were.

Distributed: under ``torchrun --nproc_per_node N $(which vat) train`` each process takes
1/N of every global batch (``train.batch``) and D's loss is computed on the gathered global
batch, so the run matches a single process.

Reads:   params.yaml [common, train]; data/pseudolabel/ (images.parquet, boxes.parquet or
         labels.parquet; reference.npz with labels: online), data/prepare/ (clean image paths;
         val labels for selection), data/degrade/, data/restore/, data/train_detector/,
         data/train_restorer/restorer.json
Writes:  data/train/translator.pt        the selected translator (G + T_A), with its config
         data/train/last.pt              the last epoch's translator
         reports/train/metrics.json      parameters, steps, img/s, val score per epoch, selection
         reports/train/live/             DVCLive logs (loss curves, val score): `dvc plots show`
         reports/train/samples.png       val images: degraded / restored / gate w / translated
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import typer

from stages._ui import Track, finish, friendly_errors, no_track, rich_track, sayer, speed_options
from vat.config import CommonParams, load_common, load_section
from vat.layout import MAIN, Layout
from vat.train.config import TrainParams
from vat.train.speed import Speed

__all__ = ["TrainParams", "command", "run"]


# Nine parameters: the stage's params and layout, its command-line options, and the tests' stop_after.
def run(
    common: CommonParams,
    params: TrainParams,
    layout: Layout = MAIN,
    *,
    speed: Speed = Speed(),
    device: str = "auto",
    fresh: bool = False,
    stop_after: int | None = None,
    track: Track = no_track,
    say: Callable[[str], None] | None = None,
) -> dict:
    """Train into ``layout``'s folders of train; returns what ``metrics.json`` holds.

    ``fresh``: start over (a resume state is moved aside, kept). ``say``: where the lines for
    the user go (resumed at step N; a state moved aside). ``stop_after``: stop after that many
    steps as if killed (after any checkpoint due at that step), writing nothing but the
    resume state; for tests of resume.
    """
    from dataclasses import asdict

    from vat.data.images import resolve_device
    from vat.errors import ParamsError
    from vat.seeding import item_seed
    from vat.train import distributed as dist
    from vat.train.inputs import input_files, load_inputs
    from vat.train.loop import Run, VatObjective, fit
    from vat.train.results import build_translator
    from vat.train.resume import fingerprint

    dev = resolve_device(device)
    _, world = dist.init_from_env(dev)
    if world > 1 and dev.type == "cuda":
        import torch

        dev = torch.device("cuda", torch.cuda.current_device())
    speed = speed.resolve(dev)
    try:
        if params.batch % world:
            raise ParamsError(f"train.batch={params.batch} does not split over {world} processes")
        fp = fingerprint([asdict(common), asdict(params), speed.bf16], input_files(common.task, layout))
        ins = load_inputs(common.task, params.batch, params.select, layout, dev)
        model = build_translator(params, item_seed(common.seed, "train-init"), speed, dev)
        relabel = None
        if params.labels == "online":
            if common.task == "classify":
                raise ParamsError("train.labels: online is for detection; classification uses cached labels")
            from vat.labels.online import REFERENCE, OnlineLabels

            relabel = OnlineLabels(ins.detector, layout.pseudolabels / REFERENCE, dev)
        objective = VatObjective(model, ins.detector, params, speed, common.seed, dev, relabel)
        spec = layout.restorer_spec
        restorer = json.loads(spec.read_text()) if spec.is_file() else None
        return fit(objective, Run(common.seed, params, ins, dev, layout.out("train"), layout.report("train"),
                                  layout.resume("train"), fp, base_meta={"restorer": restorer}, fresh=fresh,
                                  stop_after=stop_after, track=track, speed=speed, say=say))  # fmt: skip
    finally:
        dist.cleanup()


def summary(m: dict) -> str:
    """The one line a training stage prints."""
    sel = m["selected"]
    named = {"val_map50": "val mAP@0.5", "val_accuracy": "val accuracy"}
    score = "".join(f", {name} {sel[k]:.4f}" for k, name in named.items() if k in sel)
    return (
        f"{m['steps']} steps at {m['images_per_second']} img/s on {m['device']}; selected epoch "
        f"{sel['epoch']} ({sel['selected']}{score})"
    )


@friendly_errors
@speed_options
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    fresh: bool = typer.Option(
        False, "--fresh", help="start over: a resumable state in data/train.resume is moved aside (kept)"
    ),
    speed: Speed = Speed(),
) -> None:
    """Train the VaT translator without labels on cached restorations and pseudo-labels."""
    common = load_common(params_file)
    params = load_section(TrainParams, "train", params_file)
    main = os.environ.get("RANK", "0") == "0"
    m = run(common, params, speed=speed, device=device, fresh=fresh, track=rich_track if main else no_track,
            say=sayer("train"))  # fmt: skip
    if "translator" not in m:
        return
    finish(
        f"train: {m['translator']} ({m['params_inference'] / 1e6:.3f}M), {summary(m)} -> {MAIN.translator()}"
    )
