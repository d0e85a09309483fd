"""How much a hand-made contrast stretch gains, and what the VaT objective says about it.

    python scripts/headroom.py        # in a workspace after `dvc repro` -> reports/seeds/headroom.{json,md}

Two measurements on the workspace's own run (its D, restorer outputs, pseudo-labels, VaT):

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
    from vat.data.manifest import Manifest, read_manifest, write_manifest
    from vat.io import load_rgb, save_png

    m = read_manifest(src)
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for r in m.records:
        if r.split not in splits:
            continue
        x = torch.from_numpy(load_rgb(r.path).copy()).permute(2, 0, 1)[None].float() / 255
        y = (stretch(x)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        path = dest / f"{r.image_id}.png"
        save_png(y, path)
        rows.append(replace(r, path=str(path)))
    write_manifest(Manifest(rows, m.classes), dest / "manifest.parquet")
    return dest / "manifest.parquet"


def headroom(work: Path) -> dict:
    from vat.config import load_common, load_section
    from vat.eval.scoring import EvaluateParams, evaluate
    from vat.layout import MAIN

    common = load_common(ROOT / "params.yaml")
    params = replace(load_section(EvaluateParams, "evaluate", ROOT / "params.yaml"), niqe_patch=None)
    splits = ("val", "test")
    rows = {
        "Baseline D(R(I_LQ))": MAIN.restored,
        "VaT D(T_A(I_F))": (MAIN.translator("train"), MAIN.restored),
        "D(stretch(R(I_LQ)))": stretched_manifest(MAIN.restored, work / "restored", splits),
        "D(stretch(I_LQ))": stretched_manifest(MAIN.degraded, work / "degraded", splits),
    }
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


def markdown(res: dict) -> str:
    h = res["headroom"]
    lines = ["# Headroom: a hand-made stretch against the restorer and VaT", "",
             "`python scripts/headroom.py` on this workspace's run (seed "
             f"{res['seed']}). mAP@0.5, points; the stretch maps each channel's 1st..99th "
             "percentile to 0..1, per image, no training. Nothing is selected on these numbers.", "",
             "| row | val | test |", "|---|---|---|"]  # fmt: skip
    for k in h["val"]:
        lines.append(f"| {k} | {h['val'][k]:.2f} | {h['test'][k]:.2f} |")
    ls = res["landscape"]
    lines += ["", "D's loss on R(I_LQ) blended with its stretch, `(1 - a) R + a stretch(R)`, over the "
              f"degraded training images: the {ls['images']} with a kept pseudo-box (what the mix term "
              f"trains on) and the {ls['unlabelled_images']} without (left out of it); mean gained box / "
              "cls / DFL terms:", "",
              "| a | with a box: against the pseudo-labels | with a box: against the truth "
              "| without: against the truth |", "|---|---|---|---|"]  # fmt: skip
    for a, d in ls["loss"].items():
        p, t, u = (" / ".join(f"{v:.3f}" for v in d[k]) for k in ("pseudo", "truth", "truth_unlabelled"))
        lines.append(f"| {a} | {p} | {t} | {u} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    import tempfile

    from vat.config import load_common
    from vat.io import write_json, write_text

    common = load_common(ROOT / "params.yaml")
    if common.task == "classify":
        raise SystemExit("scripts/headroom.py: detection runs only (common.task is classify)")
    with tempfile.TemporaryDirectory(prefix="vat-headroom-") as tmp:
        res = {"seed": common.seed, "headroom": headroom(Path(tmp)), "landscape": landscape(common.task)}
    write_json(res, OUT / "headroom.json")
    write_text(markdown(res), OUT / "headroom.md")
    print(markdown(res))


if __name__ == "__main__":
    main()
