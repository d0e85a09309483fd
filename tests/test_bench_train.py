"""vat bench train's step: the per-step pipeline really reruns R and D; numbers are reported, not asserted."""

import torch

from vat.bench_train import BenchConfig, SavedForBackward, TensorMemory, bench_train, suite


def test_per_step_pipeline_reruns_r_and_d_and_cached_does_not(monkeypatch):
    from vat.models.detector import FrozenDetector
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
    bench_train(BenchConfig(**{**small.__dict__, "pipeline": "per_step"}))
    # 1 warm-up + 2 timed + 1 memory-measuring step; per step: R once, D on I_LQ, I_R, I_HQ
    assert calls == {"predict": 3 * 4, "restore": 1 + 1 + 4}


def test_cpu_suite_covers_each_option_once():
    rows = suite(torch.device("cpu"))
    assert {r.pipeline for r in rows} == {"cached", "per_step"}
    assert any(r.checkpoint for r in rows) and any(r.bf16 and r.channels_last for r in rows)
    assert any(r.checkpoint and r.checkpoint_detector for r in rows)
    assert not any(r.compile for r in rows)  # compiling takes minutes on a 2-core CPU
    gpu = suite(torch.device("cuda"))
    assert {r.translator for r in gpu} == {"vat-w16", "vat-w48"} and all(r.size == 512 for r in gpu)


def test_saved_for_backward_counts_each_storage_once_and_no_parameters():
    w = torch.nn.Parameter(torch.ones(8))
    x = torch.rand(4, 8, requires_grad=True)
    with SavedForBackward() as saved:
        y = x * 2  # a constant factor saves nothing
        z = (y * y).sum()  # saves y twice: one storage
        u = (y[:2] * w).sum()  # saves a view of y (same storage) and w (a parameter)
    assert saved.nbytes == 4 * 8 * 4
    (z + u).backward()
    with SavedForBackward(enabled=False) as off:
        (x * x).sum()
    assert off.nbytes == 0


def test_memory_mode_keeps_less_than_block_checkpointing_alone():
    small = BenchConfig(
        translator="vat-w4", size=64, batch=2, detector="yolov8n.yaml", nc=3, steps=1, warmup=1
    )
    rows = {
        key: bench_train(BenchConfig(**small.__dict__ | opts))
        for key, opts in {
            "plain": {},
            "blocks": {"checkpoint": True},
            "both": {"checkpoint": True, "checkpoint_detector": True},
        }.items()
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
