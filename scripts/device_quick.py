"""A few extra training-step measurements on a GPU (see scripts/device_check.sh for the suite).

Usage: python3 scripts/device_quick.py OUT_JSON
Rows, most wanted first (a short device session keeps what it measured: the JSON is
rewritten after every row). The targets' reference numbers were taken on the released
network's depth (vat-release, reports/bench/README.md), so first its fast mode + compile (35 img/s),
the same with D's layers compiled too,
its memory mode + compile and its blocks' checkpointing + compile (25 img/s within 6 GiB),
and its fast mode + compile without channels_last (never measured); then the memory mode
(checkpointing of the translator's blocks and of D's layers, bf16 + channels_last) of
vat-w16, vat-release-w48 and vat-w48 (6 and 16 GiB); then vat-w16 fast + memory + compile,
vat-w16 fast + compile without channels_last, plain vat-release and its memory mode
without compile for the ratios; last, vat-release without one D forward for the loss terms,
then also without D's BatchNorms folded (the session-2 fast mode), with compile.
"""

import json
import sys
from dataclasses import replace

import torch

from vat.bench.train import BenchConfig, bench_train, release
from vat.bench.train import row as bench_row
from vat.train.speed import FAST, MEMORY, PLAIN, Speed


def rows() -> list[BenchConfig]:
    """The rows, most wanted first (built on any machine: a CPU test checks them)."""
    w16 = BenchConfig(steps=6, warmup=2)
    release_depth = replace(w16, translator="vat-release", steps=8)
    compiled = replace(PLAIN, compile=True)
    no_cl = replace(FAST, channels_last=False)  # depthwise convs may run faster in NCHW: never measured

    def at(cfg: BenchConfig, speed: Speed, **kw) -> BenchConfig:
        return replace(cfg, speed=speed, **kw)

    return [
        at(release_depth, FAST | compiled),
        at(release_depth, replace(FAST | compiled, compile_detector=True)),
        at(release_depth, FAST | MEMORY | compiled),
        at(release_depth, replace(FAST | compiled, checkpoint=True)),
        at(release_depth, no_cl | compiled),
        at(w16, FAST | MEMORY),
        at(w16, FAST | MEMORY, translator="vat-release-w48"),
        at(w16, FAST | MEMORY, translator="vat-w48"),
        at(w16, FAST | MEMORY | compiled),
        at(w16, no_cl | compiled),
        release_depth,
        at(release_depth, FAST | MEMORY),
        at(release_depth, replace(FAST | compiled, one_detector_pass=False)),  # D's loss calls apart
        at(release_depth, replace(PLAIN, bf16=True, channels_last=True, compile=True)),  # + not folded
    ]


def main(path: str) -> None:
    out = {"device": torch.cuda.get_device_name(0), "rows": []}
    for cfg in rows():
        try:
            r = bench_train(cfg, "cuda")
        except Exception as e:
            r = bench_row(cfg) | {"error": f"{type(e).__name__}: {str(e)[:200]}"}
        release("cuda")
        out["rows"].append(r)
        print(
            json.dumps(
                {
                    k: r.get(k)
                    for k in (
                        "translator",
                        "batch",
                        "bf16",
                        "fold_batchnorm",
                        "one_detector_pass",
                        "checkpoint",
                        "checkpoint_detector",
                        "compile",
                        "compile_detector",
                        "images_per_s",
                        "peak_gib",
                        "step_peak_gib",
                        "saved_gib",
                        "gflop_fwd",
                        "oom",
                        "error",
                    )
                }
            ),
            flush=True,
        )
        with open(path, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main(sys.argv[1])
