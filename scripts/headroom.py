"""How much a hand-made contrast stretch gains, and what the VaT objective says about it.

    python scripts/headroom.py                        # this workspace's run (after `dvc repro`)
    python scripts/headroom.py --run .seeds/seed-1    # a seed copy of scripts/seeds.py, added beside it

Writes reports/seeds/headroom.json (one entry per seed measured; a seed measured again is
replaced) and headroom.md (each seed and their mean). Two measurements on a finished run (its
D, restorer outputs, pseudo-labels and VaT):

1. **Headroom.** D's mAP@0.5 on val and test for the restorer's output R(I_LQ), VaT, and two
   hand-made rows without any training: R(I_LQ) and I_LQ with each channel stretched so its 1st
   and 99th percentiles go to 0 and 1 (per image). Nothing is selected on these numbers: they
   say how far D's score on degraded images is from what a global colour transform reaches.
2. **What the objective prefers.** D's loss (ultralytics' box, class, DFL terms, gained, mean
   over the degraded training images) on ``(1 - a) R + a stretch(R)`` for a in 0, 0.5, 1,
   against the kept pseudo-labels (their weights) and against the true boxes. VaT's
   supervised term on degraded images is the first; if it rises with ``a`` while the second
   falls, the pseudo-labels hold T_A at what D already sees.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "reports" / "seeds"
LO, HI = 0.01, 0.99  # the stretch's percentiles
STEPS = (0.0, 0.5, 1.0)
ROWS = ("Baseline D(R(I_LQ))", "VaT D(T_A(I_F))", "D(stretch(R(I_LQ)))", "D(stretch(I_LQ))")


def stretch(x: torch.Tensor, a: float = 1.0) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> ``(1 - a) x + a s``, ``s`` each channel's LO..HI quantiles
    mapped to 0..1 and clipped (a channel of one value stays as it is)."""
    flat = x.flatten(2).float()
    lo = torch.quantile(flat, LO, dim=2)[..., None, None]
    hi = torch.quantile(flat, HI, dim=2)[..., None, None]
    span = hi - lo
    s = torch.where(span > 1e-6, ((x - lo) / span.clamp(min=1e-6)).clamp(0, 1), x)
    return (1 - a) * x + a * s


