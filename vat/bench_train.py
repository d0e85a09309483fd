"""Speed and peak memory of one VaT training step (``vat bench train``).

One step = what ``stages/train.py`` runs: gate G on (I_LQ, I_R), the VaT loss (three
translator calls: T_A on [I_F, I_HQ, I_mix], T_B on [T_A(I_F), I_HQ], T_A on T_B(I_HQ);
D's loss on T_A(I_HQ) and T_A(I_mix)), backward, AdamW step. Two pipelines:

- ``cached`` (ours): I_R and the pseudo-labels were computed once before training and are
  read from memory; a step runs no R and no D forward outside the loss.
- ``per_step`` (the authors' release): every step also runs R on I_LQ and D on I_LQ, I_R
  and I_HQ (no gradient) to rebuild the pseudo-labels. To keep the loss identical in both
  pipelines the loss uses the same fixed boxes; the predictions' cost (and NMS) is what is
  added. NUQ's neighbour search, which the release also repeats per step, is not counted,
  so the ratio is a lower bound.

Inputs are random images at ``size`` x ``size`` with ``boxes`` random boxes per image; D is
a random-weight frozen YOLO (``detector`` yaml, ``nc`` classes), R a random AOD-Net: speed
and memory do not depend on the weights. Nothing here prints.

Memory, three ways: ``peak_gib`` (CUDA only) is the allocator's peak over the timed steps;
one more, untimed step measures ``saved_gib`` (:class:`SavedForBackward`, what autograd keeps
from the forward for the backward: what checkpointing cuts) and ``step_peak_gib``
(:class:`TensorMemory`, the peak of the tensors the step allocates), alike on every device.
"""

from __future__ import annotations

import time
import weakref
from dataclasses import asdict, dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

__all__ = ["BenchConfig", "SavedForBackward", "TensorMemory", "bench_train"]


@dataclass(frozen=True)
class BenchConfig:
    translator: str = "vat-w16"
    size: int = 512
    batch: int = 4
    pipeline: str = "cached"  # cached | per_step
    bf16: bool = False
    channels_last: bool = False
    compile: bool = False
    checkpoint: bool = False
    checkpoint_detector: bool = False
    detector: str = "yolov3u.yaml"
    nc: int = 20
    boxes: int = 4
    steps: int = 10
    warmup: int = 3


