"""The report's sections beyond Tables 1 and 2: ablations (Table 4), the width and restorer
studies (Fig. 8), test sets without clean pairs, Task 2 (Fig. 6)."""

from __future__ import annotations

import json
from pathlib import Path

from vat.eval import noise
from vat.eval.paper import PAPER_TABLE1, PAPER_TABLE4, TABLE4
from vat.eval.report import METHOD_PREFIX, load_metrics, ours_row, ours_rows, pct
from vat.eval.scoring import ABLATION_ROW, STUDY_ROW


def _ablation_runs(reports: Path) -> dict[str, dict]:
    """Row name -> reports/ablate/ROW/metrics.json (the ablate stage's record of each row)."""
    runs = {}
    for p in sorted((reports / "ablate").glob("*/metrics.json")):
        runs[p.parent.name] = json.loads(p.read_text())
    return runs


# One section of the report: Table 4, the width study and other rows, with their claims.
def ablations(reports: Path, methods: dict, vat: dict | None, tr: dict | None) -> list[tuple]:
    """Table 4 (named rows of the ablate stage beside the paper's), the width study (rows that
    change only ``translator``), and any other row the user added."""
    runs = _ablation_runs(reports)
    task2_off = (load_metrics(reports, "classify") or {}).get("run") is False
    scored = {k[len(ABLATION_ROW) :]: v for k, v in methods.items() if k.startswith(ABLATION_ROW)}
    task2 = (load_metrics(reports, "classify/evaluate") or {}).get("methods", {})
    scored2 = {k[len(ABLATION_ROW) :]: v for k, v in task2.items() if k.startswith(ABLATION_ROW)}
    vat2 = ours_row(task2, "VaT D(")
    label_to_row = {label: row for row, label in TABLE4.items()}
    out: list[tuple] = [("h", 2, "Ablations (paper Table 4)")]
    rows, ours, ours2 = [], {}, {}
    for name, t1, t2 in PAPER_TABLE4:
        row = label_to_row.get(name)
        v = vat if row is None else scored.get(row)
        v2 = vat2 if row is None else scored2.get(row)
        if v is not None:
            ours[name] = v["map50"]
        if v2 is not None:
            ours2[name] = v2["accuracy"]
        cell = pct(v["map50"]) if v is not None else f"not run (add ablate.{row} to params)"
        hint = " (Task 2 off)" if task2_off else f" (add {row} to classify.rows)" if row else ""
        cell2 = pct(v2["accuracy"]) if v2 is not None else "not run" + hint
        rows.append([name, f"`{row or 'train'}`", cell, cell2, f"{t1:.2f}", f"{t2:.2f}"])
    header = [
        "row",
        "stage",
        "ours, Task 1 detection mAP",
        "ours, Task 2 classification accuracy",
        "paper Task 1 (hazy detection)",
        "paper Task 2 (low-light CLIP accuracy)",
    ]
    out.append(("table", header, rows))
    out.append(
        (
            "p",
            "Each row is `train` with the params of `ablate.ROW` changed (`vat ablate ROW`, one DVC "
            "foreach stage per row), the same data, steps and val selection; the last row is `train` "
            "itself. " + task2_phrase(reports),
        )
    )
    out.append(("p", "Task 1. " + _table4_ordering(ours, noise.of_run(reports)[0])))
    if ours2:
        out.append(
            ("p", "Task 2. " + _table4_ordering(ours2, noise.of_run(reports / "classify", "accuracy")[0]))
        )
    widths = {r: m for r, m in runs.items() if set(m.get("changes", {})) == {"translator"} and r in scored}
    if widths and tr:
        out.append(("h", 2, "Translator width against mAP (paper Fig. 8 right)"))
        pts = [(tr["translator"], tr["params_inference"], vat["map50"] if vat else None, "`train`")]
        pts += [
            (m["translator"], m["params_inference"], scored[r]["map50"], f"`ablate.{r}`")
            for r, m in widths.items()
        ]
        pts.sort(key=lambda p: p[1])
        out.append(
            (
                "table",
                ["translator", "parameters (G + T_A)", "mAP", "stage"],
                [[n, f"{c / 1e6:.3f}M", pct(m), st] for n, c, m, st in pts],
            )
        )
        out.append(
            (
                "plot",
                "fig8_width.png",
                {"VaT": [(c / 1e6, 100 * m, n) for n, c, m, _ in pts if m is not None]},
                "translator parameters (G + T_A), millions",
                "test mAP@0.5 (%)",
                "Translator size against mAP (Fig. 8 right)",
                True,
                "Translator size against VaT's test mAP@0.5 (paper Fig. 8 right)",
            )
        )
        maps = [p[2] for p in pts if p[2] is not None]
        out.append(
            (
                "p",
                "The paper reports mAP rising with size (0.21M -> 6.10M on RTTS). Here "
                + noise.trend(maps, noise.of_run(reports)[0], "size")
                + ".",
            )
        )
    other = {r: m for r, m in runs.items() if r not in TABLE4 and r not in widths and r in scored}
    if other:
        out.append(("h", 2, "Other ablation rows"))
        out.append(
            (
                "table",
                ["row", "changes to train", "mAP"],
                [
                    [
                        f"`{r}`",
                        ", ".join(f"{k}={v}" for k, v in m.get("changes", {}).items()),
                        pct(scored[r]["map50"]),
                    ]
                    for r, m in other.items()
                ],
            )
        )
        for r, m in other.items():
            if set(m.get("changes", {})) == {"labels"} and vat is not None:  # e.g. the online pseudo-labels
                out.append(("p", _labels_claim(r, m["changes"]["labels"], scored[r]["map50"], vat["map50"],
                                               noise.of_run(reports)[0])))  # fmt: skip
    return out


