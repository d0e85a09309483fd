"""train: the VaT translator, label-free (Algorithm 1), on GPU when present, CPU otherwise.

Each step pairs a batch of degraded training images (with their cached restorations and
kept pseudo-boxes) with as many clean training images (with theirs), crops both, fuses
I_LQ and R(I_LQ) with the gate G, and minimises ``cycle_weight * L_cyc + mle_weight *
L_mle`` (vat/losses.py) with D frozen in eval mode. AdamW; the lr schedule in params.

Labels: training reads no ground truth and no (degraded, clean) pair of the same picture.
The only labels this stage reads are the *val* split's boxes, to choose the checkpoint
(``select: val``); the test split is never read. The last epoch is kept as well.

Classification (``common.task: classify``, the paper's Task 2): the same loop with D a
frozen classifier; each image carries D's soft pseudo-label and its weight
(``labels.parquet``) instead of boxes, the loss is :func:`vat.losses.vat_loss_classify`,
and the checkpoint is selected on val accuracy (``val_accuracy`` where detection writes
``val_map50``).

Checkpoints and resume: the full training state (translator with T_B, optimizer,
scheduler, step, history, best so far) is written atomically to
``data/train.resume/state.pt`` every ``checkpoint_every`` steps and at each epoch's end.
A run that is killed resumes from it on the next ``vat train`` / ``dvc repro`` when the
params and inputs are the same (a fingerprint is checked; a stale state is moved to
``data/train.resume.stale/``, never deleted), and ends with the same weights as an
uninterrupted run (CPU, same seed). A NaN or infinite loss stops training with a message
naming the step; the state file keeps the last good checkpoint. ``--fresh`` ignores it.

Distributed: under ``torchrun --nproc_per_node N -m stages.cli train`` (or ``torchrun
$(which vat) train``) each process takes 1/N of every global batch (``train.batch`` is the
global batch) and DistributedDataParallel averages gradients; D's loss is computed on the
gathered global batch, so the run matches a single process (vat/losses.py).

Reads:   params.yaml [common, train]; data/pseudolabel/ (images.parquet, boxes.parquet or labels.parquet),
         data/prepare/ (clean image paths; val boxes for selection), data/degrade/,
         data/restore/, data/train_detector/
Writes:  data/train/translator.pt        the selected translator (G + T_A), with its config
         data/train/last.pt              the last epoch's translator
         reports/train/metrics.json      parameters, steps, img/s, val mAP per epoch, selection
         reports/train/live/             DVCLive logs (loss curves, val mAP): `dvc plots show`
         reports/train/samples.png       val images: degraded / restored / gate w / translated
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from vat.config import CommonParams, load_common, load_section
from vat.datasets import resolve_device
from vat.errors import DataError, ParamsError, VatError
from vat.io import atomic_dir, save_png, save_torch, write_json
from vat.seeding import item_seed

PSEUDOLABELS = Path("data/pseudolabel")
CLEAN = Path("data/prepare/manifest.parquet")
DEGRADED = Path("data/degrade/manifest.parquet")
RESTORED = Path("data/restore/manifest.parquet")
MODELS = Path("data/train_detector")
RESTORER = Path("data/train_restorer/restorer.json")
OUT = Path("data/train")
RESUME = Path("data/train.resume")
REPORTS = Path("reports/train")
STATE_FORMAT = "vat-train-state/1"


class TrainingError(VatError):
    """Training cannot go on (a non-finite loss); the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainParams:
    """``train``: the translator, its loss (Table 4 switches) and the optimisation."""

    translator: str  # a name in vat/models/translator.py TRANSLATORS: vat-w4 ... vat-w48, vat-release(-w48)
    identity_init: bool  # T_A and T_B start as the identity (zeroed output conv); false: PyTorch's init
    epochs: int  # passes over the degraded training images
    batch: int  # (degraded, clean) pairs per step, the global batch under torchrun
    crop: int | None  # random square crop side, px (padded where an image is smaller); null: whole images
    lr: float  # AdamW
    weight_decay: float  # AdamW (betas 0.9, 0.999)
    schedule: Literal["constant", "cosine", "cosine_restarts"]  # lr schedule over steps
    restart_steps: int  # cosine_restarts: first period in steps (doubles each restart)
    min_lr: float  # floor of the cosine schedules
    cycle_weight: float  # weight of L_cyc
    mle_weight: float  # weight of L_mle
    use_cycle: bool  # Table 4 "w/o L_cyc" when false
    use_mle: bool  # Table 4 "w/o L_mle" when false
    use_gate: bool  # Table 4 "w/o gated fusion" when false (I_F = I_R)
    mixup: Literal["none", "plain", "uncertainty"]  # Table 4 rows; uncertainty = Eq. 7
    alpha: float  # lam ~ Beta(alpha, alpha)
    fold_lambda: bool  # released code: lam = max(lam, 1 - lam)
    gate_flow: bool  # released code: also L_h(I_mix) straight into D
    clean_weights: bool  # weight the clean term's boxes by their uncertainty too
    select: Literal["val", "last"]  # checkpoint: best val mAP@0.5 (val split labels), or the last epoch
    val_every: int  # epochs between validations
    checkpoint_every: int  # steps between resume checkpoints (also at every epoch end)
    log_every: int  # steps between logged loss points

    def __post_init__(self) -> None:
        if min(self.epochs, self.batch, self.val_every, self.checkpoint_every, self.log_every) < 1:
            raise ValueError("train: epochs, batch, val_every, checkpoint_every, log_every must be >= 1")
        if self.crop is not None and self.crop < 8:
            raise ValueError("train.crop must be >= 8 px or null")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr or self.restart_steps < 1:
            raise ValueError("train: need lr > 0, 0 <= min_lr <= lr, restart_steps >= 1")

    def loss_config(self):
        from vat.losses import LossConfig

        return LossConfig(
            cycle_weight=self.cycle_weight, mle_weight=self.mle_weight, use_cycle=self.use_cycle,
            use_mle=self.use_mle, mixup=self.mixup, alpha=self.alpha, fold_lambda=self.fold_lambda,
            gate_flow=self.gate_flow, clean_weights=self.clean_weights,
        )  # fmt: skip


