"""The report stage: paper-shaped tables from metrics, missing rows named, ordering stated."""

import json

from stages import report
from vat.eval.paper import HAZE_CLASSES
from vat.layout import Layout


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _methods(**maps):
    return {name: {"map50": m, "ap50": {c: m for c in HAZE_CLASSES}} for name, m in maps.items()}


def test_report_tables_ordering_and_missing_rows(tmp_path):
    methods = _methods(
        **{
            "Clean D(I_HQ)": 0.8,
            "Vanilla D(I_LQ)": 0.1,
            "Baseline D(R(I_LQ)), R=aodnet": 0.4,
            "VaT D(T_A(I_F)), val-selected": 0.45,
            "VaT, last epoch": 0.44,
        }
    )
    methods["VaT D(T_A(I_F)), val-selected"] |= {"psnr": 19.5, "ssim": 0.8, "gate_mean": 0.02}
    _write(
        tmp_path / "evaluate/metrics.json",
        {"images": 10, "split": "test", "task": "haze", "metric": "mAP@0.5", "methods": methods},
    )
    restorer = {
        "arch": "aodnet",
        "psnr_degraded": 17.0,
        "psnr_restored": 20.1,
        "ssim_degraded": 0.7,
        "ssim_restored": 0.8,
    }
    _write(tmp_path / "train_restorer/metrics.json", restorer)
    r = report.run(Layout(tmp_path, tmp_path), profile="tiny")
    md = (tmp_path / "report/report.md").read_text()
    # 10 test images resolve 0.5 / sqrt(10) = 15.81 points: VaT's 5 over the baseline is noise
    assert "Profile `tiny`: size not recorded; scored on 10 test images. Differences under 15.81 points" in md
    assert "| VaT | 45.00 | 45.00 | 45.00 | 45.00 | 45.00 | 45.00 | 81.98" in md  # ours, then the paper's
    assert "| CycleGAN-style unpaired | not run |" in md
    assert "Ordering here (≈: within noise): VaT (45.00) ≈ Baseline (R + D) (40.00) > Vanilla (10.00)." in md
    assert (
        "| VaT T_A(I_F) | 19.5 | 0.8 | - |" in md
        and "NIQE: not computed (evaluate.niqe_patch: null)." in md
        and "| restored R(I_LQ), R=aodnet | 20.1 | 0.8 |" in md
    )
    assert (
        "| w/o L_mle (L_cyc only) | `no_mle` | not run (add ablate.no_mle to params) | not run (add no_mle "
        "to classify.rows) | 11.45 | 10.42 |" in md
    )
    assert "Not run: reports/classify/ is missing" in md
    assert "Not run: reports/real/metrics.json is missing" in md
    page = (tmp_path / "report/report.html").read_text()
    assert page.count("<table>") == 4 and "&gt; Baseline" in page and r["blocks"] > 8


def test_report_without_evaluation_says_what_to_run(tmp_path):
    report.run(Layout(tmp_path, tmp_path))
    assert "run `vat evaluate` first" in (tmp_path / "report/report.md").read_text()


