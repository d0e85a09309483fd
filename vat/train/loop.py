"""The training loop: one :func:`fit` for every translator the pipeline trains.

``train``, ``ablate``, ``study`` and ``classify`` train VaT (:class:`VatObjective`);
``unpaired`` trains the CycleGAN-style baseline (:class:`vat.train.unpaired.CycleGANObjective`).
The loop owns what they share: the batches (a function of seed and step,
:func:`vat.train.data.make_batch`), the learning-rate schedule, a stop on a non-finite
loss, the loss history and its DVCLive log, validation and checkpoint selection on the val
split, the resume state, distributed training, and the translators and metrics it writes.
An objective owns its model's optimisers and what one step computes.

Resume: the full state (the objective's modules and optimisers, the schedulers, step,
history, best so far) is written atomically to ``<resume>/state.pt`` every
``checkpoint_every`` steps and at each epoch's end. The next run resumes from it when the
params and inputs are the same (a fingerprint is checked), says so, and ends with the same
weights as an uninterrupted run (CPU, same seed). A state that does not match, or any state
under ``fresh``, is moved to the first free ``<resume>.stale-N`` (N = 1, 2, ...) and never
deleted; a state that cannot be read stops the run with a message saying how to start
over. A NaN or infinite loss stops training with a message naming the step; the state file
keeps the last good checkpoint.

Outputs: the translators (``out``) and the reports (metrics.json, the DVCLive logs in
live/, samples.png) are built in temporary folders and swapped in together at the end
(:func:`vat.atomic.atomic_dirs`): a run that fails or is killed at any point leaves the
previous outputs as they were (and its resume state); the state is removed only once the
new outputs are in place.
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor

from vat.eval.summary import write_metrics
from vat.io import atomic_dirs, save_torch
from vat.train import distributed as dist
from vat.train.results import samples, snapshot, validate, write_translators
from vat.train.resume import STATE_FORMAT, TrainingError, load_state, restart_hint, saved_step

_ROW_KEYS = ("step", "epoch", "lr")  # a history row's keys that are not losses


class Objective(Protocol):
    """What one training step computes, and the modules and optimisers it trains."""

    label: str  # names the run in messages and progress bars: "train vat-w4"
    title: str  # the translated column of the sample pictures
    bf16_val: bool  # validate under bf16 autocast

    def modules(self) -> dict[str, torch.nn.Module]: ...  # what the resume state saves
    def optimizers(self) -> list[torch.optim.Optimizer]: ...
    def start(self) -> None: ...  # after a resume state is loaded: layouts, compilation, DDP
    def forward(self, batch, step: int) -> dict[str, Tensor]: ...  # the losses to log (detached)
    def backward(self) -> dict[str, float]: ...  # the step's updates; more values to log
    def extra_state(self) -> dict: ...  # more to resume (a pool of fakes, say)
    def load_extra_state(self, state: dict) -> None: ...
    def metrics(self) -> dict: ...  # the objective's own entries of metrics.json


@dataclass
class Run:
    """Where and how a training runs, besides its objective."""

    seed: int
    params: Any  # vat.train.config.TrainParams (epochs, batch, crop, schedule, selection, cadence)
    inputs: Any  # vat.train.inputs.Inputs
    device: torch.device
    out: Path  # translator.pt, last.pt
    reports: Path  # metrics.json, live/, samples.png
    resume: Path  # state.pt while it runs
    fingerprint: str  # what a resume state must match
    epochs: int | None = None  # None: params.epochs
    base_meta: dict = field(default_factory=dict)  # written into both translators' meta
    fresh: bool = False  # start over: a resume state is moved aside (kept)
    stop_after: int | None = None  # stop as if killed after that many steps (tests of resume)
    track: Any = None  # a progress wrapper (stages/_ui.py), or None
    speed: Any = None  # the resolved Speed, recorded in metrics.json
    say: Any = None  # where a line for the user goes (resumed, state moved aside), or None


def lr_factor(step: int, total: int, schedule: str, restart_steps: int, min_ratio: float) -> float:
    """Multiplier of the base lr at ``step`` (0-based): constant, cosine over ``total`` steps, or
    cosine with warm restarts (period ``restart_steps``, doubling, as the authors' release)."""
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        t = min(step / max(total, 1), 1.0)
    else:  # cosine_restarts, T_mult = 2
        period, t0 = restart_steps, step
        while t0 >= period:
            t0 -= period
            period *= 2
        t = t0 / period
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def fit(objective: Objective, run: Run) -> dict:
    """Train ``objective`` for ``run``; returns what ``metrics.json`` holds (or, for a run
    stopped by ``stop_after``, ``{"interrupted": True, ...}``; on other ranks ``{"rank": r}``)."""
    return _Fit(objective, run).fit()


class _Fit:
    """The loop's state between steps: history, val scores, the best so far, time."""

    def __init__(self, objective: Objective, run: Run) -> None:
        from vat.train.inputs import val_key

        self.obj, self.run = objective, run
        p = run.params
        self.epochs = run.epochs or p.epochs
        self.spe = run.inputs.spe
        self.total = self.spe * self.epochs
        self.key = val_key(run.inputs.task)
        # The epoch ends validated: every val_every-th and the last. Validation only selects,
        # so with one candidate (one epoch) it would choose nothing and is skipped.
        ends = [ep for ep in range(1, self.epochs + 1) if ep % p.val_every == 0 or ep == self.epochs]
        self.val_epochs = ends if run.inputs.val and len(ends) > 1 else []
        ratio = p.min_lr / p.lr
        self.scheds = [
            torch.optim.lr_scheduler.LambdaLR(
                o, lambda s: lr_factor(s, self.total, p.schedule, p.restart_steps, ratio)
            )
            for o in objective.optimizers()
        ]
        self.state_path = run.resume / "state.pt"
        self.start, self.history, self.vals, self.seconds = 0, [], [], 0.0
        self.best: dict | None = None
        self.best_state: dict | None = None
        self.stale: str | None = None  # where an unusable resume state was moved
        self.resumed: int | None = None  # the step resumed at
        self.live = None

    # -- resume --------------------------------------------------------------------------------

    def _restore(self) -> None:
        path, main = self.state_path, dist.is_main()
        state, self.stale = load_state(path, self.run.fingerprint, self.run.fresh) if main else (None, None)
        state = dist.broadcast_object(state)
        if self.stale:
            why = "--fresh" if self.run.fresh else "it is for other params or inputs"
            self._say(f"starting over ({why}); the resume state was moved to {self.stale}")
        if state is None:
            return
        try:
            for name, module in self.obj.modules().items():
                module.load_state_dict(state["modules"][name])
            for opt, s in zip(self.obj.optimizers(), state["optimizers"], strict=True):
                opt.load_state_dict(s)
            for sched, s in zip(self.scheds, state["schedulers"], strict=True):
                sched.load_state_dict(s)
            self.obj.load_extra_state(state["extra"])
            self.start, self.history, self.vals = (
                int(state["step"]),
                list(state["history"]),
                list(state["val"]),
            )
            self.best, self.best_state = state["best"], state["best_state"]
            self.seconds = float(state["seconds"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:  # a state this code cannot load
            detail = (str(e).splitlines() or [""])[0][:200]
            raise TrainingError(
                f"{path}: a training state this version cannot load ({type(e).__name__}: {detail}). "
                + restart_hint(path.parent)
            ) from None
        self.resumed = self.start
        self._say(f"resuming at step {self.start} of {self.total} from {path}")

    def _say(self, line: str) -> None:
        if self.run.say is not None and dist.is_main():
            self.run.say(line)

    def _save_state(self, step: int) -> None:
        if not dist.is_main():
            return
        payload = {
            "format": STATE_FORMAT, "fingerprint": self.run.fingerprint, "step": step,
            "modules": {k: m.state_dict() for k, m in self.obj.modules().items()},
            "optimizers": [o.state_dict() for o in self.obj.optimizers()],
            "schedulers": [s.state_dict() for s in self.scheds], "extra": self.obj.extra_state(),
            "history": self.history, "val": self.vals, "best": self.best, "best_state": self.best_state,
            "seconds": self.seconds,
        }  # fmt: skip
        save_torch(payload, self.state_path)

    # -- the loop ------------------------------------------------------------------------------

    def fit(self) -> dict:
        self._restore()
        self.obj.start()
        if not dist.is_main():
            return self._loop() or {"rank": dist.rank()}
        try:
            # the translators and reports are built aside and swapped in only if all of it succeeds
            with atomic_dirs(self.run.out, self.run.reports) as (out, reports):
                self.live = _live(reports, self.history, self.vals, self.key)
                stopped = self._loop()
                if stopped:
                    raise _Stopped(stopped)
                metrics = self._finish(out, reports)
        except _Stopped as s:
            return s.result
        shutil.rmtree(self.run.resume, ignore_errors=True)  # the new outputs are in place
        return metrics

    def _loop(self) -> dict | None:
        """The steps from the resumed one to the end; ``None``, or what ``stop_after`` returns."""
        track = self.run.track or (lambda items, *_: items)
        epochs = range(self.start // self.spe, self.epochs)
        self.t_mark = time.perf_counter()
        self.running: dict[str, list[float]] = {}
        for epoch in track(epochs, self.obj.label, len(epochs)):
            for step in range(max(self.start, epoch * self.spe), (epoch + 1) * self.spe):
                self._step(step)
                done = step + 1
                if done % self.spe == 0:
                    self._epoch_end(done)
                elif done % self.run.params.checkpoint_every == 0:
                    self._save_state(done)
                if self.run.stop_after is not None and done >= self.run.stop_after:
                    dist.barrier()
                    return {"interrupted": True, "step": done, "state": str(self.state_path)}
            dist.barrier()
        return None

    def _step(self, step: int) -> None:
        from vat.train.data import make_batch

        p = self.run.params
        batch = make_batch(self.run.inputs.data, step, p.batch, p.crop, self.run.seed)
        logged = self.obj.forward(batch, step)
        if not all(bool(torch.isfinite(v)) for v in logged.values()):
            bad = ", ".join(f"{k} {float(v):.4g}" for k, v in logged.items())
            keep = (
                f"{self.state_path} (step {saved_step(self.state_path)})"
                if self.state_path.is_file()
                else "no checkpoint yet"
            )
            raise TrainingError(
                f"{self.obj.label}: step {step}: non-finite loss ({bad}); stopped. Last good checkpoint: "
                f"{keep}. Lower the learning rate or check the inputs"
            )
        more = self.obj.backward()
        for s in self.scheds:
            s.step()
        for k, v in logged.items():
            self.running.setdefault(k, []).append(float(v))
        for k, v in more.items():
            self.running.setdefault(k, []).append(v)
        done = step + 1
        if done % p.log_every == 0 or done % self.spe == 0:
            now = time.perf_counter()
            self.seconds += now - self.t_mark
            self.t_mark = now
            lr = self.obj.optimizers()[0].param_groups[0]["lr"]
            row = {"step": done, "epoch": done / self.spe, "lr": lr}
            row |= {k: float(np.mean(v)) for k, v in self.running.items()}
            self.running = {}
            self.history.append(row)
            if self.live is not None:
                _log_train(self.live, row)

    def _epoch_end(self, done: int) -> None:
        ep, ins = done // self.spe, self.run.inputs
        if ep in self.val_epochs and dist.is_main():
            model = self.obj.modules()["model"]
            score = validate(model, ins.scorer, ins.val, ins.classes, self.run.device, self.obj.bf16_val)
            self.vals.append({"epoch": ep, "step": done, self.key: score})
            _log_val(self.live, done, self.key, score)
            if self.best is None or score > self.best[self.key]:
                self.best = {"epoch": ep, "step": done, self.key: score}
                self.best_state = snapshot(model)
            for m in self.obj.modules().values():
                m.train()
        self.t_mark = time.perf_counter()  # validation time is not training time
        self._save_state(done)

    # -- the end ---------------------------------------------------------------------------------

    def _finish(self, out: Path, reports: Path) -> dict:
        """Write the translators into ``out`` and the reports into ``reports`` (both temporary)."""
        from vat.models.translator import parameter_count
        from vat.train.results import inference_translator

        run, p, ins = self.run, self.run.params, self.run.inputs
        model = self.obj.modules()["model"]
        last_state = snapshot(model)
        chosen = "last" if p.select == "last" or self.best_state is None else "val"
        inference = inference_translator(p)
        base = {"translator": p.translator} | run.base_meta | {"epochs": self.epochs}
        meta = write_translators(out, inference, last_state, self.best, self.best_state, base, p.select,
                                 self.epochs)  # fmt: skip
        world = dist.world()
        metrics = {
            "translator": p.translator,
            "params_inference": parameter_count(inference.gate) + parameter_count(inference.t_a),
            "params_total": parameter_count(model),
            "device": str(run.device) if world == 1 else f"{world} x {run.device.type}",
            "speed": run.speed.to_dict() if run.speed is not None else None,
            "steps": self.total,
            "steps_per_epoch": self.spe,
            "degraded_images": len(ins.data.degraded),
            "clean_images": len(ins.data.clean),
            "train_seconds": round(self.seconds, 2),
            "images_per_second": round(self.total * p.batch / self.seconds, 3) if self.seconds > 0 else None,
            "selected": meta,
            "val": self.vals,
            f"last_{self.key}": self.vals[-1][self.key] if self.vals else None,
            "final_loss": {k: round(v, 5) for k, v in self.history[-1].items() if k not in _ROW_KEYS},
            "resumed_at_step": self.resumed,
            "stale_state": self.stale,
        } | self.obj.metrics()
        write_metrics("train", metrics, reports)  # unpaired's and an ablation row's too: one rule
        if self.live is not None:
            self.live.end()
        if ins.val:
            inference.load_state_dict(self.best_state if chosen == "val" else last_state)
            samples(inference.to(run.device), ins.scorer, ins.val[:4], ins.classes, run.device,
                    reports / "samples.png", self.obj.title)  # fmt: skip
        return metrics


class _Stopped(Exception):
    """``stop_after`` reached: leave as a killed run would (outputs untouched, the state kept)."""

    def __init__(self, result: dict) -> None:
        self.result = result


# -- DVCLive ---------------------------------------------------------------------------------


def _live(reports: Path, history: list[dict], vals: list[dict], key: str):
    """A DVCLive logger in ``reports/live`` (a new folder), replaying what a resumed state
    already logged."""
    from dvclive import Live

    live = Live(str(reports / "live"), save_dvc_exp=False, dvcyaml=None, report=None)
    events = [(r["step"], 0, r) for r in history] + [(v["step"], 1, v) for v in vals]
    for step, kind, row in sorted(events, key=lambda e: (e[0], e[1])):
        _log_train(live, row) if kind == 0 else _log_val(live, step, key, row[key])
    return live


def _log_train(live, row: dict) -> None:
    live.step = int(row["step"])
    for k, v in row.items():
        if k not in _ROW_KEYS:
            live.log_metric(f"train/{k}", round(v, 6))
    live.log_metric("train/lr", row["lr"])
    live.make_summary()


def _log_val(live, step: int, key: str, score: float) -> None:
    if live is None:
        return
    live.step = int(step)
    live.log_metric("val/" + key.removeprefix("val_"), score)
    live.make_summary()


# -- VaT -------------------------------------------------------------------------------------


class VatObjective:
    """VaT's step (Algorithm 1): the loss of :class:`vat.train.graph.TrainGraph`, AdamW."""

    title = "VaT"

    def __init__(self, model, detector, params, speed, seed: int, device: torch.device, relabel=None) -> None:
        self.model, self.detector, self.params, self.speed = model, detector, params, speed
        self.seed, self.device = seed, device
        self.relabel = relabel  # vat.labels.online.OnlineLabels (train.labels: online), or None
        self.label = f"train {params.translator}"
        self.bf16_val = bool(speed.bf16)
        from vat.train.results import optimizer_groups

        self.opt = torch.optim.AdamW(optimizer_groups(model, params.lr, params.gate_lr), lr=params.lr,
                                     betas=(0.9, 0.999), weight_decay=params.weight_decay)  # fmt: skip
        self.world = dist.world()
        self.shard = dist.shard(params.batch)
        if relabel is not None and self.world > 1:
            from vat.errors import ParamsError

            raise ParamsError("train.labels: online runs in one process; use cached labels under torchrun")
        self.step_fn = None
        self._total: Tensor | None = None

    def modules(self) -> dict[str, torch.nn.Module]:
        return {"model": self.model}

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt]

    def start(self) -> None:
        from vat.train.graph import TrainGraph

        self.speed.prepare_translator(self.model)
        distributed = self.world > 1
        graph = TrainGraph(self.model, self.detector, self.params.loss_config(), self.speed,
                           gather=dist.all_gather_cat if distributed else None,
                           shard=self.shard if distributed else None)  # fmt: skip
        self.step_fn = graph
        if distributed:
            dev = self.device
            self.step_fn = torch.nn.parallel.DistributedDataParallel(
                graph, device_ids=[dev.index] if dev.type == "cuda" else None, broadcast_buffers=False
            )
        self.model.train()

    def forward(self, batch, step: int) -> dict[str, Tensor]:
        from vat.train.graph import lambda_generator, targets_to, to_float

        dev, cl = self.device, bool(self.speed.channels_last)
        sl = self.shard if self.world > 1 else slice(None)
        lq, r, hq = (to_float(x[sl], dev, cl) for x in (batch.lq, batch.restored, batch.hq))
        t_lq = targets_to(batch.targets_lq, dev)
        if self.relabel is not None:  # D's boxes on the current T_A output join the cached ones
            t_lq = self.relabel(self.model, lq, r, t_lq)
        losses = self.step_fn(lq, r, hq, t_lq, targets_to(batch.targets_hq, dev),
                              lambda_generator(self.seed, step, dev))  # fmt: skip
        self._total = losses["total"]
        logged = {k: losses[k].detach().float() for k in ("total", "cycle", "mle", "mle_clean", "mle_mix")}
        return {k: dist.all_reduce_mean(v) for k, v in logged.items()} if self.world > 1 else logged

    def backward(self) -> dict[str, float]:
        self.opt.zero_grad(set_to_none=True)
        self._total.backward()
        self.opt.step()
        self._total = None
        return {}

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    def metrics(self) -> dict:
        return self.relabel.metrics() if self.relabel is not None else {}