@dataclass(frozen=True)
class Speed:
    """Speed options: command-line flags, not params (they change results by bf16 rounding at most)."""

    bf16: bool | None = None  # autocast to bfloat16; None: on CUDA only
    channels_last: bool | None = None  # None: on CUDA only
    compile: bool = False  # torch.compile every transformer block (VaT.compile_blocks)
    checkpoint: bool = False  # activation checkpointing of every transformer block (less memory)
    checkpoint_detector: bool = False  # D's forward in the loss recomputed in backward (less memory)
    fold_batchnorm: bool | None = None  # fold D's BatchNorms into its convs (detectors); None: on CUDA only
    one_detector_pass: bool | None = None  # the loss terms share one D forward; None: on CUDA only
    compile_detector: bool = False  # torch.compile D's layers (detectors)

    def resolve(self, device: torch.device) -> Speed:
        cuda = device.type == "cuda"
        return replace(
            self,
            bf16=cuda if self.bf16 is None else self.bf16,
            channels_last=cuda if self.channels_last is None else self.channels_last,
            fold_batchnorm=cuda if self.fold_batchnorm is None else self.fold_batchnorm,
            one_detector_pass=cuda if self.one_detector_pass is None else self.one_detector_pass,
        )


def fingerprint(common: CommonParams, params: TrainParams, speed: Speed, inputs: list[Path]) -> str:
    """What a resumable state must match: params, bf16, and the bytes of every input."""
    h = hashlib.sha256(json.dumps([asdict(common), asdict(params), speed.bf16], sort_keys=True).encode())
    for p in inputs:
        h.update(str(p).encode())
        h.update(hashlib.sha256(p.read_bytes()).digest() if p.is_file() else b"-")
    return h.hexdigest()