def test_report_fills_unpaired_ablations_width_study_and_checks_the_papers_orderings(tmp_path):
    methods = _methods(
        **{
            "Clean D(I_HQ)": 0.8,
            "Vanilla D(I_LQ)": 0.1,
            "Baseline D(R(I_LQ)), R=aodnet": 0.4,
            "Unpaired CycleGAN-style D(T_A(I_F))": 0.42,
            "VaT D(T_A(I_F)), val-selected": 0.45,
            "Ablation no_cycle": 0.30,
            "Ablation no_mle": 0.35,  # above no_cycle: the paper's last step fails here
            "Ablation no_gate": 0.40,
            "Ablation gate": 0.41,
            "Ablation plain_mixup": 0.44,
            "Ablation w8": 0.47,
            "Ablation lr_high": 0.2,
            "Study R=identity: Baseline D(R(I_LQ))": 0.1,
            "Study R=identity: VaT D(T_A(I_F))": 0.3,
            "Study R=dcp: Baseline D(R(I_LQ))": 0.38,
            "Study R=dcp: VaT D(T_A(I_F))": 0.36,  # below its baseline
        }
    )
    methods["Unpaired CycleGAN-style D(T_A(I_F))"] |= {"psnr": 18.0, "ssim": 0.7, "niqe": 6.5}
    methods["Clean D(I_HQ)"]["niqe"] = 4.2
    ev = {"images": 10, "split": "test", "task": "haze", "metric": "mAP@0.5", "methods": methods,
          "niqe": {"patch": 32, "pristine_blocks": 900}}  # fmt: skip
    _write(tmp_path / "evaluate/metrics.json", ev)
    _write(tmp_path / "seeds/metrics.json", {"seeds": [0, 1, 2], "spread": {"map50": 0.001}})  # 0.1 points
    tr = {"translator": "vat-w4", "params_inference": 60_000, "steps": 9, "images_per_second": 1.0,
          "device": "cpu", "selected": {"epoch": 1, "selected": "last"}, "val": []}  # fmt: skip
    _write(tmp_path / "train/metrics.json", tr)
    before = {"boxes": 120, "precision": 0.05, "recall": 0.6}
    after = {"boxes": 100, "precision": 0.06, "recall": 0.55, "precision_top": 0.7}
    _write(tmp_path / "pseudolabel/metrics.json", {"before_filter": before, "after_filter": after})
    for row, changes, n in (("w8", {"translator": "vat-w8"}, 200_000), ("lr_high", {"lr": 0.1}, 60_000),
                            ("gate", {"mixup": "none"}, 60_000)):  # fmt: skip
        _write(tmp_path / f"ablate/{row}/metrics.json",
               {"row": row, "changes": changes, "translator": changes.get("translator", "vat-w4"),
                "params_inference": n})  # fmt: skip
    report.run(Layout(tmp_path, tmp_path))
    md = (tmp_path / "report/report.md").read_text()
    assert (
        "| CycleGAN-style unpaired | 42.00 |" in md
        and "| CycleGAN-style unpaired T_A(I_F) | 18.0 | 0.7 |" in md
    )
    assert (
        "VaT above unpaired translation and above the restorer baseline: 2 of 2 hold here beyond noise" in md
    )
    assert "Differences under 0.10 points (the spread measured over 3 seeds (reports/seeds))" in md
    assert "| + gated fusion | `gate` | 41.00 | not run (add gate to classify.rows) | 47.49 | 41.62 |" in md
    assert "| + gated fusion + uncertainty mixup (full VaT) | `train` | 45.00 | not run | 49.48 |" in md
    assert "4 of 5 steps hold here beyond noise" in md
    assert "Does not hold: w/o L_cyc (L_mle only) > w/o L_mle (L_cyc only) (30.00 vs 35.00)" in md
    assert "| vat-w4 | 0.060M | 45.00 | `train` |" in md and "| vat-w8 | 0.200M | 47.00 | `ablate.w8` |" in md
    assert "Here it rises with size (no step down beyond noise)." in md
    assert "| `lr_high` | lr=0.1 | 20.00 |" in md
    assert "| val mAP@0.5 per epoch | not validated (nothing to choose between) |" in md  # one epoch
    pl = "120 -> 100 boxes after the NUQ filter, precision 0.05 -> 0.06, recall 0.6 -> 0.55; of the most "
    assert pl + "confident kept boxes, as many as true ones, 0.7 are right" in md


def test_report_fills_task2_accuracy_auc_and_its_table4_column(tmp_path):
    """The classify stage's numbers: Task 2's table, the paper's two claims, the Table 4 column."""
    task1 = _methods(**{"Vanilla D(I_LQ)": 0.1, "VaT D(T_A(I_F)), val-selected": 0.45})
    ev = {"images": 10, "split": "test", "task": "haze", "metric": "mAP@0.5", "methods": task1}
    _write(tmp_path / "evaluate/metrics.json", ev)
    auc = {"bus": 0.9, "car": None}

    def row(acc):
        return {"accuracy": acc, "mean_auc": 0.9, "auc": auc}

    methods = {"Clean D(I_HQ)": row(0.9), "Vanilla D(I_LQ)": row(0.5),
               "Baseline D(R(I_LQ)), R=sci": row(0.45), "VaT D(T_A(I_F)), val-selected": row(0.6),
               "Ablation no_cycle": row(0.55),
               "Ablation no_mle": row(0.45), "Ablation no_gate": row(0.5), "Ablation gate": row(0.62),
               "Ablation plain_mixup": row(0.61)}  # fmt: skip
    _write(
        tmp_path / "classify/evaluate/metrics.json",
        {"images": 120, "split": "test", "task": "classify", "metric": "accuracy", "methods": methods},
    )
    _write(
        tmp_path / "classify/metrics.json",
        {
            "classes": ["bus", "car"],
            "source": "embedded",
            "degradation": "lowlight",
            "restorer": "sci",
            "vision_model": "small_cnn",
            "clean_test_accuracy_of_D": 0.9,
            "translator": "vat-w4",
            "pseudolabels": {"accuracy_before_filter": 0.5, "accuracy_after_filter": 0.6, "kept": 200},
        },
    )
    (tmp_path / "classify/evaluate/roc.png").write_bytes(b"png")
    report.run(Layout(tmp_path, tmp_path))
    md = (tmp_path / "report/report.md").read_text()
    assert "| VaT | 60.00 | 0.9000 | bus 0.900 |" in md and "| VaT, last epoch | not run |" in md
    # 120 test crops resolve 0.5 / sqrt(120) = 4.56 points
    assert "can hurt it: holds here (Baseline 45.00 vs Vanilla 50.00); (2) VaT improves on both: holds" in md
    assert "![One-vs-rest ROC per class" in md and "(../classify/evaluate/roc.png)" in md
    assert "| w/o L_cyc (L_mle only) | `no_cycle` | not run (add ablate.no_cycle to params) | 55.00 |" in md
    assert "| + gated fusion + uncertainty mixup (full VaT) | `train` | 45.00 | 60.00 | 49.48 | 44.27 |" in md
    # Task 2 steps: full 60 vs plain 61 vs gate 62 within noise, gate 62 > no_gate 50 holds,
    # no_gate 50 < no_cycle 55 fails, no_cycle 55 > no_mle 45 holds
    assert "Task 2. The paper's ordering, step by step: 2 of 5 steps hold here beyond noise." in md
    assert "Within noise (4.56 points): + gated fusion + uncertainty mixup (full VaT) > + gated fusion" in md