def stretched_manifest(src: Path, dest: Path, splits: tuple[str, ...]) -> Path:
    """The rows of ``src`` in ``splits`` with their images stretched, written under ``dest``."""
    from vat.data.images import to_tensor
    from vat.data.manifest import Manifest, read_manifest, write_manifest
    from vat.io import load_rgb, save_png

    m = read_manifest(src)
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in m.records:
        if r.split not in splits:
            continue
        x = to_tensor(load_rgb(r.path))[None]
        # rounded half to even, as headroom.json was made (vat.data.images.to_image rounds half up)
        y = (stretch(x)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        path = dest / f"{r.image_id}.png"
        save_png(y, path)
        rows.append(replace(r, path=str(path)))
    write_manifest(Manifest(rows, m.classes), dest / "manifest.parquet")
    return dest / "manifest.parquet"


def headroom(params_file: Path, work: Path) -> dict:
    from vat.config import load_common, load_section
    from vat.eval.scoring import EvaluateParams, evaluate
    from vat.layout import MAIN

    common = load_common(params_file)
    params = replace(load_section(EvaluateParams, "evaluate", params_file), niqe_patch=None)
    splits = ("val", "test")
    images = (
        MAIN.restored,
        (MAIN.translator("train"), MAIN.restored),
        stretched_manifest(MAIN.restored, work / "restored", splits),
        stretched_manifest(MAIN.degraded, work / "degraded", splits),
    )
    rows = dict(zip(ROWS, images, strict=True))
    out: dict = {}
    for split in splits:
        res = evaluate(common, replace(params, split=split), rows, MAIN, work / "eval" / split, device="cpu")
        out[split] = {k: round(100 * v["map50"], 2) for k, v in res["methods"].items()}
    return out


def landscape(task: str) -> dict:
    from vat.data.manifest import read_manifest
    from vat.layout import MAIN
    from vat.train.inputs import load_inputs

    inp = load_inputs(task, 4, "last", MAIN, torch.device("cpu"))
    names = list(inp.detector.names)
    if names != list(inp.classes):  # the true boxes are in the task's classes
        raise SystemExit(
            f"scripts/headroom.py: D's classes ({len(names)}: {', '.join(names[:5])}, ...) are not the "
            f"task's ({', '.join(inp.classes)}); the loss against the true boxes needs them equal"
        )
    truth = {r.image_id: r for r in read_manifest(MAIN.clean).records}
    sums = {a: {"pseudo": np.zeros(3), "truth": np.zeros(3), "truth_unlabelled": np.zeros(3)} for a in STEPS}
    n = m = 0
    for s in inp.data.degraded:
        x = s.restored[None].float() / 255
        h, w = x.shape[-2:]
        rec = truth[s.image_id]
        sx, sy = w / rec.width, h / rec.height
        tb = torch.tensor([[b.x1 * sx, b.y1 * sy, b.x2 * sx, b.y2 * sy] for b in rec.boxes]).reshape(-1, 4)
        tc = torch.tensor([b.cls for b in rec.boxes], dtype=torch.long)
        pseudo = [{"boxes": s.boxes, "classes": s.classes, "weights": s.weights}]
        labelled = len(s.boxes) > 0  # the mix term leaves the others out
        n, m = n + labelled, m + (not labelled)
        with torch.no_grad():
            for a in STEPS:
                xa = stretch(x, a)
                lt = inp.detector.loss(xa, [{"boxes": tb, "classes": tc}])[1].numpy()
                if labelled:
                    sums[a]["pseudo"] += inp.detector.loss(xa, pseudo)[1].numpy()
                    sums[a]["truth"] += lt
                else:
                    sums[a]["truth_unlabelled"] += lt
    count = {"pseudo": n, "truth": n, "truth_unlabelled": m}
    return {
        "images": n,
        "unlabelled_images": m,
        "terms": ["box", "cls", "dfl"],
        "loss": {
            str(a): {k: [round(float(v), 3) for v in t / max(count[k], 1)] for k, t in d.items()}
            for a, d in sums.items()
        },
    }


def _cells(values: list[float], fmt: str = ".2f") -> str:
    """Per-seed values and, with several, their mean: ``a / b / c (mean m)``."""
    text = " / ".join(f"{v:{fmt}}" for v in values)
    return text if len(values) == 1 else f"{text} (mean {sum(values) / len(values):{fmt}})"


def markdown(runs: dict[str, dict]) -> str:
    """``runs``: seed -> one run's result (:func:`headroom` and :func:`landscape`)."""
    seeds = sorted(runs, key=int)
    rs = [runs[k] for k in seeds]
    lines = ["# Headroom: a hand-made stretch against the restorer and VaT", "",
             f"`python scripts/headroom.py` (seeds {', '.join(seeds)}; each cell per seed, then the mean). "
             "mAP@0.5, points; the stretch maps each channel's 1st..99th percentile to 0..1, per image, "
             "no training. Nothing is selected on these numbers.", "",
             "| row | val | test |", "|---|---|---|"]  # fmt: skip
    for k in ROWS:
        val, test = ([r["headroom"][split][k] for r in rs] for split in ("val", "test"))
        lines.append(f"| {k} | {_cells(val)} | {_cells(test)} |")
    n, m = ([r["landscape"][k] for r in rs] for k in ("images", "unlabelled_images"))
    lines += ["", "D's loss on R(I_LQ) blended with its stretch, `(1 - a) R + a stretch(R)`, over the "
              f"degraded training images: those with a kept pseudo-box (what the mix term trains on; "
              f"{' / '.join(map(str, n))} per seed) and those without (left out of it; "
              f"{' / '.join(map(str, m))}); gained box / cls / DFL terms, each the mean over the seeds "
              "of the per-image means:", "",
              "| a | with a box: against the pseudo-labels | with a box: against the truth "
              "| without: against the truth |", "|---|---|---|---|"]  # fmt: skip
    for a in rs[0]["landscape"]["loss"]:
        cells = []
        for key in ("pseudo", "truth", "truth_unlabelled"):
            terms = np.mean([r["landscape"]["loss"][a][key] for r in rs], axis=0)
            cells.append(" / ".join(f"{v:.3f}" for v in terms))
        lines.append(f"| {a} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import argparse
    import json
    import os
    import tempfile

    from vat.config import load_common
    from vat.io import write_json, write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT, help="the finished run's workspace (default: this one)")
    args = ap.parse_args()
    run = args.run.resolve()
    common = load_common(run / "params.yaml")
    if common.task == "classify":
        raise SystemExit("scripts/headroom.py: detection runs only (common.task is classify)")
    here = Path.cwd()
    os.chdir(run)  # the layout's paths are relative to the run's workspace
    try:
        with tempfile.TemporaryDirectory(prefix="vat-headroom-") as tmp:
            res = {"headroom": headroom(run / "params.yaml", Path(tmp)), "landscape": landscape(common.task)}
    finally:
        os.chdir(here)
    path = OUT / "headroom.json"
    runs = json.loads(path.read_text())["seeds"] if path.is_file() else {}
    runs[str(common.seed)] = res
    write_json({"seeds": runs}, path)
    write_text(markdown(runs), OUT / "headroom.md")
    print(markdown(runs))


if __name__ == "__main__":
    main()
