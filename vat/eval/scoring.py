"""Scoring methods on a labelled test split: one row per method, one table (the ``evaluate`` stage).

Rows: D on clean images (the upper bound), Vanilla D(I_LQ), the restorer baseline
D(R(I_LQ)) (the paper's Tables 1 and 3 rows "YOLO" and "R + YOLO"), and VaT
D(T_A(G(I_R, I_LQ))) with the translator the train stage selected on the val split and
with its last epoch's (the paper's row "R + VaT + YOLO"), the CycleGAN-style unpaired
baseline, every ablation row, each translator on the same restorations, and for each
restorer of the study its baseline and its VaT (Fig. 8 left). Detection: per-class AP@0.5
and mAP with the interpolation named in params; classification: accuracy and one-vs-rest
ROC AUC per class (and their mean), with the ROC curves of Vanilla, Baseline and VaT drawn
in roc.png (the paper's Fig. 6). Ground truth is used here and only here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from vat.config import CommonParams
from vat.data.manifest import Manifest, read_manifest
from vat.errors import DataError
from vat.eval.evaluation import scoring_model
from vat.eval.summary import write_metrics
from vat.io import ImageCache, atomic_dirs, load_rgb, save_png, write_text
from vat.layout import MANIFEST, TRANSLATOR, Layout

Method = Path | tuple[Path, Path]  # a manifest D sees, or (translator, restored manifest)
STUDY_ROW = "Study R={}: "  # + "Baseline D(R(I_LQ))" or "VaT D(T_A(I_F))"
UNPAIRED_ROW = "Unpaired CycleGAN-style D(T_A(I_F))"
ABLATION_ROW = "Ablation "  # + the row name of params `ablate`


@dataclass(frozen=True)
class EvaluateParams:
    """``evaluate``: where and how methods are scored."""

    split: Literal["train", "val", "test"]  # the split scored (test; val only for debugging)
    interpolation: Literal["voc07_11point", "voc_all_point", "coco_101point"]  # AP interpolation
    niqe_patch: int | None  # NIQE block side, px (model fitted on the clean train images); null: no NIQE

    def __post_init__(self) -> None:
        if self.niqe_patch is not None and self.niqe_patch < 8:
            raise ValueError("evaluate.niqe_patch must be >= 8 px or null")


def has_clean_pairs(layout: Layout, split: str) -> bool:
    """Whether the split's degraded images have clean pictures to compare with (synthetic
    degradations do; photographs given degraded, ``source: folder``, do not)."""
    clean = {r.image_id: r.path for r in read_manifest(layout.clean).split(split)}
    low = read_manifest(layout.degraded).split(split)
    return any(r.image_id in clean and clean[r.image_id] != r.path for r in low)


def methods(restorer_arch: str, layout: Layout, extras: bool = True, clean: bool = True) -> dict[str, Method]:
    """Method name -> the images D sees: a manifest, or (translator file, restored manifest)
    for a translator run on the degraded images and their restorations. Translator rows
    appear where their stage has written one: unpaired, VaT (train), and with ``extras`` each
    ablation row and each restorer of the study (its baseline too). ``clean``: the upper
    bound D(I_HQ) (not on a test set without clean pairs)."""
    restored = layout.restored
    rows: dict[str, Method] = {"Clean D(I_HQ)": layout.clean} if clean else {}
    rows["Vanilla D(I_LQ)"] = layout.degraded
    rows[f"Baseline D(R(I_LQ)), R={restorer_arch}"] = restored
    if layout.translator("unpaired").is_file():
        rows[UNPAIRED_ROW] = (layout.translator("unpaired"), restored)
    for name, last in (("VaT D(T_A(I_F)), val-selected", False), ("VaT, last epoch", True)):
        if layout.translator("train", last).is_file():
            rows[name] = (layout.translator("train", last), restored)
    if not extras:
        return rows
    for path in sorted(layout.out("ablate").glob(f"*/{TRANSLATOR}")):
        rows[ABLATION_ROW + path.parent.name] = (path, restored)
    for path in sorted(layout.out("study").glob(f"*/train/{TRANSLATOR}")):
        r, study_restored = path.parent.parent, path.parent.parent / "restore" / MANIFEST
        rows[STUDY_ROW.format(r.name) + "Baseline D(R(I_LQ))"] = study_restored
        rows[STUDY_ROW.format(r.name) + "VaT D(T_A(I_F))"] = (path, study_restored)
    return rows


@dataclass
class _Scoring:
    """What scoring one split needs: D, the truth of the split, NIQE's model, the options."""

    task: str
    model: object  # the frozen D
    truth: Manifest  # the manifest holding the ground truth (its classes name D's)
    gt: dict  # image id -> truth record of the scored split
    params: EvaluateParams
    dev: torch.device
    niqe: object | None  # vat.eval.niqe.NiqeModel, or None
    degraded: Path  # the degraded manifest translators start from
    clean_pairs: bool  # the truth holds clean pictures (PSNR / SSIM) or is the degraded set itself
    load: Callable  # reads the split's images: an ImageCache, each method reads the same ones
    tick: _Ticker | None = None  # the progress bar over methods x images


