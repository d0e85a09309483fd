"""torch.profiler's top operators of the default's training step on this CPU, and its img/s.

    python scripts/profile_cpu.py --label after            # -> reports/bench/profile-cpu.json
    PYTHONPATH=../old python scripts/profile_cpu.py --label before   # the same, older code

The step is the embedded default's: `--translator` (vat-w4 unless given), batch 4,
the small YOLO (yolov8p, 5 classes), random images and boxes (vat/bench/train.py's
setup), at `--size` px, with the CPU's speed options as `vat train` resolves them
(`--plain`: every option off). Each call adds one labelled entry to the JSON file and
rewrites profile-cpu.md from all entries, so runs of two code versions sit side by side.
Timing: 2 warm-up steps, then `--steps` timed steps; the profile is 3 more steps.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def measure(size: int, steps: int, plain: bool, translator: str = "vat-w4") -> dict:
    from torch.profiler import ProfilerActivity, profile

    from vat.bench.train import BenchConfig, _setup
    from vat.train.speed import PLAIN, Speed

    speed = PLAIN if plain else Speed().resolve("cpu")
    cfg = BenchConfig(translator=translator, size=size, batch=4, speed=speed, detector="yolov8p.yaml", nc=5)
    s = _setup(cfg, torch.device("cpu"), 0)
    opt = torch.optim.AdamW(s.model.parameters(), lr=1e-4)
    gen = torch.Generator()

    def step(i: int) -> float:
        gen.manual_seed(i)
        out = s.graph(s.lq, s.restored, s.hq, s.targets_lq, s.targets_hq, gen)
        opt.zero_grad(set_to_none=True)
        out["total"].backward()
        opt.step()
        return float(out["total"].detach())

    for i in range(2):
        step(i)
    t0 = time.perf_counter()
    for i in range(steps):
        step(2 + i)
    dt = time.perf_counter() - t0
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(3):
            step(100 + i)
    rows = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)
    total = sum(e.self_cpu_time_total for e in rows)
    top = [{"op": e.key, "self_ms_per_step": round(e.self_cpu_time_total / 3e3, 1),
            "share": round(e.self_cpu_time_total / total, 3), "calls_per_step": e.count // 3}
           for e in rows[:12]]  # fmt: skip
    return {
        "size": size,
        "translator": translator,
        "speed": list(speed.enabled()),
        "images_per_s": round(4 * steps / dt, 3),
        "profiled_ms_per_step": round(total / 3e3, 1),
        "top": top,
    }


def markdown(entries: list[dict]) -> str:
    lines = ["# The default's training step on this CPU (torch.profiler)", "",
             "`python scripts/profile_cpu.py` (batch 4, yolov8p with 5 classes, random "
             "images and boxes; img/s over the timed steps, then the self-CPU time of the top "
             "operators over 3 profiled steps). Entries of one file were measured on one machine.",
             ""]  # fmt: skip
    for e in entries:
        speed = ", ".join(e["speed"]) or "plain"
        what = f"{e['translator']}, {e['size']} px, speed: {speed}"
        head = f"## {e['label']} ({what}; {e['commit']}, {e['threads']} threads)"
        lines += [head, "",
                  f"{e['images_per_s']} img/s; profiled {e['profiled_ms_per_step']} ms per step", "",
                  "| operator | self ms / step | share | calls / step |", "|---|---|---|---|"]  # fmt: skip
        lines += [f"| {t['op']} | {t['self_ms_per_step']} | {100 * t['share']:.1f}% | {t['calls_per_step']} |"
                  for t in e["top"]]  # fmt: skip
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--plain", action="store_true", help="every speed option off")
    ap.add_argument("--translator", default="vat-w4", help="a registry name (vat/models/translator.py)")
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "bench")
    args = ap.parse_args()
    import vat

    code = Path(vat.__file__).resolve().parents[1]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=code, capture_output=True,
                            text=True).stdout.strip() or "unknown"  # fmt: skip
    entry = {"label": args.label, "commit": commit, "threads": torch.get_num_threads()}
    entry |= measure(args.size, args.steps, args.plain, args.translator)
    path = args.out / "profile-cpu.json"
    old = json.loads(path.read_text()) if path.is_file() else []
    entries = [e for e in old if e["label"] != args.label]
    entries.append(entry)
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2) + "\n")
    (args.out / "profile-cpu.md").write_text(markdown(entries))
    print(f"{args.label}: {entry['images_per_s']} img/s -> {args.out / 'profile-cpu.md'}", file=sys.stderr)


if __name__ == "__main__":
    main()
