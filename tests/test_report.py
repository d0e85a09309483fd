"""The report stage: paper-shaped tables from metrics, missing rows named, ordering stated."""

import json

from stages import report


def _write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


def _methods(**maps):
    return {name: {"map50": m, "ap50": {c: m for c in report.CLASSES}} for name, m in maps.items()}


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
    r = report.run(tmp_path, tmp_path / "report")
    md = (tmp_path / "report/report.md").read_text()
    assert "| VaT | 45.00 | 45.00 | 45.00 | 45.00 | 45.00 | 45.00 | 81.98" in md  # ours, then the paper's
    assert "| CycleGAN-style unpaired | not built yet |" in md
    assert "Ordering here: VaT (45.00) > Baseline (R + D) (40.00) > Vanilla (10.00)" in md
    assert "| VaT T_A(I_F) | 19.5 | 0.8 |" in md and "| restored R(I_LQ), R=aodnet | 20.1 | 0.8 |" in md
    assert "| w/o L_mle (L_cyc only) | not built yet | 11.45 | 10.42 |" in md
    page = (tmp_path / "report/report.html").read_text()
    assert page.count("<table>") == 4 and "&gt; Baseline" in page and r["blocks"] > 8


def test_report_without_evaluation_says_what_to_run(tmp_path):
    report.run(tmp_path, tmp_path / "report")
    assert "run `vat evaluate` first" in (tmp_path / "report/report.md").read_text()