class _Ticker:
    """One progress bar over every method's images: on large images (a real set at 1280 px) one
    method takes minutes, so the bar moves per image (or per batch), not per method."""

    def __init__(self, track, total: int) -> None:
        self._steps, self.done = iter(track(range(total), "evaluate", total)), 0

    def __call__(self, n: int = 1) -> None:
        for _ in range(n):
            next(self._steps, None)
        self.done += n

    def upto(self, n: int) -> None:
        self(max(0, n - self.done))

    def finish(self) -> None:
        for _ in self._steps:  # the bar's last step, and its display closed
            pass


# Nine arguments: what is scored, where the truth is, where to write, and four keyword options.
def evaluate(
    common: CommonParams,
    params: EvaluateParams,
    inputs: dict[str, Method],
    layout: Layout,
    reports: Path,
    *,
    device: str = "auto",
    track=None,
    niqe_from: Path | None = None,
    clean_pairs: bool = True,
) -> dict:
    """Score every method of ``inputs`` (:func:`methods`) on ``layout``'s clean manifest (the
    truth) and degraded images, and write ``reports`` (metrics.json, table.md, grid.png or
    roc.png). ``niqe_from``: the manifest whose clean train images fit NIQE (default: the
    truth's). ``clean_pairs=False`` (a real test set: the truth holds the degraded images
    themselves): no PSNR / SSIM."""
    track = track or (lambda items, *_: items)
    ctx, niqe_note = _scoring(common, params, layout, device, niqe_from, clean_pairs)
    ctx.tick = _Ticker(track, len(inputs) * len(ctx.gt))
    rows, scored = {}, {}  # scored: (translator weights, restored manifest) -> its row
    for k, (name, spec) in enumerate(inputs.items()):
        if not isinstance(spec, tuple):
            rows[name] = _score_manifest(ctx, spec)
        else:  # the same weights on the same images score the same (one epoch: last = val-selected)
            digest, named = _translator_file(spec[0])
            key = (digest, spec[1])
            if key not in scored:
                scored[key] = _score_translator(ctx, spec)
            rows[name] = scored[key] | named
        ctx.tick.upto((k + 1) * len(ctx.gt))
    ctx.tick.finish()
    result = {"split": params.split, "images": len(ctx.gt), "task": common.task, "methods": rows}
    if ctx.niqe is not None:
        fitted_on = f"the {niqe_from or layout.clean} train split (clean)"
        result["niqe"] = {"patch": ctx.niqe.patch, "pristine_blocks": ctx.niqe.blocks, "fitted_on": fitted_on}
    elif niqe_note:
        result["niqe"] = {"skipped": niqe_note}
    result["metric"] = "accuracy" if common.task == "classify" else f"mAP@0.5 ({params.interpolation})"
    # merged, not swapped whole: a real set's reports folder holds its degrade and restore reports too
    with atomic_dirs(merge=[reports]) as (tmp,):
        if common.task == "classify":
            _roc(rows, ctx.truth.classes, params.split, tmp / "roc.png")
        write_metrics("evaluate", result, tmp)
        write_text(_table(result, ctx.truth.classes), tmp / "table.md")
        if common.task != "classify":
            _grid(ctx, inputs, tmp / "grid.png", last="clean, true boxes" if clean_pairs else "true boxes")
    return result


