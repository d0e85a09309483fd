"""vat bench train's step: the per-step pipeline really reruns R and D; numbers are reported, not asserted."""

from dataclasses import replace

import torch

from vat.bench.train import (
    BenchConfig,
    SavedForBackward,
    TensorMemory,
    bench_train,
    forward_flops,
    row,
    suite,
)
from vat.train.speed import MEMORY, PLAIN


def test_per_step_pipeline_reruns_r_and_d_and_cached_does_not(monkeypatch):
    from vat.models.detectors import FrozenDetector
    from vat.models.restorers import AODNet

    calls = {"predict": 0, "restore": 0}
    predict, forward = FrozenDetector.predict, AODNet.forward

    def counting_predict(self, *a, **k):
        calls["predict"] += 1
        return predict(self, *a, **k)

    def counting_forward(self, *a, **k):
        calls["restore"] += 1
        return forward(self, *a, **k)

    monkeypatch.setattr(FrozenDetector, "predict", counting_predict)
    monkeypatch.setattr(AODNet, "forward", counting_forward)
    small = BenchConfig(
        translator="vat-w4", size=32, batch=1, detector="yolov8n.yaml", nc=3, steps=2, warmup=1
    )
    r = bench_train(small)
    assert calls == {"predict": 0, "restore": 1}  # R once, to cache I_R
    assert r["images_per_s"] > 0 and r["step_ms"] > 0 and not r["oom"] and r["device"] == "cpu"
    assert r["step_peak_gib"] >= r["saved_gib"] > 0  # the step holds what it saves, and more
    assert r["gflop_fwd"] > 0 and 0 < r["translator_share"] < 1  # D's forward counts too
    bench_train(replace(small, pipeline="per_step"))
    # 1 warm-up + 2 timed + 1 memory-measuring step; per step: R once, D on I_LQ, I_R, I_HQ
    assert calls == {"predict": 3 * 4, "restore": 1 + 1 + 4}


def test_cpu_suite_covers_each_option_once():
    rows = suite(torch.device("cpu"))
    assert {r.pipeline for r in rows} == {"cached", "per_step"}
    sp = [r.speed for r in rows]
    assert any(s.checkpoint for s in sp) and any(s.bf16 and s.channels_last for s in sp)
    assert any(s.checkpoint and s.checkpoint_detector for s in sp)
    assert any(s.fold_batchnorm for s in sp) and len(set(rows)) == len(rows)
    # each fast-mode option has a row of its own: FAST with one D forward, and the same without
    assert any(s.one_detector_pass for s in sp)
    assert any(replace(s, one_detector_pass=False) in sp for s in sp if s.one_detector_pass)
    assert not any(s.compile for s in sp)  # compiling takes minutes on a 2-core CPU
    assert all(None not in s.to_dict().values() for s in sp)  # explicit: no "on CUDA only"
    gpu = suite(torch.device("cuda"))
    assert {r.translator for r in gpu} == {"vat-w16", "vat-w48", "vat-release", "vat-release-w48"}
    assert all(r.size == 512 for r in gpu) and len(set(gpu)) == len(gpu)


def test_saved_for_backward_counts_each_storage_once_and_no_parameters():
    w = torch.nn.Parameter(torch.ones(8))
    x = torch.rand(4, 8, requires_grad=True)
    with SavedForBackward() as saved:
        y = x * 2  # a constant factor saves nothing
        z = (y * y).sum()  # saves y twice: one storage
        u = (y[:2] * w).sum()  # saves a view of y (same storage) and w (a parameter)
        v = (y[:1, :4] * w[:4]).sum()  # a slice of w: a view of a parameter, not counted
    assert saved.nbytes == 4 * 8 * 4
    (z + u + v).backward()
    with SavedForBackward(enabled=False) as off:
        (x * x).sum()
    assert off.nbytes == 0


def test_memory_mode_keeps_less_than_block_checkpointing_alone():
    small = BenchConfig(
        translator="vat-w4", size=64, batch=2, detector="yolov8n.yaml", nc=3, steps=1, warmup=1
    )
    rows = {
        key: bench_train(replace(small, speed=speed))
        for key, speed in {"plain": PLAIN, "blocks": replace(PLAIN, checkpoint=True), "both": MEMORY}.items()
    }
    for k in ("saved_gib", "step_peak_gib"):
        assert rows["plain"][k] > rows["blocks"][k] > rows["both"][k] > 0, k


def test_tensor_memory_follows_allocations_and_frees():
    n = 1000 * 1000 * 4  # bytes of one (1000, 1000) float32 tensor
    x = torch.randn(1000, 1000)
    with TensorMemory() as mem:
        a = x * 2
        b = a + 1
        view = b[:10]  # a view: no new storage
        assert mem.live == 2 * n
        del a
        c = view.sum()
        assert mem.live == n + c.nbytes
    assert mem.peak == 2 * n


def test_forward_flops_counts_convolutions_per_module():
    net = torch.nn.Sequential(
        torch.nn.Conv2d(4, 8, 1, bias=False), torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False)
    )
    x = torch.rand(2, 4, 5, 5, requires_grad=True)
    flops = forward_flops(net, x, parts=("Sequential.0", "Sequential.1"))
    pixels = 2 * 5 * 5
    assert flops["Sequential.0"] == 2 * pixels * 4 * 8  # a multiply-add is two FLOPs
    assert flops["Sequential.1"] == 2 * pixels * 8 * 9  # depthwise: one input channel per output
    assert flops["total"] == flops["Sequential.0"] + flops["Sequential.1"]


def test_train_table_rows_have_as_many_cells_as_the_header():
    from vat.bench.train import train_table

    ok = row(BenchConfig(size=64)) | {"images_per_s": 2.0, "step_ms": 10.0, "warmup_s": 1.0,
                                          "saved_gib": 0.5, "step_peak_gib": 0.6, "gflop_fwd": 12.5,
                                          "translator_share": 0.25}  # fmt: skip
    compiled = ok | {"compile": True, "images_per_s": 4.0}
    for k in ("saved_gib", "step_peak_gib", "gflop_fwd", "translator_share"):
        compiled.pop(k)  # not measured under compile
    failed = ok | {"error": "RuntimeError: x"}
    failed.pop("images_per_s")
    text = train_table({"device": "cpu", "rows": [ok, compiled, failed]})
    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 5 and len({line.count("|") for line in table}) == 1
    assert "| 12.5 | 0.25 |" in table[2] and "| 2.00 |" in table[3]  # x plain eager of the compiled row


def test_device_script_rows_build_and_differ():
    """scripts/device_quick.py's rows are built here, on the CPU: a typo there would cost a
    scarce GPU session. Most wanted first: vat-release's fast mode with compile."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "device_quick.py"
    spec = importlib.util.spec_from_file_location("device_quick", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines rows() and main(); runs nothing
    rows = module.rows()
    assert len(set(rows)) == len(rows) > 5
    first = rows[0].speed
    assert rows[0].translator == "vat-release" and first.compile and first.one_detector_pass
    assert any(r.speed.compile_detector for r in rows) and any(r.speed.checkpoint_detector for r in rows)
