"""A longer translator training on a GPU, then the test-split table (scripts/device_check.sh).

Usage: python3 scripts/gpu_train.py OUT [key=value ...]   (train params overriding params.yaml)
Writes OUT/train/metrics.json, OUT/train/samples.png, OUT/evaluate/{metrics.json,table.md}.
DVCLive is not installed on the GPU machine, so its logger is left out here.
"""

import ast
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import vat.train.loop
from stages import evaluate, train
from vat.config import load_common, load_section
from vat.eval.scoring import EvaluateParams
from vat.layout import MAIN
from vat.train.config import TrainParams
from vat.train.speed import Speed

out = Path(sys.argv[1])
overrides = {"translator": "vat-w16", "epochs": 30, "batch": 8, "lr": 5e-4}
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    overrides[k] = ast.literal_eval(v)
common = load_common("params.yaml")
params = replace(load_section(TrainParams, "train", "params.yaml"), **overrides)
vat.train.loop._live = lambda *a, **k: None  # no dvclive here
layout = MAIN.moved("train", Path("/tmp/gpu/train"), out / "train", Path("/tmp/gpu/train.resume"))
layout = layout.moved("evaluate", Path("/tmp/gpu/evaluate"), out / "evaluate")
t0 = time.perf_counter()
m = train.run(common, params, layout, speed=Speed(bf16=True, channels_last=True), device="cuda")
m["wall_seconds"] = round(time.perf_counter() - t0, 1)
(out / "train/metrics.json").write_text(json.dumps(m, indent=2))
print(
    "train:",
    json.dumps({k: m[k] for k in ("images_per_second", "train_seconds", "wall_seconds", "selected")}),
)
ev = load_section(EvaluateParams, "evaluate", "params.yaml")
t0 = time.perf_counter()
r = evaluate.run(common, ev, layout, device="cuda")  # the GPU machine has no ablate or study outputs
print(f"evaluate ({time.perf_counter() - t0:.1f} s):")
print((out / "evaluate/table.md").read_text())