def _scoring(common, params, layout: Layout, device, niqe_from, clean_pairs) -> tuple[_Scoring, str | None]:
    """D, the split's truth and NIQE's model (or why there is none)."""
    from vat.data.images import resolve_device

    dev = resolve_device(device)
    truth = read_manifest(layout.clean)
    gt = {r.image_id: r for r in truth.split(params.split)}
    if not gt:
        raise DataError(f"{layout.clean}: split {params.split!r} is empty")
    model = scoring_model(common.task, layout.models, truth.classes, dev)
    if common.task == "classify":
        niqe, note = None, "classification crops"
    else:
        niqe, note = _fit_niqe(truth if niqe_from is None else read_manifest(niqe_from), params)
    load = ImageCache()  # every method reads the same images: decoded once
    ctx = _Scoring(common.task, model, truth, gt, params, dev, niqe, layout.degraded, clean_pairs, load)
    return ctx, note


def _score_manifest(ctx: _Scoring, path: Path) -> dict:
    """D on the images of manifest ``path`` (every scored image must be there)."""
    m = read_manifest(path)
    recs = [r for r in m.records if r.image_id in ctx.gt]
    if len(recs) != len(ctx.gt):
        raise DataError(f"{path}: has {len(recs)} of the {len(ctx.gt)} {ctx.params.split} images")
    row = _score(ctx, recs, [ctx.gt[r.image_id] for r in recs])
    if ctx.niqe is not None:
        row["niqe"] = _niqe_mean(ctx.niqe, (ctx.load(r.path) for r in recs))
    return row


ROC_METHODS = ("Vanilla", "Baseline", "VaT D(")  # row-name prefixes drawn in roc.png


def _roc(rows: dict, classes: list[str], split: str, path: Path) -> None:
    """roc.png from the rows' ROC curves (classification); the curves leave the rows, which
    keep only each class's AUC for metrics.json."""
    curves = {}
    for name, row in rows.items():
        roc = row.pop("_roc")
        if any(name.startswith(p) for p in ROC_METHODS):
            curves[name.split(" D(")[0].split(",")[0]] = {classes[k]: v for k, v in roc.items()}
    if curves:
        from vat.eval.viz import roc_plot

        roc_plot(path, curves, f"one-vs-rest ROC per class, {split} split")


GRID_METHODS = ("Vanilla", "Baseline", "Unpaired", "VaT D(")  # row-name prefixes shown in grid.png


@torch.no_grad()
def _grid(ctx: _Scoring, inputs: dict, path: Path, n: int = 4, last: str = "clean, true boxes") -> None:
    """The first ``n`` scored images (by id), one row each: D's boxes (score >= 0.25) on what each
    method shows D (Vanilla, Baseline, Unpaired, VaT), then the clean image with its true boxes."""
    from vat.data.images import to_image, to_tensor
    from vat.eval.viz import draw_boxes, draw_detections, grid, label_strip
    from vat.models.translate import translate_pairs

    gt, split, classes, dev = ctx.gt, ctx.params.split, ctx.truth.classes, ctx.dev
    ids = sorted(gt)[:n]
    columns = []  # (title, {image id: uint8 image})
    for prefix in GRID_METHODS:
        name = next((k for k in inputs if k.startswith(prefix)), None)
        if name is None:
            continue
        spec = inputs[name]
        if isinstance(spec, tuple):
            from vat.eval.evaluation import translation_triples

            translator, _ = _load_translator(spec[0], dev)
            triples = translation_triples({i: gt[i] for i in ids}, ctx.degraded, spec[1], split)
            images = {
                p[0].image_id: to_image(res["out"][k])
                for ps, res in translate_pairs(translator, triples, dev)
                for k, p in enumerate(ps)
            }
        else:
            recs = {r.image_id: r for r in read_manifest(spec).records if r.image_id in ids}
            images = {i: ctx.load(recs[i].path) for i in ids}
        columns.append((name.split(" D(")[0].split(",")[0], images))
    tiles = []
    for i in ids:
        for title, images in columns:
            det = ctx.model.predict(to_tensor(images[i])[None].to(dev), conf=0.25)[0]
            tiles.append(label_strip(draw_detections(images[i], det, classes), title))
        tiles.append(label_strip(draw_boxes(ctx.load(gt[i].path), gt[i].boxes, classes), last))
    if tiles:
        save_png(grid(tiles, ncols=len(columns) + 1), path)  # images of other sizes are resized to the first


