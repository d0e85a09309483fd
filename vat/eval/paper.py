"""The paper's own numbers and row names (Wu & Jin, ECCV 2024), for the report to set beside ours."""

from __future__ import annotations

# The paper's Table 1 (VOCh-test and RTTS, AOD-Net retrained on VOCh: the dagger rows), % AP@0.5.
PAPER_TABLE1 = {
    "Vanilla": {"voch": [81.66, 81.24, 84.29, 80.10, 76.16, 80.69], "rtts_map": 43.45},
    "Baseline (R + D)": {"voch": [81.21, 77.42, 84.51, 80.39, 76.64, 80.04], "rtts_map": 37.30},
    "CycleGAN-style unpaired": {"voch": [83.01, 79.25, 85.50, 80.42, 77.32, 81.10], "rtts_map": 31.01},
    "VaT": {"voch": [81.98, 84.40, 88.32, 83.23, 82.18, 84.02], "rtts_map": 49.67},
}
HAZE_CLASSES = ["bicycle", "bus", "car", "motorbike", "person"]  # Table 1's columns

# The paper's Table 4, Task 1 (hazy detection mAP %) and Task 2 (low-light CLIP accuracy %).
PAPER_TABLE4 = [
    ("w/o L_cyc (L_mle only)", 41.97, 34.85),
    ("w/o L_mle (L_cyc only)", 11.45, 10.42),
    ("L_cyc + L_mle, no gated fusion, no mixup", 42.77, 35.10),
    ("+ gated fusion", 47.49, 41.62),
    ("+ gated fusion + plain mixup", 49.12, 43.19),
    ("+ gated fusion + uncertainty mixup (full VaT)", 49.48, 44.27),
]

# Table 4's rows by the name of their ablation row (params `ablate`), and their label; the
# full VaT, the last row, is the train stage itself.
TABLE4 = {
    "no_cycle": "w/o L_cyc (L_mle only)",
    "no_mle": "w/o L_mle (L_cyc only)",
    "no_gate": "L_cyc + L_mle, no gated fusion, no mixup",
    "gate": "+ gated fusion",
    "plain_mixup": "+ gated fusion + plain mixup",
}
