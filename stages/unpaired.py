"""unpaired: the CycleGAN-style baseline: VaT's translator trained adversarially, no pseudo-labels.

The same translator as ``train`` (``train.translator``, its gate G, T_A and T_B, the same
size and init), the same images, crops, batches, steps and val selection, but the objective
of CycleGAN (vat/unpaired.py): cycle consistency plus least-squares adversarial losses from
two PatchGAN critics, one judging T_A(I_F) against clean images and one T_B(I_HQ) against
fused degraded ones. D (the detector) is not in the loss; it is used only to choose the
checkpoint on the val split, as for VaT, so the two rows differ in the objective alone.
The pseudo-label tables are read only for their lists of degraded and clean training
images (the same disjoint halves VaT trains on); their boxes are never used.

Not resumable (a killed run starts over), single process.

Reads:   params.yaml [common, train (translator, batch, crop, epochs, schedule, selection),
         unpaired]; data/pseudolabel/images.parquet (image lists), data/prepare/,
         data/degrade/, data/restore/, data/train_detector/ (val selection only)
Writes:  data/unpaired/translator.pt, last.pt   as data/train/ (G + T_A)
         reports/unpaired/metrics.json           steps, img/s, val mAP per epoch, losses
         reports/unpaired/samples.png            val images: degraded / restored / gate / translated
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from stages.train import CLEAN, DEGRADED, MODELS, PSEUDOLABELS, RESTORED, RESTORER, Speed, TrainParams
from vat.config import CommonParams, load_common, load_section
from vat.datasets import resolve_device
from vat.errors import ParamsError
from vat.io import write_json
from vat.seeding import item_seed

OUT = Path("data/unpaired")
FP32 = Speed(bf16=False, channels_last=False)  # one precision on every device (a short baseline)
REPORTS = Path("reports/unpaired")


@dataclass(frozen=True)
class UnpairedParams:
    """``unpaired``: the CycleGAN-style baseline's own settings (the rest is ``train``'s)."""

    epochs: int | None  # null: train.epochs (the same number of steps as VaT)
    lr: float  # Adam for translator and critics, betas (0.5, 0.999) (CycleGAN: 2e-4)
    critic_width: int  # PatchGAN critic base width (CycleGAN: 64)
    critic_layers: int  # stride-2 stages of the critic (CycleGAN's 70x70: 3)
    cycle_weight: float  # CycleGAN's lambda: 10
    adv_weight: float  # least-squares GAN term
    identity_weight: float  # |T_A(I_HQ) - I_HQ| + |T_B(I_F) - I_F| (CycleGAN: 0 or 0.5 lambda)
    pool: int  # fakes remembered for the critics (CycleGAN: 50; 0: none)

    def __post_init__(self) -> None:
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("unpaired.epochs must be >= 1 or null")
        if self.lr <= 0 or self.critic_width < 1 or self.critic_layers < 1 or self.pool < 0:
            raise ValueError("unpaired: need lr > 0, critic_width >= 1, critic_layers >= 1, pool >= 0")
        if min(self.cycle_weight, self.adv_weight, self.identity_weight) < 0:
            raise ValueError("unpaired: loss weights must be >= 0")


def run(
    common: CommonParams,
    train: TrainParams,
    params: UnpairedParams,
    pseudolabels: Path = PSEUDOLABELS,
    clean_path: Path = CLEAN,
    degraded_path: Path = DEGRADED,
    restored_path: Path = RESTORED,
    models: Path = MODELS,
    out: Path = OUT,
    reports: Path = REPORTS,
    device: str = "auto",
    track: Track = no_track,
) -> dict:
    """Train the baseline; returns the summary written to ``reports/metrics.json``."""
    from stages.train import build_model, load_inputs
    from vat.unpaired import PatchCritic

    if common.task == "classify":
        raise ParamsError("unpaired: the classification task is not built yet (detection only)")
    dev = resolve_device(device)
    ins = load_inputs(common, train, pseudolabels, clean_path, degraded_path, restored_path, models, dev)
    torch.manual_seed(item_seed(common.seed, "unpaired-init"))  # the critics' init
    model = build_model(common, replace(train, use_cycle=True), FP32, dev)
    critics = torch.nn.ModuleDict(
        {
            "hq": PatchCritic(params.critic_width, params.critic_layers),
            "fused": PatchCritic(params.critic_width, params.critic_layers),
        }
    ).to(dev)
    return _loop(common, train, params, ins.data, ins.spe, ins.detector, model, critics, ins.val, ins.classes,
                 dev, out, reports, track)  # fmt: skip


def _loop(
    common, train, params, data, spe, detector, model, critics, val, classes, dev, out, reports, track
) -> dict:
    from stages.train import TrainingError, _inference_model, _samples, _validate, snapshot, write_translators
    from vat.models.translator import parameter_count
    from vat.training import lr_factor, make_batch, to_float
    from vat.unpaired import HistoryPool, critic_loss, generator_loss

    epochs = params.epochs or train.epochs
    total = spe * epochs
    opt_g = torch.optim.Adam(model.parameters(), lr=params.lr, betas=(0.5, 0.999))
    opt_c = torch.optim.Adam(critics.parameters(), lr=params.lr, betas=(0.5, 0.999))
    ratio = train.min_lr / train.lr
    scheds = [
        torch.optim.lr_scheduler.LambdaLR(
            o, lambda s: lr_factor(s, total, train.schedule, train.restart_steps, ratio)
        )
        for o in (opt_g, opt_c)
    ]
    gen = torch.Generator().manual_seed(item_seed(common.seed, "unpaired-pool"))
    pools = {"hq": HistoryPool(params.pool, gen), "fused": HistoryPool(params.pool, gen)}
    history, vals, best, best_state, seconds, running = [], [], None, None, 0.0, {}
    for epoch in track(range(epochs), f"unpaired {train.translator}", epochs):
        model.train()
        critics.train()
        t0 = time.perf_counter()
        for step in range(epoch * spe, (epoch + 1) * spe):
            b = make_batch(data, step, train.batch, train.crop, common.seed)  # its boxes are not used
            lq, r, hq = (to_float(x, dev) for x in (b.lq, b.restored, b.hq))
            fused, _ = model.fuse(lq, r)
            critics.requires_grad_(False)
            g = generator_loss(
                model,
                critics["hq"],
                critics["fused"],
                fused,
                hq,
                params.cycle_weight,
                params.adv_weight,
                params.identity_weight,
            )
            if not torch.isfinite(g["total"]):
                raise TrainingError(
                    f"unpaired: step {step}: non-finite loss {float(g['total'])}; lower unpaired.lr"
                )
            opt_g.zero_grad(set_to_none=True)
            g["total"].backward()
            opt_g.step()
            critics.requires_grad_(True)
            c = critic_loss(critics["hq"], hq, pools["hq"](g["fake_hq"])) + critic_loss(
                critics["fused"], fused, pools["fused"](g["fake_f"])
            )
            opt_c.zero_grad(set_to_none=True)
            c.backward()
            opt_c.step()
            for s in scheds:
                s.step()
            for k in ("total", "cycle", "adv", "identity"):
                running.setdefault(k, []).append(float(g[k].detach()))
            running.setdefault("critic", []).append(float(c.detach()))
            done = step + 1
            if done % train.log_every == 0 or done % spe == 0:
                history.append(
                    {"step": done, "epoch": done / spe, "lr": opt_g.param_groups[0]["lr"]}
                    | {k: float(np.mean(v)) for k, v in running.items()}
                )
                running = {}
        seconds += time.perf_counter() - t0
        ep = epoch + 1
        if val and (ep % train.val_every == 0 or ep == epochs):
            score = _validate(model, detector, val, classes, dev, FP32)
            vals.append({"epoch": ep, "step": ep * spe, "val_map50": score})
            if best is None or score > best["val_map50"]:
                best = {"epoch": ep, "step": ep * spe, "val_map50": score}
                best_state = snapshot(model)
    restorer = json.loads(RESTORER.read_text()) if RESTORER.is_file() else None
    base = {"translator": train.translator, "restorer": restorer, "epochs": epochs, "objective": "cyclegan"}
    inference = _inference_model(common, train)
    meta = write_translators(out, inference, snapshot(model), best, best_state, base, train.select, epochs)
    metrics = {
        "translator": train.translator,
        "objective": "cyclegan (cycle + least-squares adversarial), no pseudo-labels",
        "params_inference": parameter_count(inference.gate) + parameter_count(inference.t_a),
        "params_total": parameter_count(model),
        "params_critics": parameter_count(critics),
        "unpaired": asdict(params),
        "device": str(dev),
        "steps": total,
        "steps_per_epoch": spe,
        "train_seconds": round(seconds, 2),
        "images_per_second": round(total * train.batch / seconds, 3) if seconds > 0 else None,
        "selected": meta,
        "val": vals,
        "history": history,
        "final_loss": {k: round(v, 5) for k, v in history[-1].items() if k not in ("step", "epoch", "lr")},
    }
    reports.mkdir(parents=True, exist_ok=True)
    write_json(metrics, reports / "metrics.json")
    if val:
        _samples(inference.to(dev), detector, val[:4], classes, dev, reports / "samples.png")
    return metrics


@friendly_errors
def command(
    params_file: Path = typer.Option(Path("params.yaml"), "--params", help="params file to read"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
) -> None:
    """Train the CycleGAN-style unpaired baseline: VaT's translator, cycle + adversarial, no pseudo-labels.

    Params: common, train, unpaired. Reads data/pseudolabel/images.parquet (image lists only),
    data/prepare/, data/degrade/, data/restore/, data/train_detector/ (val selection). Writes
    data/unpaired/ (translator.pt, last.pt) and reports/unpaired/ (metrics.json, samples.png).
    """
    common = load_common(params_file)
    train = load_section(TrainParams, "train", params_file)
    params = load_section(UnpairedParams, "unpaired", params_file)
    m = run(common, train, params, device=device, track=rich_track)
    sel = m["selected"]
    score = f", val mAP@0.5 {sel['val_map50']:.4f}" if "val_map50" in sel else ""
    console.print(
        f"unpaired: {m['translator']} ({m['params_inference'] / 1e6:.3f}M) + critics "
        f"({m['params_critics'] / 1e6:.3f}M), {m['steps']} steps at {m['images_per_second']} img/s; "
        f"selected epoch {sel['epoch']} ({sel['selected']}{score}) -> {OUT}/translator.pt"
    )
