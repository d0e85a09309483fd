"""The VaT loss under DistributedDataParallel: 2 Gloo processes, each holding half of a global
batch, give the loss and the gradients of one process on the whole batch (vat.train.distributed,
``gather`` / ``shard`` of vat.train.losses)."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import lively_detector
from torch import nn

from vat.models.classifier import SmallCNN, TorchClassifier
from vat.models.translator import create_translator
from vat.train import distributed as vd
from vat.train.loss_inputs import ClassificationPairs, DetectionPairs, LossConfig, Sharding
from vat.train.losses import vat_loss, vat_loss_classify

WORLD = 2
B, H, W = 4, 32, 48  # global batch: 2 image pairs per rank
NC = 5

# (name, task, config, has_boxes_lq, has_boxes_hq)
CASES = [
    ("uncertainty", "detect", LossConfig(), None, None),
    ("gate_flow", "detect", LossConfig(gate_flow=True), None, None),
    ("none", "detect", LossConfig(mixup="none"), None, None),
    # rank 1 keeps no degraded image, rank 0 no clean one: both still gather
    ("one_rank_empty", "detect", LossConfig(), [True, True, False, False], [False, False, True, True]),
    ("classify", "classify", LossConfig(gate_flow=True), None, None),
]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _detector():
    return lively_detector("yolov8n.yaml", nc=NC, imgsz=64, seed=0)


def _classifier():
    return TorchClassifier(SmallCNN(3, width=4, seed=0), ["a", "b", "c"])


def _images() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    return tuple(torch.rand(B, 3, H, W, generator=g) for _ in range(3))  # I_LQ, I_R, I_HQ


def _box(*xyxy: float) -> list[float]:
    return list(xyxy)


def _targets() -> tuple[list[dict], list[dict]]:
    """Degraded image 1 has no box and image 3 only a weight-0 one; clean image 2 has no box."""

    def t(boxes, classes, weights):
        return {
            "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
            "classes": torch.tensor(classes, dtype=torch.long),
            "weights": torch.tensor(weights, dtype=torch.float32),
        }

    lq = [
        t([_box(4, 3, 22, 25), _box(26, 8, 44, 30)], [1, 3], [0.9, 0.6]),
        t([], [], []),
        t([_box(10, 5, 40, 28)], [0], [0.8]),
        t([_box(2, 2, 18, 20)], [2], [0.0]),
    ]
    hq = [
        t([_box(5, 4, 21, 24)], [1], [1.0]),
        t([_box(12, 6, 30, 28), _box(30, 2, 46, 16)], [4, 2], [0.7, 0.9]),
        t([], [], []),
        t([_box(8, 10, 28, 30)], [3], [0.5]),
    ]
    return lq, hq


def _soft_labels():
    g = torch.Generator().manual_seed(7)
    y_lq, y_hq = (torch.rand(B, 3, generator=g).softmax(-1) for _ in range(2))
    return y_lq, y_hq, torch.tensor([0.7, 0.0, 1.0, 0.5]), torch.tensor([1.0, 0.8, 0.0, 0.6])


class _Loss(nn.Module):
    """What a trainer wraps in DDP: the translator, with the loss computed in ``forward``
    (DDP synchronises the gradients of a backward that follows its own forward only)."""

    def __init__(self, translator: nn.Module) -> None:
        super().__init__()
        self.translator = translator

    def forward(self, i_lq, i_r, i_hq, case, model, rows, **dist_kw):
        _, task, cfg, keep_lq, keep_hq = case
        i_f = self.translator.fuse(i_lq, i_r)[0]
        t_a, t_b = self.translator.t_a, self.translator.t_b
        gen = torch.Generator().manual_seed(11)
        if task == "detect":
            lq, hq = _targets()
            masks = [None if m is None else torch.tensor(m) for m in (keep_lq, keep_hq)]
            return vat_loss(t_a, t_b, DetectionPairs(i_f, i_hq, lq, hq, *masks), model, cfg, gen, **dist_kw)
        pairs = ClassificationPairs(i_f, i_hq, *_soft_labels())
        return vat_loss_classify(t_a, t_b, pairs, model, cfg, gen, **dist_kw)


def _run_case(module: nn.Module, params: dict, case, models, rows: slice, **dist_kw) -> dict:
    i_lq, i_r, i_hq = (x[rows] for x in _images())
    for p in params.values():
        p.grad = None
    out = module(i_lq, i_r, i_hq, case, models[case[1]], rows, **dist_kw)
    out["total"].backward()
    result = {k: v.detach().clone() for k, v in out.items()}
    result["grads"] = {n: p.grad.detach().clone() for n, p in params.items() if p.grad is not None}
    return result


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
    )
    assert vd.init_from_env("cpu") == (rank, WORLD)
    try:
        # The helpers in a world of 2.
        helpers = {
            "rank": vd.rank(),
            "world": vd.world(),
            "is_main": vd.is_main(),
            "shard": vd.shard(B),
            "object": vd.broadcast_object({"from": vd.rank()}),
            "mean": vd.all_reduce_mean(torch.tensor(float(rank))).item(),
            "gathered": vd.all_gather_cat(torch.full((2, 3), float(rank))),
        }
        try:
            vd.shard(3)
        except ValueError:
            helpers["shard_error"] = True
        x = torch.full((2, 3), float(rank + 1), requires_grad=True)
        weights = torch.arange(2 * WORLD, dtype=torch.float32).view(-1, 1)
        (vd.all_gather_cat(x) * weights).sum().backward()  # every rank: the same loss
        helpers["gather_grad"] = x.grad.clone()
        vd.barrier()

        models = {"detect": _detector(), "classify": _classifier()}
        ddp = nn.parallel.DistributedDataParallel(_Loss(create_translator("vat-w4", seed=0)))
        params = dict(ddp.module.named_parameters())
        rows = vd.shard(B)
        results = {}
        for case in CASES:
            r = _run_case(ddp, params, case, models, rows, sharding=Sharding(vd.all_gather_cat, rows))
            r["total_mean"] = vd.all_reduce_mean(r["total"])
            results[case[0]] = r
        torch.save({"helpers": helpers, "results": results}, Path(out_dir) / f"rank{rank}.pt")
    finally:
        vd.cleanup()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(out_dir: Path, timeout: float = 120.0) -> None:
    ctx = mp.start_processes(
        _worker, args=(_free_port(), str(out_dir)), nprocs=WORLD, join=False, start_method="spawn"
    )
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=1):  # raises if a worker failed
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.terminate()
            pytest.fail(f"the {WORLD} workers did not finish in {timeout:.0f} s (a collective hung?)")


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory) -> list[dict]:
    if not (dist.is_available() and dist.is_gloo_available()):
        pytest.skip("torch.distributed with the Gloo backend is not available")
    out = tmp_path_factory.mktemp("ddp")
    _spawn(out)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.fixture(scope="module")
def reference() -> dict:
    """One process, the whole global batch, no gather."""
    module = _Loss(create_translator("vat-w4", seed=0))
    params = dict(module.named_parameters())
    models = {"detect": _detector(), "classify": _classifier()}
    return {case[0]: _run_case(module, params, case, models, slice(0, B)) for case in CASES}


def test_helpers_in_a_world_of_two(ddp_results):
    for r, res in enumerate(ddp_results):
        h = res["helpers"]
        assert (h["rank"], h["world"], h["is_main"]) == (r, WORLD, r == 0)
        assert h["shard"] == slice(2 * r, 2 * r + 2) and h["shard_error"]
        assert h["object"] == {"from": 0} and h["mean"] == pytest.approx(0.5)
        assert torch.equal(h["gathered"], torch.tensor([0.0] * 2 + [1.0] * 2).view(4, 1).expand(4, 3))
        # d/dx of sum(gathered * w), computed on both ranks, summed: 2 * w of this rank's rows
        expect = 2 * torch.arange(2 * r, 2 * r + 2, dtype=torch.float32).view(2, 1).expand(2, 3)
        assert torch.equal(h["gather_grad"], expect)


@pytest.mark.parametrize("name", [c[0] for c in CASES])
def test_ddp_loss_and_gradients_match_one_process(ddp_results, reference, name):
    ref = reference[name]
    r0, r1 = (res["results"][name] for res in ddp_results)
    assert ref["mle"] > 0 and ref["cycle"] > 0  # not vacuous
    if name in ("gate_flow", "classify"):
        assert ref["mle_gate"] > 0
    # The logged loss (mean over ranks of total) is the one-process loss.
    assert torch.allclose(r0["total_mean"], ref["total"], rtol=1e-4, atol=0)
    assert torch.equal(r0["total_mean"], r1["total_mean"])
    # L_mle and lam are the global batch's on every rank; L_cyc averages to the global mean.
    for key in ("mle", "mle_clean", "mle_mix", "mle_gate"):
        assert torch.allclose(r0[key], ref[key], rtol=1e-4, atol=1e-7), key
        assert torch.allclose(r1[key], ref[key], rtol=1e-4, atol=1e-7), key
    assert torch.equal(r0["lam"], ref["lam"]) and torch.equal(r1["lam"], ref["lam"])
    assert ref["lam"].shape == (B,)
    assert torch.allclose((r0["cycle"] + r1["cycle"]) / 2, ref["cycle"], rtol=1e-5, atol=0)
    # Gradients after DDP's averaging are the one-process gradients, on both ranks.
    assert set(r0["grads"]) == set(ref["grads"]) == set(r1["grads"])
    scale = max(g.abs().max().item() for g in ref["grads"].values())
    assert scale > 0
    for n, g in ref["grads"].items():
        assert torch.allclose(r0["grads"][n], g, rtol=1e-4, atol=1e-5 * scale), n
        assert torch.equal(r0["grads"][n], r1["grads"][n]), n


# -- a world of one ---------------------------------------------------------------------------


def test_helpers_without_a_process_group(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    if vd.is_distributed():
        pytest.skip("a process group exists in this process")
    assert vd.init_from_env("cpu") == (0, 1) and not vd.is_distributed()
    assert (vd.rank(), vd.world(), vd.local_rank(), vd.is_main()) == (0, 1, 0, True)
    assert vd.shard(4) == slice(0, 4)
    with pytest.raises(ValueError, match="shards"):
        vd.shard(0)
    x = torch.rand(3, 2, requires_grad=True)
    assert vd.all_gather_cat(x) is x
    m = vd.all_reduce_mean(x.sum())
    assert not m.requires_grad and torch.equal(m, x.sum().detach())
    assert vd.all_reduce_mean(3).dtype == torch.float64 and vd.all_reduce_mean(3).item() == 3
    assert vd.broadcast_object([1, "a"]) == [1, "a"]
    vd.barrier()
    vd.cleanup()


def test_sharded_path_in_a_world_of_one_is_the_plain_loss():
    """gather = identity and the whole batch as the shard: the distributed code path gives the
    single-process values and gradients."""
    models = {"detect": _detector(), "classify": _classifier()}
    module = _Loss(create_translator("vat-w4", seed=0))
    params = dict(module.named_parameters())
    cases = [  # the modes the 2-process test leaves out (plain mixup; T_A(I_F) without the cycle)
        ("plain", "detect", LossConfig(mixup="plain", fold_lambda=True), None, None),
        ("none_no_cycle", "detect", LossConfig(mixup="none", use_cycle=False, gate_flow=True), None, None),
        # plain mixup's unit weights reach the clean term under clean_weights in both paths
        ("plain_clean_weights", "detect", LossConfig(mixup="plain", clean_weights=True), None, None),
    ]
    cases += [  # the sharded path with the terms' D calls as one forward (--one-detector-pass)
        (name + "+one_pass", *rest) for name, *rest in (CASES[1], CASES[-1])
    ]
    for case in cases:
        plain = _run_case(module, params, case, models, slice(0, B))
        dist_kw = {"sharding": Sharding(vd.all_gather_cat, slice(0, B))}
        if case[0].endswith("+one_pass"):
            dist_kw["one_pass"] = True
        sharded = _run_case(module, params, case, models, slice(0, B), **dist_kw)
        for key in ("total", "cycle", "mle", "mle_clean", "mle_mix", "mle_gate", "lam"):
            assert torch.allclose(plain[key], sharded[key], rtol=1e-5, atol=1e-6), (case[0], key)
        assert set(sharded["grads"]) == set(plain["grads"])
        # the plain path batches its translator calls, the sharded one does not: float rounding
        for n, g in plain["grads"].items():
            atol = 1e-5 * float(g.abs().max())
            assert torch.allclose(sharded["grads"][n], g, rtol=1e-4, atol=atol), (case[0], n)


def test_gather_and_shard_are_checked():
    det = _detector()
    translator = create_translator("vat-w4", seed=0)
    t_a, t_b = translator.t_a, translator.t_b
    i_lq, _, i_hq = _images()
    lq, hq = _targets()
    pairs = DetectionPairs(i_lq[:2], i_hq[:2], lq, hq)

    def loss(shard, gather=vd.all_gather_cat, pairs=pairs):
        gen = torch.Generator().manual_seed(0)
        return vat_loss(t_a, t_b, pairs, det, LossConfig(), gen, sharding=Sharding(gather, shard))

    with pytest.raises(ValueError, match="together"):
        loss(None)
    with pytest.raises(ValueError, match="together"):
        loss(slice(0, 2), gather=None)
    with pytest.raises(ValueError, match="rows"):
        loss(slice(0, 3))
    with pytest.raises(ValueError, match="rows"):
        loss(slice(3, 5))
    with pytest.raises(ValueError, match="contiguous"):
        loss(slice(0, 4, 2))
    # a gather that does not give the global batch (here: the identity on 2 of 4 rows)
    with pytest.raises(ValueError, match="global batch"):
        loss(slice(2, 4))
    # the masks are the global batch's
    with pytest.raises(ValueError, match=r"\(4,\)"):
        loss(slice(0, 2), pairs=DetectionPairs(i_lq[:2], i_hq[:2], lq, hq, torch.ones(2, dtype=torch.bool)))
