"""The run report: paper-shaped tables from the stages' metrics (the ``report`` stage's library).

Tables shaped like the paper's Table 1 (detection, per class, mAP@0.5), Table 2 (image
quality), Table 4 (ablations, both tasks) and Task 2's accuracy and ROC (Fig. 6), with the
paper's own numbers beside ours and marked as *not comparable* where the setting differs
(the embedded default is not VOCh or RTTS). Rows whose stage does not exist yet are listed
as such, never left out silently. The ordering of the methods is stated from the numbers,
next to the paper's.

The report is a list of blocks: ("h", level, text), ("p", text), ("table", header, rows),
("img", src, caption), ("plot", png name, series, xlabel, ylabel, title, xlog, caption);
:mod:`vat.eval.render` writes them as Markdown and HTML.
"""

from __future__ import annotations

import json
from pathlib import Path

from vat.eval import noise
from vat.eval.paper import HAZE_CLASSES, PAPER_TABLE1

# The report's method labels and the evaluate row names they stand for (by prefix).
METHOD_PREFIX = {
    "Clean (upper bound)": "Clean",
    "Vanilla": "Vanilla",
    "Baseline (R + D)": "Baseline",
    "CycleGAN-style unpaired": "Unpaired",
    "VaT": "VaT D(",
    "VaT, last epoch": "VaT, last",
}


def load_metrics(reports: Path, stage: str) -> dict | None:
    p = reports / stage / "metrics.json"
    return json.loads(p.read_text()) if p.is_file() else None


def pct(x: float | None) -> str:
    return "-" if x is None or x != x else f"{100 * x:.2f}"


def ours_row(methods: dict, prefix: str) -> dict | None:
    return next((v for k, v in methods.items() if k.startswith(prefix)), None)


def ours_rows(methods: dict, labels: tuple[str, ...] = tuple(METHOD_PREFIX)) -> dict[str, dict | None]:
    """Label -> the evaluate row of that method (None where it was not run), in ``labels`` order."""
    return {label: ours_row(methods, METHOD_PREFIX[label]) for label in labels}


def blocks(reports: Path, profile: str | None = None) -> list[tuple]:
    """The report as blocks: ("h", level, text), ("p", text), ("table", header, rows),
    ("img", src, caption), ("plot", png name, series, xlabel, ylabel, title, xlog, caption);
    ``profile``: the params profile the run came from, named at the top."""
    names = ("evaluate", "train", "train_restorer", "pseudolabel", "train_detector", "prepare")
    ev, tr, rs, pl, det, prep = (load_metrics(reports, n) for n in names)
    out: list[tuple] = [("h", 1, "VaT run report")]
    if ev is None:
        return out + [("p", "reports/evaluate/metrics.json is missing: run `vat evaluate` first.")]
    out += [("p", noise.header(profile, prep, ev, noise.of_run(reports))), ("p", setting(ev, prep, rs, det))]
    from vat.eval.weak_links import block as weak_links

    out += weak_links(reports)

    methods = ev["methods"]
    ours = ours_rows(methods)
    out += _table1(reports, methods, ours)
    out += _table2(ev, rs, ours)
    vat = ours["VaT"]
    from vat.eval.report_sections import ablations, classification, real_sets, restorer_study

    out += real_sets(reports)
    out += ablations(reports, methods, vat, tr)
    out += restorer_study(reports, methods, ours["Baseline (R + D)"], vat, rs)
    out += classification(reports)
    out += _facts(reports, det, pl, tr, vat)
    return out


def data_phrase(prep: dict | None) -> str:
    """What the run's images were, from prepare's metrics."""
    if not prep:
        return "data of an unknown source"
    source, s = prep.get("source", "?"), prep.get("splits", {})
    n = {k: s.get(k, {}).get("images", 0) for k in ("train", "val", "test")}
    if source == "embedded":
        return f"embedded road scenes ({n['train']} train, {n['val']} val, {n['test']} test)"
    if "train_photographs" in prep:
        t = prep["train_photographs"]
        return (f"your photographs: {t['degraded']} degraded and {t['clean']} clean training images without "
                f"labels, {n['val']} val and {n['test']} test labelled degraded ones")  # fmt: skip
    return f"the {source} dataset ({n['train']} train, {n['val']} val, {n['test']} test images)"


def model_phrase(what: str, m: dict | None, key: str) -> str:
    """R or D: which, and whether given or trained here."""
    if not m:
        return f"{what}: unknown"
    name = m.get(key, "?")
    if m.get("trained"):
        return f"{what}: {name}, trained here"
    return f"{what}: {name}, given (used as is" + (f": `{m['weights']}`)" if m.get("weights") else ")")


def class_map_phrase(det: dict | None) -> str:
    """Which of D's classes score as which task class."""
    cm = (det or {}).get("class_map")
    if not cm:
        return ""
    moved = [f"{d} -> {t}" for d, t in cm["mapped"].items() if d != t]
    text = f"D has {cm['d_classes']} classes; {len(cm['mapped'])} score as task classes"
    text += f" ({', '.join(moved)})" if moved else ""
    return text + (
        f", {cm['dropped']} are dropped (not scored; pseudo-labels keep them)" if cm["dropped"] else ""
    )


