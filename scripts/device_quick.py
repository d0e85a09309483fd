"""A few extra training-step measurements on a GPU (see scripts/device_check.sh for the suite).

Usage: python3 scripts/device_quick.py OUT_JSON
Rows: the released network's lighter depth (vat-release, width 16) in the suite's modes
(fast: bf16 + channels_last + compile; memory: checkpointing of the translator's blocks and
of D's layers; both), and the memory mode of vat-w16 at larger batches.
"""

import json
import sys
from dataclasses import asdict, replace

import torch

from vat.bench_train import BenchConfig, bench_train, release

fast = {"bf16": True, "channels_last": True}
memory = {"checkpoint": True, "checkpoint_detector": True}
base = BenchConfig(translator="vat-release", steps=8, warmup=2)
rows = [
    base,
    replace(base, **fast),
    replace(base, **fast, compile=True),
    replace(base, **fast, **memory),
    replace(base, **fast, **memory, compile=True),
]
mem16 = replace(BenchConfig(steps=4, warmup=1), **fast, **memory)
rows += [replace(mem16, batch=16), replace(mem16, batch=64)]
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
