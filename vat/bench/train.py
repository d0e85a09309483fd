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
from dataclasses import asdict, dataclass, replace

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from vat.train.speed import FAST, MEMORY, OPTIONS, PLAIN, Speed

__all__ = [
    "BenchConfig",
    "SavedForBackward",
    "TensorMemory",
    "bench_train",
    "forward_flops",
    "step_flops",
]


@dataclass(frozen=True)
class BenchConfig:
    """One measured configuration: the step's size and its speed options (explicit, every one)."""

    translator: str = "vat-w16"
    size: int = 512
    batch: int = 4
    pipeline: str = "cached"  # cached | per_step
    speed: Speed = PLAIN
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
    once (views share it); parameters and their views are not counted (they are held anyway),
    the bf16 copies autocast makes of them are. Tensors saved inside a checkpointed region are not saved (the
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
        # a parameter or a view of one (GDFN's CPU path convolves with weight slices)
        if not isinstance(t, torch.nn.Parameter) and not isinstance(t._base, torch.nn.Parameter):
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


def forward_flops(fn, *args, parts: tuple[str, ...] = ()) -> dict[str, int]:
    """FLOPs of ``fn(*args)``'s forward (matmuls and convolutions), in all and per module.

    ``parts`` are module paths as :class:`FlopCounterMode` names them (``"TrainGraph.model.t_a"``);
    each gets its own count. Forward only: PyTorch's counter overcounts the backward of grouped
    (depthwise) convolutions, which the translator is full of, so a step's backward is not
    counted (it costs about twice the forward for the translator, whose weights get gradients,
    and about once for the frozen D, whose input only does).
    """
    counter = FlopCounterMode(display=False, depth=max((p.count(".") + 1 for p in parts), default=1))
    with counter:
        fn(*args)
    counts = counter.get_flop_counts()
    return {"total": counter.get_total_flops()} | {p: sum(counts.get(p, {}).values()) for p in parts}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class _Setup:
    """What one configuration's steps run on: the models, the batch, its boxes."""

    model: torch.nn.Module
    detector: object
    restorer: torch.nn.Module
    graph: torch.nn.Module
    lq: torch.Tensor
    hq: torch.Tensor
    restored: torch.Tensor  # the cached I_R
    targets_lq: list
    targets_hq: list
    fmt: torch.memory_format


def _setup(cfg: BenchConfig, device: torch.device, seed: int) -> _Setup:
    from vat.models.detectors import FrozenDetector
    from vat.models.restorers import AODNet, freeze
    from vat.models.translator import create_translator
    from vat.train.graph import TrainGraph
    from vat.train.loss_inputs import LossConfig

    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        det = FrozenDetector(cfg.detector, nc=cfg.nc, imgsz=cfg.size, device=device)
    sp = cfg.speed
    model = create_translator(cfg.translator, seed=seed, checkpoint=sp.checkpoint).to(device)
    sp.prepare_translator(model)
    restorer = freeze(AODNet().init_weights(gen)).to(device)
    graph = TrainGraph(model, det, LossConfig(), sp)
    fmt = torch.channels_last if sp.channels_last else torch.contiguous_format
    shape = (cfg.batch, 3, cfg.size, cfg.size)
    lq = torch.rand(shape, generator=gen).to(device).contiguous(memory_format=fmt)
    hq = torch.rand(shape, generator=gen).to(device).contiguous(memory_format=fmt)
    with torch.no_grad():
        restored = restorer(lq).contiguous(memory_format=fmt)

    def boxes() -> list[dict[str, torch.Tensor]]:
        xy = torch.rand(cfg.batch, cfg.boxes, 2, generator=gen) * cfg.size * 0.7
        wh = 16 + torch.rand(cfg.batch, cfg.boxes, 2, generator=gen) * cfg.size * 0.25
        b = torch.cat([xy, (xy + wh).clamp(max=cfg.size)], 2)
        cls = torch.randint(0, cfg.nc, (cfg.batch, cfg.boxes), generator=gen)
        w = 0.5 + 0.5 * torch.rand(cfg.batch, cfg.boxes, generator=gen)
        return [{"boxes": b[i].to(device), "classes": cls[i].to(device), "weights": w[i].to(device)}
                for i in range(cfg.batch)]  # fmt: skip

    return _Setup(model, det, restorer, graph, lq, hq, restored, boxes(), boxes(), fmt)


_PARTS = ("TrainGraph.model.gate", "TrainGraph.model.t_a", "TrainGraph.model.t_b")


def _flops(s: _Setup, seed: int) -> dict:
    """The step's forward FLOPs per image and the translator's share (no graph is kept)."""
    lam_gen = torch.Generator(device=s.lq.device).manual_seed(seed)
    with torch.no_grad():
        args = (s.lq, s.restored, s.hq, s.targets_lq, s.targets_hq, lam_gen)
        flops = forward_flops(s.graph, *args, parts=_PARTS)
    return {
        "gflop_fwd": round(flops["total"] / s.lq.shape[0] / 1e9, 2),
        "translator_share": round(sum(flops[p] for p in _PARTS) / flops["total"], 3),
    }


def step_flops(cfg: BenchConfig, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """``gflop_fwd`` (per image) and ``translator_share`` of ``cfg``'s step, without timing it.

    The same for every speed option (checkpointing recomputes, but the step's forward is
    the same); at 512 px this takes a CPU a minute or two, not a GPU.
    """
    eager = replace(cfg, speed=replace(cfg.speed, compile=False, compile_detector=False))
    return _flops(_setup(eager, torch.device(device), seed), seed)


def bench_train(cfg: BenchConfig, device: torch.device | str = "cpu", seed: int = 0) -> dict:
    """Images/s and peak memory of ``cfg``'s training step; ``{"oom": True}`` when it does not fit."""
    device = torch.device(device)
    result = row(cfg) | {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"}
    s = opt = None
    try:
        s = _setup(cfg, device, seed)
        opt = torch.optim.AdamW(s.model.parameters(), lr=1e-4, weight_decay=1e-4)
        lam_gen = torch.Generator(device=device)

        def step(i: int, saved: SavedForBackward | None = None) -> None:
            r = s.restored
            if cfg.pipeline == "per_step":
                with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=cfg.speed.bf16):
                    r = s.restorer(s.lq).contiguous(memory_format=s.fmt)
                    s.detector.predict(s.lq), s.detector.predict(r), s.detector.predict(s.hq)
            lam_gen.manual_seed(seed + i)
            with saved or SavedForBackward(enabled=False):
                out = s.graph(s.lq, r, s.hq, s.targets_lq, s.targets_hq, lam_gen)
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
        # Untimed, not under torch.compile (its graphs would be traced again under these modes
        # and hooks, and saved-tensor hooks are not reliable with compiled autograd; inductor's
        # kernels bypass the FLOP counter): the forward's FLOPs, then one more step measuring
        # what autograd keeps for the backward and the peak of the tensors the step allocates.
        if not (cfg.speed.compile or cfg.speed.compile_detector):
            result |= _flops(s, seed)
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
    channels_last, + D's BatchNorms folded, + one D forward for the loss terms (the fast
    mode's base), + compile (fast mode), + checkpointing of the translator's blocks, + of
    D's layers too (memory mode), memory mode + compile; width 48 in memory mode, without
    and with compile; the released network's depth (``vat-release``, ``vat-release-w48``: a
    quarter of the FLOPs) in fast mode + compile (of the translator's blocks; and of D's
    layers too) and memory mode (+ compile); then the largest batch that fits (``vat bench
    train --largest``). CPU (or ``quick``): the same switches at 128 px, batch 2, width 4,
    without compile.
    """
    bf16 = replace(
        PLAIN, bf16=True, channels_last=True
    )  # FAST without D's BatchNorms folded, D's calls apart
    fold = replace(bf16, fold_batchnorm=True)  # FAST without one D forward for the loss terms
    compiled = replace(PLAIN, compile=True)
    if torch.device(device).type != "cuda" or quick:
        base = BenchConfig(translator="vat-w4", size=128, batch=2, detector="yolov8n.yaml", steps=6, warmup=2)
        speeds = [bf16, fold, FAST, replace(PLAIN, checkpoint=True), MEMORY]
        return [base, replace(base, pipeline="per_step")] + [replace(base, speed=sp) for sp in speeds]
    base = BenchConfig()
    speeds = [bf16, fold, FAST, FAST | compiled, replace(FAST, checkpoint=True), FAST | MEMORY,
              FAST | MEMORY | compiled]  # fmt: skip
    w48 = replace(base, translator="vat-w48", speed=FAST | MEMORY)
    release = replace(base, translator="vat-release")
    release_speeds = [FAST | compiled, replace(FAST | compiled, compile_detector=True), FAST | MEMORY,
                      FAST | MEMORY | compiled]  # fmt: skip
    return (
        [base, replace(base, pipeline="per_step")]
        + [replace(base, speed=sp) for sp in speeds]
        + [w48, replace(w48, speed=w48.speed | compiled)]
        + [replace(release, speed=sp) for sp in release_speeds]
        + [replace(w48, translator="vat-release-w48")]
    )


def measure(configs: list[BenchConfig], device: torch.device, largest: bool = False):
    """Rows of :func:`bench_train` for ``configs``, one at a time (a mode that fails, a compiler
    error say, is a row with its error); with ``largest``, then the memory mode at batch 8, 16,
    ... until it does not fit."""
    for cfg in configs:
        try:
            r = bench_train(cfg, device)
        except Exception as e:  # reported, not fatal: the other rows still run
            r = row(cfg) | {"oom": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        release(device)
        yield r
    batch = 8
    while largest and batch <= 512:
        r = bench_train(BenchConfig(speed=FAST | MEMORY, batch=batch, steps=5, warmup=2), device)
        release(device)
        yield r
        if "images_per_s" not in r:
            break
        batch *= 2


def pipeline_ratios(rows: list[dict]) -> dict[str, float]:
    """Cached over per-step images/s for each per-step row with a cached twin."""
    ok = {label(r): r["images_per_s"] for r in rows if "images_per_s" in r}
    ratios = {}
    for r in rows:
        if r["pipeline"] == "per_step" and "images_per_s" in r:
            twin = label(r | {"pipeline": "cached"})
            if twin in ok:
                ratios[f"cached / per-step ({twin})"] = round(ok[twin] / r["images_per_s"], 2)
    return ratios


def row(cfg: BenchConfig) -> dict:
    """``cfg`` as one flat row: its fields, the speed options among them (JSON rows, labels)."""
    return {k: v for k, v in asdict(cfg).items() if k != "speed"} | cfg.speed.to_dict()


def label(row: dict) -> str:
    opts = [k for k in OPTIONS if row.get(k)]
    return f"{row['translator']} {row['pipeline']} b{row['batch']} " + ("+".join(opts) or "eager fp32")


def train_table(result: dict) -> str:
    """Markdown: one row per configuration, with the ratio to the first (plain eager) row."""
    rows = result["rows"]
    base = next((r for r in rows if "images_per_s" in r), None)
    lines = [
        f"# One VaT training step on {result['device']} ({rows[0]['size']} px)",
        "",
        "| configuration | img/s | x plain eager | step ms | peak GiB | step peak GiB | saved GiB "
        "| x plain saved | fwd GFLOP/img | T share | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "images_per_s" not in r:
            lines.append(f"| {label(r)} | {r.get('error') or 'out of memory'} | | | | | | | | | |")
            continue
        ratio = r["images_per_s"] / base["images_per_s"] if base else float("nan")
        saved = r.get("saved_gib", "-")
        base_saved = base.get("saved_gib") if base else None
        saved_ratio = f"{saved / base_saved:.2f}" if saved != "-" and base_saved else "-"
        flops = f"{r.get('gflop_fwd', '-')} | {r.get('translator_share', '-')}"
        lines.append(f"| {label(r)} | {r['images_per_s']:.2f} | {ratio:.2f} | {r['step_ms']:.1f} | "
                     f"{r.get('peak_gib', '-')} | {r.get('step_peak_gib', '-')} | {saved} | {saved_ratio} | "
                     f"{flops} | {r['warmup_s']} |")  # fmt: skip
    lines.append(
        "\npeak GiB (CUDA only): the allocator's peak over the timed steps. step peak GiB: the"
        " peak of the tensors one step allocates (vat.bench.train.TensorMemory), saved GiB: what"
        " autograd keeps from the forward for the backward (SavedForBackward); both measured alike"
        " on every device in one more, untimed step (not under compile). fwd GFLOP/img: the"
        " step's forward matmul and convolution FLOPs per image (vat.bench.train.forward_flops;"
        " the backward adds about 2x the translator's and 1x D's), T share: the translator's part."
    )
    for k, v in result.get("ratios", {}).items():
        lines.append(f"\n{k}: {v}")
    return "\n".join(lines) + "\n"