def setting(ev: dict, prep: dict | None, rs: dict | None, det: dict | None) -> str:
    """The run in one paragraph, from its own metrics: profile, data, R, D, what is scored."""
    profile = (prep or {}).get("profile", "?")
    parts = [f"Profile `{profile}`, task {ev['task']}; {data_phrase(prep)}.",
             model_phrase("R", rs, "arch") + ".", model_phrase("D", det, "model") + "."]  # fmt: skip
    if cm := class_map_phrase(det):
        parts.append(cm + ".")
    parts.append(
        f"Scored on the {ev['images']} {ev['split']} images; metric: {ev.get('metric', 'accuracy')}, in %."
    )
    return " ".join(parts)


def _table1(reports: Path, methods: dict, ours: dict) -> list[tuple]:
    """Detection per class beside the paper's Table 1, the ordering, the grid of test images."""
    out: list[tuple] = []
    out.append(("h", 2, "Detection on the degraded test split (paper Table 1)"))
    classes = list(next(iter(methods.values())).get("ap50", {})) or HAZE_CLASSES
    rows = []
    for name, v in ours.items():
        paper = PAPER_TABLE1.get(name)
        p_cells = [f"{x:.2f}" for x in paper["voch"]] + [f"{paper['rtts_map']:.2f}"] if paper else ["-"] * 7
        if v is None:
            cells = ["not run"] + [""] * len(classes)
        else:
            cells = [pct(v["ap50"].get(c)) for c in classes] + [pct(v["map50"])]
        rows.append([name] + cells + p_cells)
    header = (
        ["method"]
        + classes
        + ["mAP"]
        + [f"paper VOCh {c}" for c in HAZE_CLASSES]
        + ["paper VOCh mAP", "paper RTTS mAP"]
    )
    out.append(("table", header, rows))
    note = (
        "Paper columns: VOCh-test and RTTS with YOLOv3 and a retrained AOD-Net (the dagger rows), "
        "the ordering the paper reports, not a target value for another setting."
    )
    out.append(("p", note))
    out.append(("p", _ordering(ours, noise.of_run(reports)[0])))
    if (reports / "evaluate/grid.png").is_file():
        out.append(
            (
                "img",
                "../evaluate/grid.png",
                "Test images: D's boxes (score >= 0.25) on what each method "
                "shows it, and the clean image with its true boxes",
            )
        )

    return out


def _table2(ev: dict, rs: dict | None, ours: dict) -> list[tuple]:
    """Image quality (PSNR / SSIM / NIQE) of what D sees, beside the paper's Table 2."""
    out: list[tuple] = []
    out.append(("h", 2, "Image quality against the clean test images (paper Table 2)"))
    q_rows = []

    def niqe(v: dict | None) -> str:
        return f"{v['niqe']}" if v and v.get("niqe") is not None else "-"

    if ours["Clean (upper bound)"] and "niqe" in ours["Clean (upper bound)"]:
        q_rows.append(["clean I_HQ (reference)", "-", "-", niqe(ours["Clean (upper bound)"])])
    if rs:
        q_rows.append(
            [
                "degraded I_LQ",
                f"{rs.get('psnr_degraded', '-')}",
                f"{rs.get('ssim_degraded', '-')}",
                niqe(ours["Vanilla"]),
            ]
        )
        q_rows.append(
            [
                f"restored R(I_LQ), R={rs.get('arch')}",
                f"{rs.get('psnr_restored', '-')}",
                f"{rs.get('ssim_restored', '-')}",
                niqe(ours["Baseline (R + D)"]),
            ]
        )
    for label, v in (
        ("CycleGAN-style unpaired T_A(I_F)", ours["CycleGAN-style unpaired"]),
        ("VaT T_A(I_F)", ours["VaT"]),
    ):
        if v and "psnr" in v:
            q_rows.append([label, f"{v['psnr']}", f"{v['ssim']}", niqe(v)])
    out.append(("table", ["images", "PSNR dB", "SSIM", "NIQE"], q_rows))
    n = ev.get("niqe")
    note = (
        "VaT optimises D's loss, not fidelity: the paper also reports VaT's PSNR at or below "
        "the restorer's on synthetic haze. "
        + (
            f"NIQE (lower is better): its pristine model is fitted on this run's clean training images "
            f"({n['pristine_blocks']} blocks of {n['patch']} px), so it is comparable within this table "
            "only, not with published NIQE values (the paper's Table 3 scores real RTTS images; this run's "
            "test sets without clean pairs, if any, have their own section below)."
            if n and "patch" in n
            else f"NIQE: not computed ({(n or {}).get('skipped', 'evaluate.niqe_patch: null')})."
        )
    )
    out.append(("p", note))

    return out