def _score(ctx: _Scoring, recs, truth_recs) -> dict:
    """D's score on ``recs``' images against ``truth_recs`` (same order)."""
    if ctx.task == "classify":
        images = np.stack([ctx.load(r.path) for r in recs])  # (N, H, W, 3)
        x = torch.as_tensor(images).permute(0, 3, 1, 2).float().div(255).to(ctx.dev)
        with torch.no_grad():
            probs = ctx.model.predict(x).probs.cpu().numpy()
        return _classification_scores(probs, np.array([t.label for t in truth_recs]), ctx.truth.classes)
    from vat.eval.evaluation import predict_records
    from vat.eval.metrics import evaluate_detections

    dets = predict_records(ctx.model, recs, device=ctx.dev, track=_ticking(ctx.tick), load=ctx.load)
    truth = [t.boxes for t in truth_recs]
    r = evaluate_detections(truth, dets, ctx.truth.classes, 0.5, ctx.params.interpolation)
    return {"map50": round(r.map, 4), "ap50": {k: round(v, 4) for k, v in r.ap.items()}, "n_gt": r.n_gt}


def _ticking(tick: _Ticker | None):
    """A ``track`` for run_records that advances ``tick`` by each batch's images."""

    def track(groups, *_):
        for group in groups:
            yield group
            if tick is not None:
                tick(len(group))

    return track


