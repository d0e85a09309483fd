"""A training step's memory at the paper's settings, measured on the CPU (no GPU needed).

Usage: python3 scripts/memory_cpu.py [OUT_DIR] [TRANSLATOR ...]   (default reports/bench, all)

One training step with a random-weight frozen YOLOv3u, batch 4, bf16 autocast, at 128 and
256 px (512 px takes too long on a laptop CPU; the footprint grows with the pixel count):
vat-w16 / vat-w48 with the translator's blocks checkpointed, then D's layers too (vat-w48 at
256 px: both only); the released network's depth (vat-release) with nothing checkpointed,
blocks, blocks + D, each without and with D's BatchNorms folded; that depth at width 48
(vat-release-w48) with blocks, blocks + D checkpointed, D's BatchNorms folded. With the
blocks checkpointed the loss's translator calls run in chunks of the batch
(``vat.train.data.TrainGraph``'s ``chunk_translator``). Reports ``step_peak_gib`` (the peak of
the tensors one step allocates) and ``saved_gib`` (what autograd keeps for the backward) from
:func:`vat.bench.train.bench_train`. Naming translators measures only theirs; the rows of
the others already in memory-cpu.json are kept. Writes memory-cpu.json/.md.
"""

import json
import sys
from dataclasses import asdict, replace
from pathlib import Path

from vat.bench.train import MEMORY, BenchConfig, bench_train

out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench")
only = set(sys.argv[2:])
base = BenchConfig(batch=4, bf16=True, steps=1, warmup=0)
blocks, both = {"checkpoint": True}, MEMORY
cases = [
    *(replace(base, translator="vat-w16", size=s, **opts) for s in (128, 256) for opts in (blocks, both)),
    *(replace(base, translator="vat-w48", size=128, **opts) for opts in (blocks, both)),
    replace(base, translator="vat-w48", size=256, **both),  # ~10 minutes on a 2-core CPU
    *(
        replace(base, translator="vat-release", size=256, fold_batchnorm=fold, **opts)
        for opts in ({}, blocks, both)
        for fold in (False, True)
    ),
    *(
        replace(base, translator="vat-release-w48", size=256, fold_batchnorm=True, **opts)
        for opts in (blocks, both)
    ),
]
keep = [*asdict(base), "step_peak_gib", "saved_gib"]
path = out / "memory-cpu.json"
old = json.loads(path.read_text())["rows"] if path.is_file() else []


def ident(row: dict) -> tuple:
    """What a row measured (rows written before fold_batchnorm existed did not fold)."""
    keys = ("translator", "size", "batch", "bf16", "checkpoint", "checkpoint_detector", "detector")
    return (*(row[k] for k in keys), row.get("fold_batchnorm", False))


rows = []
for cfg in cases:
    if only and cfg.translator not in only:
        rows += [{k: r.get(k, False) for k in keep} for r in old if ident(r) == ident(asdict(cfg))][:1]
        continue
    r = bench_train(cfg)
    rows.append({k: r.get(k) for k in keep})
    print(json.dumps(rows[-1]), flush=True)
out.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps({"device": "cpu", "rows": rows}, indent=2) + "\n")
lines = [
    "# A step's memory on the CPU: batch 4, bf16, frozen YOLOv3u (scripts/memory_cpu.py)",
    "",
    "| translator | size | checkpointed | D's BatchNorms | step peak GiB | saved GiB |",
    "|---|---|---|---|---|---|",
]
for r in rows:
    what = "blocks + D's layers" if r["checkpoint_detector"] else "blocks" if r["checkpoint"] else "nothing"
    bn = "folded" if r["fold_batchnorm"] else "kept"
    gib = f"{r['step_peak_gib']} | {r['saved_gib']}"
    lines.append(f"| {r['translator']} | {r['size']} | {what} | {bn} | {gib} |")
(out / "memory-cpu.md").write_text("\n".join(lines) + "\n")