def build_model(common: CommonParams, params: TrainParams, speed: Speed, device: torch.device):
    from vat.models.translator import create_translator

    return create_translator(
        params.translator, seed=item_seed(common.seed, "train-init"), with_t_b=params.use_cycle,
        use_gate=params.use_gate, identity_init=params.identity_init, checkpoint=speed.checkpoint,
    ).to(device)  # fmt: skip


def _inference_model(common: CommonParams, params: TrainParams):
    from vat.models.translator import create_translator

    return create_translator(params.translator, with_t_b=False, use_gate=params.use_gate,
                             identity_init=params.identity_init)  # fmt: skip


def run(
    common: CommonParams,
    params: TrainParams,
    speed: Speed = Speed(),
    pseudolabels: Path = PSEUDOLABELS,
    clean_path: Path = CLEAN,
    degraded_path: Path = DEGRADED,
    restored_path: Path = RESTORED,
    models: Path = MODELS,
    out: Path = OUT,
    resume_dir: Path = RESUME,
    reports: Path = REPORTS,
    device: str = "auto",
    fresh: bool = False,
    stop_after: int | None = None,
    track: Track = no_track,
    restorer_spec: Path = RESTORER,
) -> dict:
    """Train; returns the summary written to ``reports/metrics.json``.

    ``restorer_spec``: the restorer's ``restorer.json``, recorded in the checkpoints' meta.

    ``stop_after``: stop after that many steps as if killed (after any checkpoint due at
    that step), writing nothing but the resume state; for tests of resume.
    """
    from vat import distributed as dist

    dev = resolve_device(device)
    rank, world = dist.init_from_env(dev)
    if world > 1 and dev.type == "cuda":
        dev = torch.device("cuda", torch.cuda.current_device())
    speed = speed.resolve(dev)
    try:
        if params.batch % world:
            raise ParamsError(f"train.batch={params.batch} does not split over {world} processes")
        d_file = "classifier" if common.task == "classify" else "detector.pt"
        inputs = [pseudolabels / "images.parquet", pseudolabels / label_file(common.task), clean_path,
                  degraded_path, restored_path] + sorted(models.glob(d_file + "*"))  # fmt: skip
        fp = fingerprint(common, params, speed, inputs)
        ins = load_inputs(common, params, pseudolabels, clean_path, degraded_path, restored_path, models, dev)
        model = build_model(common, params, speed, dev)
        return _loop(common, params, speed, ins.data, ins.spe, ins.detector, model, ins.val, ins.classes, fp,
                     dev, rank, world, out, resume_dir, reports, fresh, stop_after, track,
                     restorer_spec)  # fmt: skip
    finally:
        dist.cleanup()


@dataclass
class Inputs:
    """What a translator's training reads, loaded and checked (train and unpaired share it)."""

    classes: list[str]
    detector: object  # the frozen D
    data: object  # vat.training.TrainingData
    spe: int  # steps per epoch
    val: list  # (degraded, restored, truth) records of the val split; empty with select: last


def load_inputs(
    common: CommonParams,
    params: TrainParams,
    pseudolabels: Path,
    clean_path: Path,
    degraded_path: Path,
    restored_path: Path,
    models: Path,
    dev: torch.device,
) -> Inputs:
    """The pseudo-labelled training images (at D's scale for detection), D, and the val split for
    selection."""
    from vat.evaluation import load_vision_model, translation_triples
    from vat.manifest import read_manifest
    from vat.training import load_classification_data, load_training_data, steps_per_epoch

    for p in (pseudolabels / "images.parquet", pseudolabels / label_file(common.task)):
        if not p.is_file():
            raise DataError(f"{p}: missing; run `vat pseudolabel` first")
    clean = read_manifest(clean_path)
    detector = load_vision_model(common.task, models, clean.classes, dev)
    if common.task == "classify":
        data = load_classification_data(pseudolabels, clean_path, degraded_path, restored_path)
    else:
        data = load_training_data(pseudolabels, clean_path, degraded_path, restored_path,
                                  detector.imgsz if detector.resize else None)  # fmt: skip
    spe = steps_per_epoch(len(data.degraded), params.batch)
    if spe < 1:
        raise DataError(
            f"{pseudolabels / 'images.parquet'}: {len(data.degraded)} degraded training images, "
            f"fewer than train.batch={params.batch}"
        )
    truth = {r.image_id: r for r in clean.split("val")}
    val = translation_triples(truth, degraded_path, restored_path, "val") if params.select == "val" else []
    if params.select == "val" and not val:
        raise DataError(f"{clean_path}: no val split to select a checkpoint on; set train.select: last")
    return Inputs(clean.classes, detector, data, spe, val)