def _gate(vat: dict) -> str:
    """The gate on test: its mean, spread and (with clean pairs) where it looks (Fig. 7)."""
    gate = f"mean {vat['gate_mean']} (1 = all I_LQ, 0 = all I_R)"
    if vat.get("gate_sd") is not None:
        gate += f", sd {vat['gate_sd']} over pixels"
    if "gate_corr" in vat:  # test images with clean pairs
        corr = "undefined (w is constant)" if vat["gate_corr"] is None else vat["gate_corr"]
        gate += (f"; correlation with where I_LQ is closer to I_HQ than I_R is "
                 f"({vat['degraded_closer']} of the pixels): {corr} (Fig. 7 expects > 0)")  # fmt: skip
    return gate


def _facts(
    reports: Path, det: dict | None, pl: dict | None, tr: dict | None, vat: dict | None
) -> list[tuple]:
    """The run in a few lines: D, pseudo-labels, translator, selection, gate, unpaired baseline."""
    out: list[tuple] = []
    out.append(("h", 2, "The run"))
    facts = []
    if det and det.get("test_clean_map50") is not None:
        facts.append(["D", f"{det.get('model', '?')}, clean test mAP@0.5 {pct(det['test_clean_map50'])}"])
    if pl:
        a, b = pl.get("before_filter", {}), pl.get("after_filter", {})
        text = f"{a.get('boxes')} -> {b.get('boxes')} boxes after the NUQ filter"
        if "precision" in a:
            text += (f", precision {a['precision']} -> {b['precision']}, "
                     f"recall {a.get('recall')} -> {b.get('recall')}")  # fmt: skip
            if b.get("precision_top") is not None:
                top = b["precision_top"]
                text += f"; of the most confident kept boxes, as many as true ones, {top} are right"
        else:
            text += f" ({pl.get('quality', 'no quality measured')})"
        facts.append(["pseudo-labels", text])
    if tr:
        sel = tr["selected"]
        facts.append(
            [
                "translator",
                f"{tr['translator']}, {tr['params_inference'] / 1e6:.3f}M parameters "
                f"(G + T_A), {tr['steps']} steps at {tr['images_per_second']} img/s on {tr['device']}",
            ]
        )
        facts.append(
            [
                "selection",
                f"epoch {sel['epoch']} by {sel['selected']}"
                + (f" (val mAP@0.5 {pct(sel.get('val_map50'))})" if "val_map50" in sel else ""),
            ]
        )
        per_epoch = ", ".join(f"{v['epoch']}: {pct(v['val_map50'])}" for v in tr["val"])
        # validation only selects: a run with one epoch end (or select: last) has none
        facts.append(["val mAP@0.5 per epoch", per_epoch or "not validated (nothing to choose between)"])
    if vat and "gate_mean" in vat:
        facts.append(["gate w on test", _gate(vat)])
    un = load_metrics(reports, "unpaired")
    if un:
        sel = un["selected"]
        facts.append(
            [
                "unpaired baseline",
                f"{un['translator']} + PatchGAN critics ({un['params_critics'] / 1e6:.3f}M), "
                f"{un['steps']} steps, selected epoch {sel['epoch']} by {sel['selected']}",
            ]
        )
    out.append(("table", ["", ""], facts))
    for stage, what in (("train", "VaT's output"), ("unpaired", "the CycleGAN-style baseline's output")):
        if (reports / stage / "samples.png").is_file():
            caption = f"Val images: degraded, restored, gate weight map w (Fig. 7), {what} with D's boxes"
            out.append(("img", f"../{stage}/samples.png", caption))
    return out


def _ordering(ours: dict, res: float) -> str:
    """Our methods best first (``≈`` within noise, ``res``) beside the paper's, and its two claims."""
    scored = {
        k: v["map50"] for k, v in ours.items() if v is not None and "Clean" not in k and "last" not in k
    }
    order = noise.ordering(scored, res)
    paper = {k: v["voch"][-1] for k, v in PAPER_TABLE1.items()}
    p_order = " > ".join(f"{k} ({v:.2f})" for k, v in sorted(paper.items(), key=lambda kv: -kv[1]))
    missing = [k for k, v in ours.items() if v is None]
    text = f"Ordering here (≈: within noise): {order}. Paper, VOCh-test: {p_order}."
    vat, cyc, base = (ours.get(k) for k in ("VaT", "CycleGAN-style unpaired", "Baseline (R + D)"))
    if vat and cyc and base:
        claims = [("VaT", "CycleGAN-style unpaired", vat, cyc), ("VaT", "Baseline (R + D)", vat, base)]
        said = {True: "holds", False: "does not hold", None: "within noise"}
        verdicts = [f"{a} > {b} {said[noise.beats(x['map50'], y['map50'], res)]}" for a, b, x, y in claims]
        held = sum(noise.beats(x["map50"], y["map50"], res) is True for *_, x, y in claims)
        text += (
            f" The paper's claim of VaT above unpaired translation and above the restorer baseline: "
            f"{held} of 2 hold here beyond noise ({'; '.join(verdicts)})."
        )
    if missing:
        text += f" Not run, so not in the ordering: {', '.join(missing)}."
    return text
