"""How much work one training step is at the speed targets' setting, counted on the CPU.

Usage: python3 scripts/flops.py [OUT_DIR]   (default reports/bench)

For each translator the GPU rows were measured with (512 px, batch 4, random-weight frozen
YOLOv3u), the step's forward FLOPs per image and the translator's share
(:func:`vat.bench.train.step_flops`, matmuls and convolutions; device-independent). A step's
FLOPs are then estimated as 3x the translator's forward (its backward computes input and
weight gradients) plus 2x D's (input gradients only), and divided into the GPU's measured
img/s (the committed reports/bench/train*-NVIDIA-*.json rows, bf16) to give the rate the card
reached. Writes flops.json / flops.md.
"""

import json
import sys
from pathlib import Path

from vat.bench.train import BenchConfig, step_flops

out = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/bench")
translators = ("vat-release", "vat-w16", "vat-release-w48", "vat-w48")
rows = []
for name in translators:
    r = step_flops(BenchConfig(translator=name, size=512, batch=4))
    t = r["gflop_fwd"] * r["translator_share"]
    rows.append(r | {"translator": name, "step_gflop": round(3 * t + 2 * (r["gflop_fwd"] - t), 1)})
    print(json.dumps(rows[-1]), flush=True)

measured = []
for path in sorted(out.glob("train*-NVIDIA-*.json")):
    data = json.loads(path.read_text())
    for m in data["rows"]:
        match = next((r for r in rows if r["translator"] == m["translator"]), None)
        usable = m.get("images_per_s") and m.get("bf16") and (m["size"], m["pipeline"]) == (512, "cached")
        if match and usable:
            opts = "+".join(k for k in ("compile", "checkpoint", "checkpoint_detector") if m.get(k)) or "-"
            rate = match["step_gflop"] * m["images_per_s"] / 1000
            measured.append(
                {"file": path.name, "device": data["device"].replace("-", " "), "translator": m["translator"],
                 "batch": m["batch"], "options": opts, "images_per_s": m["images_per_s"],
                 "tflop_s": round(rate, 1)}
            )  # fmt: skip

out.mkdir(parents=True, exist_ok=True)
(out / "flops.json").write_text(json.dumps({"rows": rows, "measured": measured}, indent=2) + "\n")
lines = [
    "# One training step's work at 512 px, batch 4, frozen YOLOv3u (scripts/flops.py)",
    "",
    "| translator | forward GFLOP/img | translator share | step GFLOP/img (est.) |",
    "|---|---|---|---|",
    *(
        f"| {r['translator']} | {r['gflop_fwd']} | {r['translator_share']} | {r['step_gflop']} |"
        for r in rows
    ),  # fmt: skip
    "",
    "step = 3 x the translator's forward + 2 x D's (backward: weight and input gradients for the"
    " translator, input gradients only for the frozen D).",
    "",
    "## Rate the GPU rows reached (bf16 + channels_last, cached pipeline)",
    "",
    "| device | translator | batch | + options | img/s | TFLOP/s |",
    "|---|---|---|---|---|---|",
    *(
        f"| {m['device']} | {m['translator']} | {m['batch']} | {m['options']} | {m['images_per_s']} | "
        f"{m['tflop_s']} |"
        for m in measured
    ),  # fmt: skip
    "",
    "Checkpointed rows run parts of the forward twice; the rate counts the work of a step without"
    " checkpointing, so it is what the step delivers, not what the card computed.",
]
(out / "flops.md").write_text("\n".join(lines) + "\n")
