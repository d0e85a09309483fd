"""A few extra training-step measurements on a GPU (see scripts/device_check.sh for the suite).

Usage: python3 scripts/device_quick.py OUT_JSON
Rows, most wanted first (a short device session keeps what it measured: the JSON is
rewritten after every row): the memory mode (checkpointing of the translator's blocks and
of D's layers, bf16 + channels_last) of vat-w16 and vat-w48, to check the 6 and 16 GiB
targets; then the released network's lighter depth (vat-release, width 16) in the fast mode
(+ compile) and fast + memory + compile, to see how far the 35 and 25 img/s targets are;
then vat-w16 fast + memory + compile, and plain vat-release as the baseline of its ratios.
"""

import json
import sys
from dataclasses import asdict, replace

import torch

from vat.bench_train import BenchConfig, bench_train, release

fast = {"bf16": True, "channels_last": True}
memory = {"checkpoint": True, "checkpoint_detector": True}
w16 = BenchConfig(steps=6, warmup=2)
release_depth = replace(w16, translator="vat-release", steps=8)
rows = [
    replace(w16, **fast, **memory),
    replace(w16, translator="vat-w48", **fast, **memory),
    replace(release_depth, **fast, compile=True),
    replace(release_depth, **fast, **memory, compile=True),
    replace(w16, **fast, **memory, compile=True),
    release_depth,
    replace(release_depth, **fast, **memory),
]
out = {"device": torch.cuda.get_device_name(0), "rows": []}
for cfg in rows:
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
                    "checkpoint",
                    "checkpoint_detector",
                    "compile",
                    "images_per_s",
                    "peak_gib",
                    "step_peak_gib",
                    "saved_gib",
                    "oom",
                    "error",
                )
            }
        ),
        flush=True,
    )
    with open(sys.argv[1], "w") as f:
        json.dump(out, f, indent=2)
