"""The memory mode's footprint at the paper's settings, measured on the CPU (no GPU needed).

Usage: python3 scripts/memory_cpu.py [OUT_DIR]   (default reports/bench)

One training step of vat-w16 / vat-w48 with a random-weight frozen YOLOv3u, batch 4, bf16
autocast, with the translator's blocks checkpointed, then D's layers too; at 128 and 256 px
(512 px takes too long on a laptop CPU; the footprint grows with the pixel count). Reports
``step_peak_gib`` (the peak of the tensors one step allocates) and ``saved_gib`` (what autograd
keeps for the backward) from :func:`vat.bench_train.bench_train`; writes memory-cpu.json/.md.
"""

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from vat.bench_train import BenchConfig, bench_train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench")
base = BenchConfig(batch=4, bf16=True, checkpoint=True, steps=1, warmup=1)
cases = [("vat-w16", 128), ("vat-w16", 256), ("vat-w48", 128)]
rows = []
for translator, size in cases:
    for detector in (False, True):
        r = bench_train(replace(base, translator=translator, size=size, checkpoint_detector=detector))
        keep = [*asdict(base), "step_peak_gib", "saved_gib"]
        rows.append({k: r.get(k) for k in keep})
        print(json.dumps(rows[-1]), flush=True)
out.mkdir(parents=True, exist_ok=True)
(out / "memory-cpu.json").write_text(json.dumps({"device": "cpu", "rows": rows}, indent=2) + "\n")
lines = [
    "# Memory mode on the CPU: one step, batch 4, bf16, frozen YOLOv3u (scripts/memory_cpu.py)",
    "",
    "| translator | size | checkpointed | step peak GiB | saved GiB |",
    "|---|---|---|---|---|",
]
for r in rows:
    what = "blocks + D's layers" if r["checkpoint_detector"] else "blocks"
    lines.append(f"| {r['translator']} | {r['size']} | {what} | {r['step_peak_gib']} | {r['saved_gib']} |")
(out / "memory-cpu.md").write_text("\n".join(lines) + "\n")