def snapshot(model) -> dict:
    """A CPU copy of the inference weights (G + T_A) of a training translator."""
    from vat.models.translator import inference_state

    return {k: v.detach().cpu().clone() for k, v in inference_state(model.state_dict()).items()}


def write_translators(out: Path, inference, last_state: dict, best: dict | None, best_state: dict | None,
                      base: dict, select: str, epochs: int) -> dict:  # fmt: skip
    """``out/last.pt`` and ``out/translator.pt`` (the val-selected one, or the last), atomically
    together; returns the selected one's meta."""
    from vat.models.translator import save_translator

    chosen = "last" if select == "last" or best_state is None else "val"
    meta = base | {"epoch": epochs, "selected": "last"}
    with atomic_dir(out) as tmp:
        inference.load_state_dict(last_state)
        save_translator(inference, tmp / "last.pt", meta)
        if chosen == "val":
            inference.load_state_dict(best_state)
            meta = base | {"epoch": best["epoch"], "selected": "val"}
            meta |= {k: v for k, v in best.items() if k.startswith("val_")}  # val_map50 or val_accuracy
        save_translator(inference, tmp / "translator.pt", meta)
    return meta


def _load_state(path: Path, fp: str, fresh: bool) -> dict | None:
    from vat.models.restorers import read_checkpoint

    if fresh or not path.is_file():
        return None
    state = read_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT or state.get("fingerprint") != fp:
        stale = path.parent.with_name(path.parent.name + ".stale")
        if stale.exists():
            shutil.rmtree(stale)
        path.parent.rename(stale)
        return {"stale": str(stale)}
    return state