def _labels_claim(row: str, labels: str, theirs: float, ours: float, res: float) -> str:
    """The sentence on a row that only changes ``train.labels`` (online against cached pseudo-labels)."""
    verdict = noise.beats(theirs, ours, res)
    said = {None: "within noise of", True: "above", False: "below"}[verdict]
    keep = "the default keeps the cached labels" if verdict is not True else "this run favours them"
    return (f"`{row}` (`train.labels: {labels}`: D also labels T_A's output every step, as the authors' "
            f"release does) scores {pct(theirs)}, {said} VaT with the cached labels ({pct(ours)}; "
            f"resolution {100 * res:.2f} points): {keep}.")  # fmt: skip


# One section of the report: the Fig. 8 (left) table, its plot and the paper's claim.
def restorer_study(reports: Path, methods: dict, base: dict | None, vat: dict | None, rs: dict | None):
    """Fig. 8 left: each restorer's test PSNR against the baseline's and VaT's mAP (the main run's
    R and every R of the study stage)."""
    main = load_metrics(reports, "restore")
    points = []  # (R, psnr, baseline mAP, VaT mAP, where)
    if main and base and vat and rs:
        points.append(
            (
                rs.get("arch", "R"),
                main.get("test", {}).get("psnr_restored"),
                base["map50"],
                vat["map50"],
                "main run",
            )
        )
    for p in sorted((reports / "study").glob("*/metrics.json")):
        m = json.loads(p.read_text())
        r = m["restorer"]
        b, v = (
            methods.get(STUDY_ROW.format(r) + "Baseline D(R(I_LQ))"),
            methods.get(STUDY_ROW.format(r) + "VaT D(T_A(I_F))"),
        )
        if b and v:
            points.append((r, m.get("test", {}).get("psnr_restored"), b["map50"], v["map50"], f"`study@{r}`"))
    if len(points) < 2:
        return []
    out: list[tuple] = [("h", 2, "Restorer quality against mAP (paper Fig. 8 left)")]
    rows = [
        [r, f"{q:.2f}" if q is not None else "-", pct(b), pct(v), f"{100 * (v - b):+.2f}", w]
        for r, q, b, v, w in sorted(points, key=lambda p: p[1] or 0)
    ]
    out.append(
        ("table", ["R", "R's test PSNR dB", "Baseline D(R(I_LQ))", "VaT", "VaT - Baseline", "run"], rows)
    )
    pts = [p for p in points if p[1] is not None]
    out.append(
        (
            "plot",
            "fig8_restorers.png",
            {
                "VaT": [(q, 100 * v, r) for r, q, _, v, _ in pts],
                "Baseline": [(q, 100 * b, r) for r, q, b, _, _ in pts],
            },
            "R's test PSNR (dB)",
            "test mAP@0.5 (%)",
            "Restorer quality against mAP (Fig. 8 left)",
            False,
            "Each restorer's test PSNR against D's test mAP@0.5 behind it, with and without VaT "
            "(paper Fig. 8 left)",
        )
    )
    by_q = sorted(pts, key=lambda p: p[1])
    res = noise.of_run(reports)[0]
    helps = sum(noise.beats(v, b, res) is True for _, _, b, v, _ in points)
    out.append(
        (
            "p",
            "The paper: VaT's mAP rises with the restorer's PSNR (DCP < AOD-Net < GCANet on VOCh). Here "
            + noise.trend([p[3] for p in by_q], res, "PSNR")
            + f"; VaT beats the baseline beyond noise behind {helps} of {len(points)} restorers. Each study "
            "row re-runs "
            "restore, pseudolabel and train behind its R with the main run's params.",
        )
    )
    return out


