"""A few extra training-step measurements on a GPU (see scripts/device_check.sh for the suite).

Usage: python3 scripts/device_quick.py OUT_JSON
Rows, most wanted first (a short device session keeps what it measured: the JSON is
rewritten after every row). The targets' reference numbers were taken on the released
network's depth (vat-release, README "Speed"), so first its fast mode + compile (35 img/s),
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
from dataclasses import asdict, replace

import torch

from vat.bench_train import FAST, MEMORY, BenchConfig, bench_train, release


def rows() -> list[BenchConfig]:
    """The rows, most wanted first (built on any machine: a CPU test checks them)."""
    w16 = BenchConfig(steps=6, warmup=2)
    release_depth = replace(w16, translator="vat-release", steps=8)
    no_cl = FAST | {"channels_last": False}  # depthwise convs may run faster in NCHW: never measured
    return [
        replace(release_depth, **FAST, compile=True),
        replace(release_depth, **FAST, compile=True, compile_detector=True),
        replace(release_depth, **FAST, **MEMORY, compile=True),
        replace(release_depth, **FAST, checkpoint=True, compile=True),
        replace(release_depth, **no_cl, compile=True),
        replace(w16, **FAST, **MEMORY),
        replace(w16, translator="vat-release-w48", **FAST, **MEMORY),
        replace(w16, translator="vat-w48", **FAST, **MEMORY),
        replace(w16, **FAST, **MEMORY, compile=True),
        replace(w16, **no_cl, compile=True),
        release_depth,
        replace(release_depth, **FAST, **MEMORY),
        replace(release_depth, **FAST | {"one_detector_pass": False}, compile=True),  # D's loss calls apart
        replace(release_depth, bf16=True, channels_last=True, compile=True),  # + D's BatchNorms not folded
    ]


def main(path: str) -> None:
    out = {"device": torch.cuda.get_device_name(0), "rows": []}
    for cfg in rows():
        try:
            r = bench_train(cfg, "cuda")
        except Exception as e:
            r = asdict(cfg) | {"error": f"{type(e).__name__}: {str(e)[:200]}"}
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
