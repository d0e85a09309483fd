"""scripts/headroom.py: the hand-made stretch it scores, and its table."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def mod():
    spec = importlib.util.spec_from_file_location("headroom_script", ROOT / "scripts" / "headroom.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_stretch_maps_each_channels_percentiles_to_the_ends(mod):
    gen = torch.Generator().manual_seed(0)
    x = 0.3 + 0.2 * torch.rand(2, 3, 20, 20, generator=gen)  # a low-contrast, bright image
    x[1, 2] = 0.7  # one flat channel
    s = mod.stretch(x)
    assert s.min() >= 0 and s.max() <= 1
    for c in range(3):  # numpy's percentiles, mapped to 0 and 1, clipped
        v = x[0, c].numpy()
        lo, hi = np.percentile(v, 100 * mod.LO), np.percentile(v, 100 * mod.HI)
        want = np.clip((v - lo) / (hi - lo), 0, 1)
        np.testing.assert_allclose(s[0, c].numpy(), want, atol=1e-5)
        assert (s[0, c] == 0).sum() >= 4 and (s[0, c] == 1).sum() >= 4  # 1 % of 400 pixels at each end
    assert torch.equal(s[1, 2], x[1, 2])  # a flat channel is left as it is
    assert torch.equal(mod.stretch(x, 0.0), x)
    half = mod.stretch(x, 0.5)
    assert torch.allclose(half, (x + s) / 2, atol=1e-6)


def test_markdown_gives_each_seed_and_the_mean(mod):
    def run(k: float, n: int) -> dict:
        scores = {split: {row: k * (i + 1) for i, row in enumerate(mod.ROWS)} for split in ("val", "test")}
        keys = ("pseudo", "truth", "truth_unlabelled")
        loss = {str(a): {key: [k * a, 2 * k * a, 3 * k * a] for key in keys} for a in mod.STEPS}
        return {"headroom": scores, "landscape": {"images": n, "unlabelled_images": 10 - n, "loss": loss}}

    one = mod.markdown({"3": run(1.0, 4)})
    assert "(seeds 3;" in one and f"| {mod.ROWS[1]} | 2.00 | 2.00 |" in one and "(mean" not in one
    text = mod.markdown({"10": run(3.0, 6), "2": run(1.0, 4)})  # seeds in numeric order
    assert "(seeds 2, 10;" in text
    assert f"| {mod.ROWS[3]} | 4.00 / 12.00 (mean 8.00) | 4.00 / 12.00 (mean 8.00) |" in text
    assert "4 / 6 per seed" in text and "(left out of it; 6 / 4)" in text
    assert "| 1.0 | 2.000 / 4.000 / 6.000 | 2.000 / 4.000 / 6.000 | 2.000 / 4.000 / 6.000 |" in text