class SavedForBackward:
    """Bytes of the tensors autograd saves for backward while the context is open.

    The part of a training step's peak memory that the forward leaves for the backward, and
    the part that checkpointing cuts; measured the same way on any device (on a GPU, the peak
    adds the weights, the optimizer state and the backward's transients). Each storage counts
    once (views share it); parameters are not counted (they are held anyway), the bf16 copies
    autocast makes of them are. Tensors saved inside a checkpointed region are not saved (the
    checkpoint keeps its inputs, which are counted).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._storages: dict[tuple[torch.device, int], int] = {}
        self._hooks = None

    @property
    def nbytes(self) -> int:
        return sum(self._storages.values())

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if not isinstance(t, torch.nn.Parameter):
            storage = t.untyped_storage()
            self._storages[(t.device, storage.data_ptr())] = storage.nbytes()
        return t

    def __enter__(self) -> SavedForBackward:
        if self.enabled:
            self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
            self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._hooks is not None:
            self._hooks.__exit__(*exc)
            self._hooks = None


class TensorMemory(TorchDispatchMode):
    """Peak bytes of the tensors the ops run inside the context allocate and still hold.

    Every op's outputs are looked at; a storage not seen before counts until it is freed
    (a weakref finalizer). Tensors alive before the context (weights, optimizer state, the
    batch) are not counted, so a training step's ``peak`` is what the step itself adds at its
    highest point: activations, gradients and the backward's transients. Works the same on
    every device (on a GPU the allocator's own peak also counts the weights and its
    fragmentation). Only for measuring: every op pays a Python call.
    """

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._storages: dict[tuple[torch.device, int], int] = {}

    def _freed(self, key: tuple[torch.device, int], nbytes: int) -> None:
        if self._storages.pop(key, None) is not None:
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor) and t.device.type != "meta":
                storage = t.untyped_storage()
                key, nbytes = (t.device, storage.data_ptr()), storage.nbytes()
                if nbytes and key not in self._storages:
                    self._storages[key] = nbytes
                    self.live += nbytes
                    weakref.finalize(storage, self._freed, key, nbytes)
        self.peak = max(self.peak, self.live)
        return out


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_train(cfg: BenchConfig, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """Images/s and peak memory of ``cfg``'s training step; ``{"oom": True}`` when it does not fit."""
    from vat.losses import LossConfig
    from vat.models.detector import FrozenDetector
    from vat.models.restorers import AODNet, freeze
    from vat.models.translator import create_translator
    from vat.training import TrainGraph

    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    result = asdict(cfg) | {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    model = det = opt = None
    try:
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            det = FrozenDetector(cfg.detector, nc=cfg.nc, imgsz=cfg.size, device=device)
        model = create_translator(cfg.translator, seed=seed, checkpoint=cfg.checkpoint).to(device)
        if cfg.channels_last:
            model.to(memory_format=torch.channels_last)
        if cfg.compile:
            model.compile_blocks()
        restorer = freeze(AODNet().init_weights(gen)).to(device)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=1e-4)
        graph = TrainGraph(model, det, LossConfig(), autocast=torch.bfloat16 if cfg.bf16 else None,
                           checkpoint_detector=cfg.checkpoint_detector)  # fmt: skip
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        shape = (cfg.batch, 3, cfg.size, cfg.size)
        lq = torch.rand(shape, generator=gen).to(device).contiguous(memory_format=fmt)
        hq = torch.rand(shape, generator=gen).to(device).contiguous(memory_format=fmt)
        with torch.no_grad():
            cached_r = restorer(lq).contiguous(memory_format=fmt)

        def boxes() -> list[dict[str, torch.Tensor]]:
            xy = torch.rand(cfg.batch, cfg.boxes, 2, generator=gen) * cfg.size * 0.7
            wh = 16 + torch.rand(cfg.batch, cfg.boxes, 2, generator=gen) * cfg.size * 0.25
            b = torch.cat([xy, (xy + wh).clamp(max=cfg.size)], 2)
            cls = torch.randint(0, cfg.nc, (cfg.batch, cfg.boxes), generator=gen)
            w = 0.5 + 0.5 * torch.rand(cfg.batch, cfg.boxes, generator=gen)
            return [{"boxes": b[i].to(device), "classes": cls[i].to(device), "weights": w[i].to(device)}
                    for i in range(cfg.batch)]  # fmt: skip

        t_lq, t_hq = boxes(), boxes()
        lam_gen = torch.Generator(device=device)

        def step(i: int, saved: SavedForBackward | None = None) -> None:
            r = cached_r
            if cfg.pipeline == "per_step":
                with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cfg.bf16):
                    r = restorer(lq).contiguous(memory_format=fmt)
                    det.predict(lq), det.predict(r), det.predict(hq)
            lam_gen.manual_seed(seed + i)
            with saved or SavedForBackward(enabled=False):
                out = graph(lq, r, hq, t_lq, t_hq, lam_gen)
            opt.zero_grad(set_to_none=True)
            out["total"].backward()
            opt.step()

        t0 = time.perf_counter()
        for i in range(cfg.warmup):
            step(i)
        _sync(device)
        result["warmup_s"] = round(time.perf_counter() - t0, 2)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for i in range(cfg.steps):
            step(cfg.warmup + i)
        _sync(device)
        dt = time.perf_counter() - t0
        result |= {
            "step_ms": round(1000 * dt / cfg.steps, 2),
            "images_per_s": round(cfg.batch * cfg.steps / dt, 3),
            "oom": False,
        }
        if device.type == "cuda":
            result["peak_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 3)
        # One more step, untimed: what autograd keeps for the backward, and the peak of the
        # tensors the step allocates. Not under torch.compile: its graphs would be traced again
        # under these hooks, and saved-tensor hooks are not reliable with compiled autograd.
        if not cfg.compile:
            saved = SavedForBackward()
            with TensorMemory() as mem:
                step(cfg.warmup + cfg.steps, saved)
            result["saved_gib"] = round(saved.nbytes / 2**30, 3)
            result["step_peak_gib"] = round(mem.peak / 2**30, 3)
        return result
    except torch.OutOfMemoryError:
        return result | {"oom": True}


def release(device: torch.device | str) -> None:
    """Free what a finished :func:`bench_train` left in the caching allocator."""
    import gc

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def suite(device: torch.device | str, quick: bool = False) -> list[BenchConfig]:
    """The configurations ``vat bench train`` measures, in one run so their ratios hold.

    GPU: 512 px, batch 4, width 16: plain eager fp32 (cached and per-step), bf16 +
    channels_last, + compile (fast mode), + checkpointing of the translator's blocks, + of
    D's forward too (memory mode), memory mode + compile; width 48 in memory mode, without
    and with compile; then the largest batch that fits (``vat bench train --largest``).
    CPU (or ``quick``): the same switches at 128 px, batch 2, width 4, without compile.
    """
    fast = {"bf16": True, "channels_last": True}
    memory = {"checkpoint": True, "checkpoint_detector": True}
    if torch.device(device).type != "cuda" or quick:
        base = BenchConfig(translator="vat-w4", size=128, batch=2, detector="yolov8n.yaml", steps=6, warmup=2)
        variants = [{"pipeline": "per_step"}, fast, {"checkpoint": True}, memory]
        return [base] + [BenchConfig(**asdict(base) | v) for v in variants]
    base = BenchConfig()
    variants = [
        {"pipeline": "per_step"},
        fast,
        fast | {"compile": True},
        fast | {"checkpoint": True},
        fast | memory,
        fast | memory | {"compile": True},
    ]
    w48 = asdict(base) | fast | memory | {"translator": "vat-w48"}
    return (
        [base]
        + [BenchConfig(**asdict(base) | v) for v in variants]
        + [BenchConfig(**w48), BenchConfig(**w48 | {"compile": True})]
    )