def _loop(common, params, speed, data, spe, detector, model, val, classes, fp, dev, rank, world, out,
          resume_dir, reports, fresh, stop_after, track, restorer_spec=RESTORER) -> dict:  # fmt: skip
    from vat import distributed as dist
    from vat.training import (
        TrainGraph,
        lambda_generator,
        lr_factor,
        make_batch,
        targets_to,
        to_float,
    )

    total_steps = spe * params.epochs
    key = val_key(common.task)
    opt = torch.optim.AdamW(
        model.parameters(), lr=params.lr, betas=(0.9, 0.999), weight_decay=params.weight_decay
    )
    ratio = params.min_lr / params.lr
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, total_steps, params.schedule, params.restart_steps, ratio)
    )
    state_path = resume_dir / "state.pt"
    state = _load_state(state_path, fp, fresh) if dist.is_main() else None
    state = dist.broadcast_object(state)
    stale = None
    if state is not None and "stale" in state:
        stale, state = state["stale"], None
    start, history, vals, best, best_state, seconds = 0, [], [], None, None, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, history, vals = int(state["step"]), list(state["history"]), list(state["val"])
        best, best_state, seconds = state["best"], state["best_state"], float(state["seconds"])
    if speed.channels_last:
        model.to(memory_format=torch.channels_last)
    if speed.compile:
        model.compile_blocks()
    shard = dist.shard(params.batch)
    graph = TrainGraph(model, detector, params.loss_config(), dist.all_gather_cat if world > 1 else None,
                       shard if world > 1 else None, torch.bfloat16 if speed.bf16 else None,
                       checkpoint_detector=speed.checkpoint_detector, fold_batchnorm=speed.fold_batchnorm,
                       one_detector_pass=speed.one_detector_pass,
                       compile_detector=speed.compile_detector)  # fmt: skip
    step_fn = graph
    if world > 1:
        step_fn = torch.nn.parallel.DistributedDataParallel(
            graph, device_ids=[dev.index] if dev.type == "cuda" else None, broadcast_buffers=False
        )
    live = _live(reports, history, vals, key) if dist.is_main() else None

    def save_state(step: int) -> None:
        if not dist.is_main():
            return
        payload = {
            "format": STATE_FORMAT, "fingerprint": fp, "step": step, "model": model.state_dict(),
            "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "history": history, "val": vals,
            "best": best, "best_state": best_state, "seconds": seconds,
        }  # fmt: skip
        save_torch(payload, state_path)

    running: dict[str, list[float]] = {}
    t_mark = time.perf_counter()
    epochs = range(start // spe, params.epochs)
    for epoch in track(epochs, f"train {params.translator}", len(epochs)):
        model.train()
        for step in range(max(start, epoch * spe), (epoch + 1) * spe):
            b = make_batch(data, step, params.batch, params.crop, common.seed)
            sl = shard if world > 1 else slice(None)
            lq, r, hq = (to_float(x[sl], dev, speed.channels_last) for x in (b.lq, b.restored, b.hq))
            losses = step_fn(lq, r, hq, targets_to(b.targets_lq, dev), targets_to(b.targets_hq, dev),
                             lambda_generator(common.seed, step, dev))  # fmt: skip
            logged = {
                k: losses[k].detach().float() for k in ("total", "cycle", "mle", "mle_clean", "mle_mix")
            }
            logged = {k: dist.all_reduce_mean(v) for k, v in logged.items()} if world > 1 else logged
            if not all(bool(torch.isfinite(v)) for v in logged.values()):
                bad = ", ".join(f"{k} {float(v):.4g}" for k, v in logged.items())
                keep = (
                    f"{state_path} (step {_saved_step(state_path)})"
                    if state_path.is_file()
                    else "no checkpoint yet"
                )
                raise TrainingError(
                    f"train: step {step}: non-finite loss ({bad}); stopped. Last good checkpoint: {keep}. "
                    "Lower train.lr or check the inputs"
                )
            opt.zero_grad(set_to_none=True)
            losses["total"].backward()
            opt.step()
            sched.step()
            for k, v in logged.items():
                running.setdefault(k, []).append(float(v))
            done = step + 1
            if done % params.log_every == 0 or done % spe == 0:
                now = time.perf_counter()
                seconds += now - t_mark
                t_mark = now
                row = {"step": done, "epoch": done / spe, "lr": opt.param_groups[0]["lr"]}
                row |= {k: float(np.mean(v)) for k, v in running.items()}
                running = {}
                history.append(row)
                if live is not None:
                    _log_train(live, row)
            if done % spe == 0:
                ep = done // spe
                if val and (ep % params.val_every == 0 or ep == params.epochs) and dist.is_main():
                    score = _validate(model, detector, val, classes, dev, speed)
                    vals.append({"epoch": ep, "step": done, key: score})
                    _log_val(live, done, key, score)
                    if best is None or score > best[key]:
                        best = {"epoch": ep, "step": done, key: score}
                        best_state = snapshot(model)
                    model.train()
                t_mark = time.perf_counter()  # validation time is not training time
                save_state(done)
            elif done % params.checkpoint_every == 0:
                save_state(done)
            if stop_after is not None and done >= stop_after:
                dist.barrier()
                return {"interrupted": True, "step": done, "state": str(state_path)}
        dist.barrier()
    if not dist.is_main():
        return {"rank": dist.rank()}
    return _finish(
        common,
        params,
        speed,
        model,
        best,
        best_state,
        history,
        vals,
        seconds,
        total_steps,
        spe,
        data,
        detector,
        val,
        classes,
        dev,
        world,
        out,
        resume_dir,
        reports,
        stale,
        live,
        restorer_spec,
    )


def _saved_step(path: Path) -> int | str:
    from vat.models.restorers import read_checkpoint

    try:
        return int(read_checkpoint(path)["step"])
    except (VatError, KeyError, TypeError):
        return "?"


def _finish(common, params, speed, model, best, best_state, history, vals, seconds, total_steps, spe, data,
            detector, val, classes, dev, world, out, resume_dir, reports, stale, live,
            restorer_spec=RESTORER) -> dict:  # fmt: skip
    from vat.models.translator import parameter_count

    key = val_key(common.task)
    restorer = json.loads(restorer_spec.read_text()) if restorer_spec.is_file() else None
    base = {"translator": params.translator, "restorer": restorer, "epochs": params.epochs}
    last_state = snapshot(model)
    chosen = "last" if params.select == "last" or best_state is None else "val"
    inference = _inference_model(common, params)
    meta = write_translators(out, inference, last_state, best, best_state, base, params.select, params.epochs)
    images = total_steps * params.batch
    metrics = {
        "translator": params.translator,
        "params_inference": parameter_count(inference.gate) + parameter_count(inference.t_a),
        "params_total": parameter_count(model),
        "device": str(dev) if world == 1 else f"{world} x {dev.type}",
        "speed": asdict(speed),
        "steps": total_steps,
        "steps_per_epoch": spe,
        "degraded_images": len(data.degraded),
        "clean_images": len(data.clean),
        "train_seconds": round(seconds, 2),
        "images_per_second": round(images / seconds, 3) if seconds > 0 else None,
        "selected": meta,
        "val": vals,
        f"last_{key}": vals[-1][key] if vals else None,
        "final_loss": {k: round(v, 5) for k, v in history[-1].items() if k not in ("step", "epoch", "lr")},
        "resumed_from_stale": stale,
    }
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    if live is not None:
        live.end()
    if val:
        inference.load_state_dict(best_state if chosen == "val" else last_state)
        _samples(inference.to(dev), detector, val[:4], classes, dev, reports / "samples.png")
    shutil.rmtree(resume_dir, ignore_errors=True)
    return metrics


# -- validation and pictures ------------------------------------------------------------------


def label_file(task: str) -> str:
    """The pseudo-label table of ``data/pseudolabel/`` a training reads: soft labels or boxes."""
    return "labels.parquet" if task == "classify" else "boxes.parquet"


def val_key(task: str) -> str:
    """The val score a checkpoint is selected on: mAP@0.5, or accuracy for classification."""
    return "val_accuracy" if task == "classify" else "val_map50"


def _validate(model, detector, val, classes, dev, speed) -> float:
    from vat.evaluation import translated_classifications, translated_detections
    from vat.metrics import evaluate_detections
    from vat.models.classifier import FrozenClassifier

    if isinstance(detector, FrozenClassifier):
        probs, labels = translated_classifications(detector, model, val, dev, bool(speed.bf16))
        return round(float((probs.argmax(1) == labels).mean()), 5)
    dets, truth = translated_detections(detector, model, val, dev, bool(speed.bf16))
    return round(evaluate_detections(truth, dets, classes, iou=0.5, interpolation="voc_all_point").map, 5)


def _samples(model, detector, pairs, classes, dev, path: Path) -> None:
    from vat.datasets import to_image
    from vat.io import load_rgb
    from vat.models.classifier import FrozenClassifier
    from vat.translate import translate_pairs
    from vat.viz import draw_detections, label_strip

    tiles = []
    classify = isinstance(detector, FrozenClassifier)
    for ps, res in translate_pairs(model, pairs, dev):
        if classify:
            labels = detector.predict(res["out"]).labels.tolist()
        else:
            dets = detector.predict(res["out"], conf=0.25)
        for i, p in enumerate(ps):
            gate = (res["gate"][i, 0].cpu().numpy() * 255).round().astype(np.uint8)
            out = to_image(res["out"][i].cpu())
            tiles.append([
                label_strip(load_rgb(p[0].path), "degraded I_LQ"),
                label_strip(load_rgb(p[1].path), "restored I_R"),
                label_strip(np.repeat(gate[..., None], 3, 2), "gate w (white: I_LQ)"),
                label_strip(out, f"VaT: D says {classes[labels[i]]}") if classify else
                label_strip(draw_detections(out, dets[i], classes), "VaT T_A(I_F), D's boxes"),
            ])  # fmt: skip
    if tiles:
        rows = [np.concatenate(t, axis=1) for t in tiles]
        save_png(np.concatenate(rows, axis=0), path)


# -- DVCLive ---------------------------------------------------------------------------------


def _live(reports: Path, history: list[dict], vals: list[dict], key: str):
    """A DVCLive logger in reports/train/live, replaying what a resumed state already logged."""
    from dvclive import Live

    live_dir = reports / "live"
    if live_dir.exists():
        shutil.rmtree(live_dir)
    live = Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None)
    events = [(r["step"], 0, r) for r in history] + [(v["step"], 1, v) for v in vals]
    for step, kind, row in sorted(events, key=lambda e: (e[0], e[1])):
        _log_train(live, row) if kind == 0 else _log_val(live, step, key, row[key])
    return live


