"""A training's products: the translators it writes, its val score, its sample pictures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vat.io import save_png
from vat.layout import LAST, TRANSLATOR


def build_translator(params, seed: int, speed, dev: torch.device, use_cycle: bool | None = None):
    """The training translator of ``params`` (with T_B unless the cycle term is off), seeded
    by ``seed``, on ``dev``."""
    from vat.models.translator import create_translator

    return create_translator(
        params.translator, seed=seed, with_t_b=params.use_cycle if use_cycle is None else use_cycle,
        use_gate=params.use_gate, identity_init=params.identity_init, gate_init=params.gate_init,
        checkpoint=bool(speed.checkpoint),
    ).to(dev)  # fmt: skip


def optimizer_groups(model, lr: float, gate_lr: float) -> list[dict]:
    """The translator's parameters for its optimiser: G's at ``lr * gate_lr``, the rest at ``lr``
    (one group when G is absent or ``gate_lr`` is 1, the optimiser of earlier runs)."""
    gate = list(model.gate.parameters()) if model.gate is not None else []
    ids = {id(p) for p in gate}
    rest = [p for p in model.parameters() if id(p) not in ids]
    if not gate or gate_lr == 1:
        return [{"params": rest + gate, "lr": lr}]
    return [{"params": rest, "lr": lr}, {"params": gate, "lr": lr * gate_lr}]


def inference_translator(params):
    """An empty inference translator (G + T_A) of ``params``' architecture, to load weights into."""
    from vat.models.translator import create_translator

    return create_translator(params.translator, with_t_b=False, use_gate=params.use_gate,
                             identity_init=params.identity_init, gate_init=params.gate_init)  # fmt: skip


def snapshot(model) -> dict:
    """A CPU copy of the inference weights (G + T_A) of a training translator."""
    from vat.models.translator import inference_state

    return {k: v.detach().cpu().clone() for k, v in inference_state(model.state_dict()).items()}


def write_translators(out: Path, inference, last_state: dict, best: dict | None, best_state: dict | None,
                      base: dict, select: str, epochs: int) -> dict:  # fmt: skip
    """``out/last.pt`` and ``out/translator.pt`` (the val-selected one, or the last) into the
    (temporary) folder ``out``; returns the selected one's meta."""
    from vat.models.translator import save_translator

    chosen = "last" if select == "last" or best_state is None else "val"
    meta = base | {"epoch": epochs, "selected": "last"}
    inference.load_state_dict(last_state)
    save_translator(inference, out / LAST, meta)
    if chosen == "val":
        inference.load_state_dict(best_state)
        meta = base | {"epoch": best["epoch"], "selected": "val"}
        meta |= {k: v for k, v in best.items() if k.startswith("val_")}  # val_map50 or val_accuracy
    save_translator(inference, out / TRANSLATOR, meta)
    return meta


def validate(model, detector, val, classes, dev, bf16: bool) -> float:
    """The val score of ``model`` behind ``detector``: mAP@0.5 (VOC all-point) or accuracy."""
    from vat.eval.evaluation import translated_classifications, translated_detections
    from vat.eval.metrics import evaluate_detections
    from vat.models.classifier import FrozenClassifier

    if isinstance(detector, FrozenClassifier):
        probs, labels = translated_classifications(detector, model, val, dev, bf16)
        return round(float((probs.argmax(1) == labels).mean()), 5)
    dets, truth = translated_detections(detector, model, val, dev, bf16)
    return round(evaluate_detections(truth, dets, classes, iou=0.5, interpolation="voc_all_point").map, 5)


def samples(model, detector, pairs, classes, dev, path: Path, title: str = "VaT") -> None:
    """One row per val image: degraded, restored, the gate map w and ``model``'s output with
    D's boxes (or D's class), labelled with ``title``."""
    from vat.data.images import to_image
    from vat.eval.viz import draw_detections, grid, label_strip
    from vat.models.classifier import FrozenClassifier
    from vat.models.translate import translate_pairs

    tiles = []
    classify = isinstance(detector, FrozenClassifier)
    for ps, res in translate_pairs(model, pairs, dev):
        if classify:
            labels = detector.predict(res["out"]).labels.tolist()
        else:
            dets = detector.predict(res["out"], conf=0.25)
        for i in range(len(ps)):
            gate = (res["gate"][i, 0].cpu().numpy() * 255).round().astype(np.uint8)
            out = to_image(res["out"][i].cpu())
            tiles.append([
                label_strip(to_image(res["lq"][i].cpu()), "degraded I_LQ"),
                label_strip(to_image(res["restored"][i].cpu()), "restored I_R"),
                label_strip(np.repeat(gate[..., None], 3, 2), "gate w (white: I_LQ)"),
                label_strip(out, f"{title}: D says {classes[labels[i]]}") if classify else
                label_strip(draw_detections(out, dets[i], classes), f"{title} T_A(I_F), D's boxes"),
            ])  # fmt: skip
    if tiles:  # images of other sizes are letterboxed into the first one's cell
        save_png(grid([t for row in tiles for t in row], ncols=4), path)