def task2_phrase(reports: Path) -> str:
    """What Task 2's column of Table 4 was in this run, from reports/classify/metrics.json."""
    s = load_metrics(reports, "classify")
    if s is None:
        return "Task 2: not run (reports/classify/metrics.json is missing)."
    if s.get("run") is False:
        return f"Task 2: not run ({s.get('why')})."
    rows = ", ".join(f"`{r}`" for r in s.get("rows", [])) or "none"
    return (
        f"Task 2: the rows named in `classify.rows` ({rows}) trained by the classify stage on its own data "
        f"(the {s.get('source')} source degraded by {s.get('degradation')}, R {s.get('restorer')}, D "
        f"{s.get('vision_model')}); the paper's is CIFAR-10 darkened, SCI and CLIP zero-shot, so the "
        "column is comparable in ordering only."
    )


def real_sets(reports: Path) -> list[tuple]:
    """One table per test set without clean pairs (the real stage): mAP and NIQE of each method
    beside the paper's RTTS column, and the paper's claim checked on it."""
    summary = load_metrics(reports, "real")
    out: list[tuple] = [("h", 2, "Test sets without clean pairs (paper Table 1 RTTS column, Table 3)")]
    if summary is None:
        return out + [
            ("p", "Not run: reports/real/metrics.json is missing (`vat real`, a stage of `dvc repro`).")
        ]
    if not summary:
        return out + [("p", "params `real` lists no set (add RTTS or ExDark there).")]
    for name, s in summary.items():
        ev = load_metrics(reports, f"real/{name}") or {"methods": {}}
        ours = ours_rows(ev["methods"], tuple(METHOD_PREFIX)[1:])
        rows = [
            [n, "not run", "", ""] if v is None else
            [n, pct(v["map50"]), f"{v['niqe']}" if v.get("niqe") is not None else "-",
             f"{PAPER_TABLE1[n]['rtts_map']:.2f}" if n in PAPER_TABLE1 else "-"]
            for n, v in ours.items()
        ]  # fmt: skip
        what = (
            f"scenes generated from their own seed and degraded by `{s['degrade']}`, a degradation "
            "the translator was not trained on: a stand-in, not real photographs"
            if s["source"] == "embedded"
            else f"the {s['source']} dataset at `{s['root']}`"
        )
        out.append(("h", 3, f"`{name}`: {s['images']} images, {s['boxes']} boxes"))
        out.append(("table", ["method", "mAP", "NIQE", "paper RTTS mAP"], rows))
        text = (
            f"Images: {what}. No clean pictures, so no PSNR / SSIM; NIQE as in Table 2. The paper "
            "column is RTTS (real haze, YOLOv3 trained on VOC): not comparable in value."
        )
        vat, cyc, base = ours["VaT"], ours["CycleGAN-style unpaired"], ours["Baseline (R + D)"]
        if vat and cyc and base:
            res = 0.5 / max(1, s["boxes"]) ** 0.5  # the set's own resolution (vat/eval/noise.py)
            held = [f"{a} ({pct(x['map50'])})" for a, x in (("unpaired", cyc), ("baseline", base))
                    if noise.beats(vat["map50"], x["map50"], res)]  # fmt: skip
            text += (
                f" The paper's claim on RTTS, VaT above the unpaired and the restorer baselines (49.67 vs "
                f"31.01 and 37.30): {len(held)} of 2 hold here beyond noise ({pct(res)} points; VaT "
                f"{pct(vat['map50'])}" + (f" above {', '.join(held)})." if held else ").")
            )
        out.append(("p", text))
        if (reports / "real" / name / "grid.png").is_file():
            caption = f"`{name}`: D's boxes on what each method shows it, and the true boxes"
            out.append(("img", f"../real/{name}/grid.png", caption))
    return out