def _log_train(live, row: dict) -> None:
    live.step = int(row["step"])
    for k in ("total", "cycle", "mle", "mle_clean", "mle_mix"):
        live.log_metric(f"train/{k}", round(row[k], 6))
    live.log_metric("train/lr", row["lr"])
    live.make_summary()


def _log_val(live, step: int, key: str, score: float) -> None:
    if live is None:
        return
    live.step = int(step)
    live.log_metric("val/" + key.removeprefix("val_"), score)
    live.make_summary()


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    bf16: bool | None = typer.Option(None, "--bf16/--no-bf16", help="bfloat16 autocast (default: on CUDA)"),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="channels_last memory format (default: on CUDA)"
    ),
    compile: bool = typer.Option(
        False, "--compile", help="torch.compile every transformer block (G, T_A, T_B)"
    ),
    checkpoint: bool = typer.Option(False, "--checkpoint", help="activation checkpointing (less memory)"),
    checkpoint_detector: bool = typer.Option(
        False, "--checkpoint-detector", help="recompute D's forward in backward (less memory)"
    ),
    fold_batchnorm: bool | None = typer.Option(
        None,
        "--fold-batchnorm/--no-fold-batchnorm",
        help="fold D's BatchNorms into its convs (default: on CUDA)",
    ),
    one_detector_pass: bool | None = typer.Option(
        None,
        "--one-detector-pass/--no-one-detector-pass",
        help="the loss terms' D calls as one forward (default: on CUDA)",
    ),
    compile_detector: bool = typer.Option(
        False, "--compile-detector", help="torch.compile the frozen detector's layers"
    ),
    fresh: bool = typer.Option(False, "--fresh", help="ignore a resumable state in data/train.resume"),
) -> None:
    """Train the VaT translator without labels on cached restorations and pseudo-labels.

    Params: common, train. Reads data/pseudolabel/, data/prepare/ (clean image paths, val
    boxes for checkpoint selection), data/degrade/, data/restore/, data/train_detector/.
    Writes data/train/ (translator.pt, last.pt) and reports/train/ (metrics.json, live/,
    samples.png). Resumes from data/train.resume/ when killed. Runs under torchrun (DDP).
    """
    common = load_common(params_file)
    params = load_section(TrainParams, "train", params_file)
    speed = Speed(
        bf16, channels_last, compile, checkpoint, checkpoint_detector, fold_batchnorm, one_detector_pass,
        compile_detector,
    )  # fmt: skip
    m = run(
        common,
        params,
        speed,
        device=device,
        fresh=fresh,
        track=rich_track if os.environ.get("RANK", "0") == "0" else no_track,
    )
    if "translator" not in m:
        return
    if m.get("resumed_from_stale"):
        console.print(f"train: a state for other params/inputs was moved to {m['resumed_from_stale']}")
    sel = m["selected"]
    named = {"val_map50": "val mAP@0.5", "val_accuracy": "val accuracy"}
    score = "".join(f", {name} {sel[k]:.4f}" for k, name in named.items() if k in sel)
    console.print(
        f"train: {m['translator']} ({m['params_inference'] / 1e6:.3f}M), {m['steps']} steps at "
        f"{m['images_per_second']} img/s on {m['device']}; selected epoch {sel['epoch']} ({sel['selected']}"
        f"{score}) -> {OUT}/translator.pt"
    )
