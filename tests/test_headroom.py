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


def test_markdown_lists_every_row_and_blend_step(mod):
    res = {
        "seed": 3,
        "headroom": {"val": {"A": 1.0, "B": 2.5}, "test": {"A": 3.0, "B": 4.25}},
        "landscape": {
            "images": 5,
            "unlabelled_images": 7,
            "loss": {
                str(a): {k: [a, 2 * a, 3 * a] for k in ("pseudo", "truth", "truth_unlabelled")}
                for a in mod.STEPS
            },
        },
    }
    text = mod.markdown(res)
    assert "(seed 3)" in text and "| B | 2.50 | 4.25 |" in text
    assert "the 5 with a kept pseudo-box" in text and "the 7 without" in text
    assert "| 1.0 | 1.000 / 2.000 / 3.000 | 1.000 / 2.000 / 3.000 | 1.000 / 2.000 / 3.000 |" in text