def classification(reports: Path) -> list[tuple]:
    """Task 2 (the classify stage): accuracy and ROC AUC of each method, the ROC plot (Fig. 6),
    and the paper's two claims checked against the numbers."""
    out: list[tuple] = [("h", 2, "Low-light classification, Task 2 (paper Fig. 6, Table 4 Task 2)")]
    ev, s = load_metrics(reports, "classify/evaluate"), load_metrics(reports, "classify")
    if s is not None and s.get("run") is False:
        return out + [("p", f"Not run: Task 2 is off ({s.get('why')}).")]
    if ev is None or s is None:
        return out + [("p", "Not run: reports/classify/ is missing (`vat classify`, a `dvc repro` stage).")]
    ours = ours_rows(ev["methods"], tuple(k for k in METHOD_PREFIX if k != "CycleGAN-style unpaired"))
    rows = [
        [n, "not run", "", ""] if v is None else
        [n, pct(v["accuracy"]), f"{v['mean_auc']:.4f}" if v.get("mean_auc") is not None else "-",
         ", ".join(f"{c} {a:.3f}" for c, a in v.get("auc", {}).items() if a is not None)]
        for n, v in ours.items()
    ]  # fmt: skip
    out.append(("table", ["method", "accuracy", "mean AUC", "AUC per class (one vs rest)"], rows))
    pl = s["pseudolabels"]
    out.append(
        (
            "p",
            f"{ev['images']} {ev['split']} images of {len(s['classes'])} classes ({s['source']} source), "
            f"degraded by {s['degradation']}, restorer {s['restorer']}, D {s['vision_model']} (clean test "
            f"accuracy {pct(s.get('clean_test_accuracy_of_D'))}); translator {s['translator']}, selected "
            f"on val accuracy. Pseudo-labels: accuracy {pct(pl.get('accuracy_before_filter'))}"
            f" -> {pct(pl.get('accuracy_after_filter'))} after the NUQ filter "
            f"({pl.get('kept')} kept). The paper (CIFAR-10, CLIP with three backbones, "
            "accuracy 44.27% for full VaT in Table 4) is not comparable in value.",
        )
    )
    van, base, vat = ours["Vanilla"], ours["Baseline (R + D)"], ours["VaT"]
    if van and base and vat:
        acc = {k: v["accuracy"] for k, v in (("Vanilla", van), ("Baseline", base), ("VaT", vat))}
        res = noise.of_run(reports / "classify", "accuracy")[0]
        said = {True: "holds", False: "does not hold", None: "within noise"}
        c1 = {True: False, False: True, None: None}[noise.beats(acc["Baseline"], acc["Vanilla"], res)]
        c2s = [noise.beats(acc["VaT"], acc[k], res) for k in ("Vanilla", "Baseline")]
        c2 = False if False in c2s else (None if None in c2s else True)
        out.append(
            (
                "p",
                "The paper's claims (Sec. 5.2): (1) low-light enhancement alone does not help the classifier "
                f"and can hurt it: {said[c1]} here (Baseline "
                f"{pct(acc['Baseline'])} vs Vanilla {pct(acc['Vanilla'])}); (2) VaT improves on both: "
                f"{said[c2]} here (VaT {pct(acc['VaT'])}; resolution {pct(res)} points).",
            )
        )
    if (reports / "classify/evaluate/roc.png").is_file():
        out.append(("img", "../classify/evaluate/roc.png", "One-vs-rest ROC per class on the low-light test "
                    "crops: Vanilla, Baseline and VaT (paper Fig. 6)"))  # fmt: skip
    return out


def _table4_ordering(ours: dict[str, float], res: float) -> str:
    """Each step of the paper's Table 4 (which row beats which) checked against our numbers,
    a step counted only beyond ``res`` (vat/eval/noise.py)."""
    claims = [  # (better, worse): the paper's Task 1 column
        ("+ gated fusion + uncertainty mixup (full VaT)", "+ gated fusion + plain mixup"),
        ("+ gated fusion + plain mixup", "+ gated fusion"),
        ("+ gated fusion", "L_cyc + L_mle, no gated fusion, no mixup"),
        ("L_cyc + L_mle, no gated fusion, no mixup", "w/o L_cyc (L_mle only)"),
        ("w/o L_cyc (L_mle only)", "w/o L_mle (L_cyc only)"),
    ]
    held, failed, close, open_ = [], [], [], []
    for a, b in claims:
        if a not in ours or b not in ours:
            open_.append(f"{a} > {b}")
            continue
        verdict = noise.beats(ours[a], ours[b], res)
        nums = f"({100 * ours[a]:.2f} vs {100 * ours[b]:.2f})"
        {True: held, False: failed, None: close}[verdict].append(f"{a} > {b} {nums}")
    text = f"The paper's ordering, step by step: {len(held)} of {len(claims)} steps hold here beyond noise."
    if held:
        text += " Holds: " + "; ".join(held) + "."
    if failed:
        text += " Does not hold: " + "; ".join(failed) + "."
    if close:
        text += f" Within noise ({100 * res:.2f} points): " + "; ".join(close) + "."
    if open_:
        text += " Not run: " + "; ".join(open_) + "."
    return text