def test_report_has_one_table_per_test_set_without_clean_pairs(tmp_path):
    task1 = _methods(**{"Vanilla D(I_LQ)": 0.1, "VaT D(T_A(I_F)), val-selected": 0.45})
    ev = {"images": 10, "split": "test", "task": "haze", "metric": "mAP@0.5", "methods": task1}
    _write(tmp_path / "evaluate/metrics.json", ev)
    rows = _methods(
        **{
            "Vanilla D(I_LQ)": 0.2,
            "Baseline D(R(I_LQ)), R=aodnet": 0.3,
            "Unpaired CycleGAN-style D(T_A(I_F))": 0.35,
            "VaT D(T_A(I_F)), val-selected": 0.32,
        }
    )
    rows["VaT D(T_A(I_F)), val-selected"]["niqe"] = 4.5
    _write(tmp_path / "real/fog/metrics.json", {"images": 12, "split": "test", "methods": rows})
    fog = {"source": "embedded", "root": None, "degrade": "haze_depth", "images": 12, "boxes": 30}
    _write(tmp_path / "real/metrics.json", {"fog": fog})
    report.run(Layout(tmp_path, tmp_path))
    md = (tmp_path / "report/report.md").read_text()
    assert "### `fog`: 12 images, 30 boxes" in md and "degraded by `haze_depth`" in md
    assert "| VaT | 32.00 | 4.5 | 49.67 |" in md and "| CycleGAN-style unpaired | 35.00 | - | 31.01 |" in md
    assert "| VaT, last epoch | not run |" in md
    # 30 boxes resolve 0.5 / sqrt(30) = 9.13 points: VaT's 2 over the baseline is noise
    assert "0 of 2 hold here beyond noise (9.13 points; VaT 32.00)." in md


def test_noise_rules_order_and_trend_only_beyond_the_resolution(tmp_path):
    from vat.eval import noise

    assert noise.ordering({"a": 0.0, "b": 0.0, "c": 0.0}, 0.01) == "a (0.00) ≈ b (0.00) ≈ c (0.00)"
    assert noise.ordering({"a": 0.5, "b": 0.3, "c": 0.29}, 0.05) == "a (50.00) > b (30.00) ≈ c (29.00)"
    assert noise.beats(0.0, 0.0, 0.0) is None and noise.beats(0.3, 0.2, 0.05) is True
    assert noise.trend([0.0, 0.0, 0.0], 0.01, "size").startswith("all within noise")
    assert noise.trend([0.1, 0.3, 0.29], 0.05, "size").startswith("it rises")
    assert noise.trend([0.3, 0.1, 0.4], 0.05, "size").startswith("it does not move monotonically")
    prep = {"images": 40, "splits": {"test": {"images": 8, "boxes": 25}}}
    res = noise.resolution(tmp_path, prep, {"split": "test", "images": 8})
    assert abs(res[0] - 0.1) < 1e-9 and "N = 25 objects" in res[1]  # 0.5 / sqrt(25)
    # a spread measured over seeds counts for runs of the profile it was measured on only
    (tmp_path / "seeds").mkdir()
    measured = {"profile": "default", "seeds": [0, 1], "spread": {"map50": 0.02}}
    (tmp_path / "seeds" / "metrics.json").write_text(json.dumps(measured))
    assert noise.resolution(tmp_path, prep | {"profile": "tiny"}, {"split": "test"}) == res
    got = noise.resolution(tmp_path, prep | {"profile": "default"}, {"split": "test"})
    assert got == (0.02, "the spread measured over 2 seeds (reports/seeds)")


def test_online_labels_row_is_compared_with_vat_at_the_run_s_resolution(tmp_path):
    """An ablation row that changes only train.labels gets its sentence: above / below / within
    noise of VaT with cached labels, and what the default keeps."""
    base = {"Baseline D(R(I_LQ)), R=aodnet": 0.4, "VaT D(T_A(I_F)), val-selected": 0.45}
    _write(tmp_path / "ablate/online/metrics.json", {"changes": {"labels": "online"}})
    for online, said in ((0.46, "within noise of"), (0.2, "below")):
        methods = _methods(**base, **{"Ablation online": online})
        run = {"images": 10, "split": "test", "task": "haze", "metric": "mAP@0.5", "methods": methods}
        _write(tmp_path / "evaluate/metrics.json", run)
        report.run(Layout(tmp_path, tmp_path), profile="tiny")
        md = (tmp_path / "report/report.md").read_text()
        assert f"| `online` | labels=online | {100 * online:.2f} |" in md
        claim = (
            f"release does) scores {100 * online:.2f}, {said} VaT with the cached labels (45.00; "
            "resolution 15.81 points): the default keeps the cached labels."
        )
        assert claim in md and "`online` (`train.labels: online`: D also labels T_A's output every step" in md
