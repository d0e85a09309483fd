"""vat bench train's step: the per-step pipeline really reruns R and D; numbers are reported, not asserted."""

import torch

from vat.bench_train import BenchConfig, bench_train, suite


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
    bench_train(BenchConfig(**{**small.__dict__, "pipeline": "per_step"}))
    assert calls == {"predict": 3 * 3, "restore": 1 + 1 + 3}  # per step: R once, D on I_LQ, I_R, I_HQ


def test_cpu_suite_covers_each_option_once():
    rows = suite(torch.device("cpu"))
    assert {r.pipeline for r in rows} == {"cached", "per_step"}
    assert any(r.checkpoint for r in rows) and any(r.bf16 and r.channels_last for r in rows)
    assert not any(r.compile for r in rows)  # compiling takes minutes on a 2-core CPU
    gpu = suite(torch.device("cuda"))
    assert {r.translator for r in gpu} == {"vat-w16", "vat-w48"} and all(r.size == 512 for r in gpu)