def _classification_scores(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, one-vs-rest ROC AUC per class (None where the split lacks the class or has
    nothing else) and their mean; ``_roc`` holds the curves for the plot."""
    from vat.eval.metrics import roc_per_class

    roc = roc_per_class(probs, labels)
    auc = {classes[k]: (round(v[2], 4) if v[2] == v[2] else None) for k, v in roc.items()}
    known = [v for v in auc.values() if v is not None]
    return {"accuracy": round(float((probs.argmax(1) == labels).mean()), 4), "auc": auc,
            "mean_auc": round(float(np.mean(known)), 4) if known else None, "_roc": roc}  # fmt: skip


def _fit_niqe(truth: Manifest, params: EvaluateParams):
    """(NIQE's pristine model fitted on the clean train images that hold two blocks at both
    scales, None); or (None, why not) when NIQE is off or no image is large enough, since
    an optional score must not stop the evaluation."""
    from vat.eval.niqe import fit_niqe, fits

    if params.niqe_patch is None:
        return None, "evaluate.niqe_patch is null"
    images = (load_rgb(r.path) for r in truth.split("train") if r.domain != "degraded")
    try:
        return fit_niqe((im for im in images if fits(im, params.niqe_patch)), params.niqe_patch), None
    except ValueError as e:
        side = 2 * params.niqe_patch
        return None, f"{e}: no clean train image of at least {side} px; lower evaluate.niqe_patch"


def _niqe_mean(model, images) -> float | None:
    """Mean NIQE over the images large enough for it (None if none is)."""
    scores = [model.score(im) for im in images if model.fits(im)]
    return round(float(np.mean(scores)), 4) if scores else None


def _load_translator(path: Path, dev: torch.device):
    """(translator, meta) from ``path``, laid out as training lays it out on ``dev``
    (:meth:`vat.train.speed.Speed.resolve`: channels_last, 1.25x the CPU's inference)."""
    from vat.models.translator import load_translator
    from vat.train.speed import Speed

    translator, meta = load_translator(path, dev)
    return Speed().resolve(dev).prepare_translator(translator), meta


def _score_translator(ctx: _Scoring, spec: tuple[Path, Path]) -> dict:
    """D on T_A(G(I_R, I_LQ)) for the scored split's degraded images and their restorations."""
    from vat.data.images import to_image
    from vat.eval.evaluation import translated_classifications, translated_detections, translation_triples
    from vat.eval.metrics import GateStats, evaluate_detections, psnr, ssim

    translator_path, restored_path = spec
    model, dev, niqe, clean_pairs = ctx.model, ctx.dev, ctx.niqe, ctx.clean_pairs
    translator, _ = _load_translator(translator_path, dev)
    triples = translation_triples(ctx.gt, ctx.degraded, restored_path, ctx.params.split)
    if ctx.task == "classify":
        probs, labels = translated_classifications(model, translator, triples, dev)
        out = _classification_scores(probs, labels, ctx.truth.classes)
        return out
    keys = ("psnr", "ssim", "gate_mean") if clean_pairs else ("gate_mean",)
    quality: dict[str, list[float]] = {k: [] for k in keys}
    gate = GateStats()  # with clean pairs: where the gate looks (Fig. 7)

    def measure(triple, res, i) -> None:  # image quality of what D sees, against the clean picture
        out_img = to_image(res["out"][i].cpu())
        if clean_pairs:
            clean_img = ctx.load(triple[2].path)
            quality["psnr"].append(min(psnr(out_img, clean_img, data_range=255), 100.0))
            quality["ssim"].append(ssim(out_img, clean_img, data_range=255))
            h, w = clean_img.shape[:2]
            gate.add(res["gate"][i, 0, :h, :w].float().cpu().numpy(), to_image(res["lq"][i].cpu()),
                     to_image(res["restored"][i].cpu()), clean_img)  # fmt: skip
        quality["gate_mean"].append(float(res["gate"][i].mean()))
        if ctx.tick is not None:
            ctx.tick()
        if niqe is not None and niqe.fits(out_img):
            quality.setdefault("niqe", []).append(niqe.score(out_img))

    dets, truth_boxes = translated_detections(model, translator, triples, dev, each=measure, load=ctx.load)
    r = evaluate_detections(truth_boxes, dets, ctx.truth.classes, 0.5, ctx.params.interpolation)
    out = {"map50": round(r.map, 4), "ap50": {k: round(v, 4) for k, v in r.ap.items()}, "n_gt": r.n_gt}
    out |= {k: round(float(np.mean(v)), 4) for k, v in quality.items()}
    if clean_pairs:
        out |= gate.result()
    return out


def _translator_file(path: Path) -> tuple[str, dict]:
    """From one read of a translator file: a digest of its inference weights (G, T_A; not of
    its meta), and the columns naming the row's translator (its file, the epoch it was saved at)."""
    import hashlib

    from vat.models.checkpoints import read_checkpoint
    from vat.models.translator import inference_state

    ckpt = read_checkpoint(path)
    meta = (ckpt.get("meta") if isinstance(ckpt, dict) else None) or {}
    named = {"translator": str(path), "epoch": meta.get("epoch")}
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        return f"file {path}", named  # not a translator: loading it says why
    h = hashlib.sha256(repr(ckpt.get("config")).encode())
    for k, v in sorted(inference_state(state).items()):
        h.update(k.encode() + v.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest(), named


def _table(result: dict, classes: list[str]) -> str:
    lines = [f"# {result['metric']} on the {result['split']} split ({result['images']} images)", ""]
    if result["task"] == "classify":
        lines += ["| method | accuracy | mean AUC | " + " | ".join(f"AUC {c}" for c in classes) + " |",
                  "|---" * (len(classes) + 3) + "|"]  # fmt: skip
        for n, v in result["methods"].items():
            aucs = " | ".join("-" if v["auc"][c] is None else f"{v['auc'][c]:.4f}" for c in classes)
            mean = "-" if v["mean_auc"] is None else f"{v['mean_auc']:.4f}"
            lines.append(f"| {n} | {v['accuracy']:.4f} | {mean} | {aucs} |")
    else:
        lines += ["| method | mAP | " + " | ".join(classes) + " |", "|---" * (len(classes) + 2) + "|"]
        for n, v in result["methods"].items():
            aps = " | ".join(f"{v['ap50'][c]:.4f}" if v["ap50"][c] == v["ap50"][c] else "-" for c in classes)
            lines.append(f"| {n} | {v['map50']:.4f} | {aps} |")
    return "\n".join(lines) + "\n"
