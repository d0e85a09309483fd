"""Degradations: haze / low-light formulas at hand-computed pixels, corruptions, config, draws."""

from __future__ import annotations

import dataclasses
import math
import sys

import numpy as np
import pytest

from vat.data import compat_imagecorruptions as compat
from vat.data import corruptions as C
from vat.data import degradations as D
from vat.errors import DataError


def _image(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((h, w, 3), dtype=np.float32)


def _smooth(h: int = 48, w: int = 64) -> np.ndarray:
    """A gradient with edges, so blurs and noise visibly change it."""
    x = np.linspace(0.1, 0.9, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0.2, 0.7, h, dtype=np.float32)[:, None, None]
    img = np.broadcast_to(0.5 * x + 0.5 * y, (h, w, 3)).copy()
    img[::8] = 0.05
    img[:, :, 1] *= 0.8
    return img


# --------------------------------------------------------------------------- haze (IA-YOLO)


def test_iayolo_beta_levels_are_exactly_005_to_014():
    assert D.IAYOLO_BETAS == (0.05, 0.06, 0.07, 0.08, 0.09, 0.10, 0.11, 0.12, 0.13, 0.14)
    assert D.DegradeParams("haze").betas == D.IAYOLO_BETAS


def _iayolo_pixel(J: float, j: int, col: int, r: int, c: int, beta: float, A: float) -> float:
    d = -0.04 * math.sqrt((j - r / 2) ** 2 + (col - c / 2) ** 2) + math.sqrt(max(r, c))
    t = math.exp(-beta * d)
    return J * t + A * (1 - t)


@pytest.mark.parametrize("j, col", [(3, 4), (0, 0), (6, 8), (0, 8), (6, 0), (2, 7)])
def test_haze_iayolo_matches_hand_computation_on_7x9(j, col):
    img = _image(7, 9, seed=1)
    out = D.haze_iayolo(img, beta=0.1, A=0.5)
    for ch in range(3):
        expected = _iayolo_pixel(float(img[j, col, ch]), j, col, 7, 9, 0.1, 0.5)
        assert out[j, col, ch] == pytest.approx(expected, abs=1e-6)


def test_transmission_iayolo_known_values():
    t = D.transmission_iayolo(7, 9, 0.1)
    assert t.shape == (7, 9) and t.dtype == np.float32
    # Corner (0, 0): distance to (3.5, 4.5) is sqrt(3.5^2 + 4.5^2).
    d = -0.04 * math.sqrt(3.5**2 + 4.5**2) + 3.0
    assert t[0, 0] == pytest.approx(math.exp(-0.1 * d), abs=1e-7)
    # Haze is thickest at the centre: t smallest there, largest at the corners.
    assert t.min() == t[3, 4] and t.max() in (t[0, 0], t[0, 8], t[6, 0], t[6, 8])
    # Non-square: the larger side sets sqrt(max(r, c)) (rows vs columns not swapped).
    t2 = D.transmission_iayolo(4, 16, 0.2)
    d2 = -0.04 * math.sqrt((1 - 2) ** 2 + (13 - 8) ** 2) + 4.0
    assert t2[1, 13] == pytest.approx(math.exp(-0.2 * d2), abs=1e-7)


def test_floor_centre_matches_iayolo_script():
    t = D.transmission_iayolo(7, 9, 0.1, floor_centre=True)
    assert t[3, 4] == pytest.approx(math.exp(-0.1 * 3.0), abs=1e-7)  # distance 0 at (7 // 2, 9 // 2)
    assert t[0, 0] == pytest.approx(math.exp(-0.1 * (-0.04 * 5.0 + 3.0)), abs=1e-7)  # sqrt(3^2 + 4^2)


def test_haze_tends_to_airlight_and_is_identity_at_beta_zero():
    img = _image(20, 30)
    thick = D.haze_iayolo(img, beta=50.0, A=0.7)  # t = exp(-50 d) ~ 0
    np.testing.assert_allclose(thick, 0.7, atol=1e-5)
    assert np.array_equal(D.haze_iayolo(img, beta=0.0, A=0.7), img)  # t = 1


def test_haze_output_contract_and_input_untouched():
    img = _image(33, 47)
    before = img.copy()
    out = D.haze_iayolo(img, 0.14)
    assert out.shape == img.shape and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert np.array_equal(img, before)
    with pytest.raises(TypeError, match="float"):
        D.haze_iayolo((img * 255).astype(np.uint8), 0.1)
    with pytest.raises(ValueError, match="airlight"):
        D.haze_iayolo(img, 0.1, A=1.5)


# --------------------------------------------------------------------------- depth haze


def test_haze_depth_known_pixels_and_farther_is_hazier():
    h, w = 4, 6
    depth = np.tile(np.arange(w, dtype=np.float32) * 10.0, (h, 1))  # 0, 10, ..., 50 m by column
    img = np.full((h, w, 3), 0.1, np.float32)
    out = D.haze_depth(img, depth, beta=0.05, A=0.5)
    for col in (0, 2, 5):
        t = math.exp(-0.05 * depth[0, col])
        assert out[1, col, 0] == pytest.approx(0.1 * t + 0.5 * (1 - t), abs=1e-6)
    assert out[0, 0, 0] == pytest.approx(0.1)  # depth 0: no haze
    gap = np.abs(out[0, :, 0] - 0.5)  # distance from the airlight shrinks with depth
    assert np.all(np.diff(gap) < 0)


def test_haze_depth_rejects_mismatched_depth():
    with pytest.raises(DataError, match="depth"):
        D.haze_depth(_image(8, 8), np.ones((8, 9), np.float32), 0.05)


# --------------------------------------------------------------------------- low light


def test_lowlight_exact_values():
    img = np.array([[[0.5, 0.25, 1.0], [0.0, 0.8, 0.5]]], np.float32)
    out = D.lowlight(img, 2.0)
    np.testing.assert_array_equal(out[0, 0], [0.25, 0.0625, 1.0])
    assert out[0, 1, 2] == 0.25
    assert D.lowlight(img, 3.0)[0, 0, 0] == 0.125
    assert out[0, 1, 1] == pytest.approx(0.64)


def test_lowlight_darkens_monotonically():
    img = _image(16, 16)
    prev = img
    for gamma in (1.5, 2.5, 4.0, 5.0):
        out = D.lowlight(img, gamma)
        inside = (img > 1e-3) & (img < 1 - 1e-3)
        assert np.all(out[inside] < prev[inside])
        prev = out
    with pytest.raises(ValueError, match="gamma"):
        D.lowlight(img, 0.0)


# --------------------------------------------------------------------------- imagecorruptions


def test_shim_lists_all_19_and_leaves_numpy_alone():
    assert len(compat.CORRUPTIONS) == 19
    assert set(compat.CORRUPTIONS) >= {"fog", "frost", "glass_blur", "gaussian_blur", "saturate"}
    assert not hasattr(np, "float_")  # numpy 2 removed it; the shim must not add it back globally


def test_fake_pkg_resources_is_gone_after_import():
    fake = sys.modules.get("pkg_resources")
    # Either absent, or a real setuptools one (which has a __file__); never the import-time stand-in.
    assert fake is None or getattr(fake, "__file__", None)


@pytest.mark.parametrize("name", compat.CORRUPTIONS)
def test_every_imagecorruption_runs_and_is_deterministic(name):
    img = _image(32, 32, seed=3)
    out = C.corrupt(img, f"imagecorruptions/{name}", severity=3, seed=11)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0
    assert not np.allclose(out, img, atol=1e-3)  # it did something
    np.random.seed(999)  # a disturbed global RNG must not change the result
    again = C.corrupt(img, f"imagecorruptions/{name}", severity=3, seed=11)
    assert np.array_equal(out, again)


def test_imagecorruptions_non_square_and_seed_matters():
    img = _image(37, 53)
    a = C.corrupt(img, "imagecorruptions/gaussian_noise", 2, seed=1)
    b = C.corrupt(img, "imagecorruptions/gaussian_noise", 2, seed=2)
    assert a.shape == (37, 53, 3)
    assert not np.array_equal(a, b)
    big = C.corrupt(img, "imagecorruptions/gaussian_noise", 2, seed=2**40 + 3)  # seeds beyond 32 bits
    assert not np.array_equal(big, a)


def test_global_numpy_rng_state_is_restored():
    np.random.seed(12345)
    expected = np.random.random(5)
    np.random.seed(12345)
    C.corrupt(_image(), "imagecorruptions/gaussian_noise", 1, seed=7)
    C.corrupt(_image(), "imagecorruptions/frost", 1, seed=7)
    C.corrupt(_image(), "albumentations/GaussNoise", 1, seed=7)
    assert np.array_equal(np.random.random(5), expected)


def test_wrong_size_or_grey_output_is_fitted_back(monkeypatch):
    # No corruption of 1.1.2 changes the size on RGB input, but the contract must hold if one does.
    monkeypatch.setitem(compat._FUNCS, "contrast", lambda x, severity: np.full((40, 50), 127.5))
    out = C.corrupt(_image(32, 36), "imagecorruptions/contrast", 1, seed=0)
    assert out.shape == (32, 36, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out, 0.5, atol=1e-6)


def test_imagecorruptions_rejects_tiny_images():
    with pytest.raises(ValueError, match="32"):
        C.corrupt(_image(16, 40), "imagecorruptions/fog", 1, seed=0)


# --------------------------------------------------------------------------- albumentations


@pytest.mark.parametrize("name", ["GaussNoise", "RandomRain", "RandomFog", "RandomSnow", "ImageCompression"])
def test_albumentations_deterministic(name):
    img = _smooth()
    a = C.corrupt(img, f"albumentations/{name}", 3, seed=5)
    b = C.corrupt(img, f"albumentations/{name}", 3, seed=5)
    assert a.shape == img.shape and a.dtype == np.float32
    assert 0.0 <= a.min() and a.max() <= 1.0
    assert np.array_equal(a, b)
    assert not np.allclose(a, img, atol=1e-3)


def test_albumentations_seed_and_severity_matter():
    img = _smooth()
    a = C.corrupt(img, "albumentations/GaussNoise", 3, seed=1)
    b = C.corrupt(img, "albumentations/GaussNoise", 3, seed=2)
    assert not np.array_equal(a, b)
    # GaussNoise std is 0.08 / 0.12 / 0.18 / 0.26 / 0.38 by severity (before clipping).
    spread = [float(np.std(C.corrupt(img, "albumentations/GaussNoise", s, seed=1) - img)) for s in (1, 3, 5)]
    assert spread[0] < spread[1] < spread[2]
    assert spread[0] == pytest.approx(0.08, rel=0.2)


def test_every_listed_albumentations_transform_runs():
    img = _smooth()
    for name in C.ALBUMENTATIONS:
        for severity in (1, 5):
            out = C.corrupt(img, f"albumentations/{name}", severity, seed=0)
            assert out.shape == img.shape and out.dtype == np.float32, name


def test_unknown_corruption_lists_valid_names():
    with pytest.raises(ValueError) as err:
        C.corrupt(_image(), "albumentations/NoSuchTransform", 1, seed=0)
    assert "imagecorruptions/fog" in str(err.value) and "albumentations/RandomRain" in str(err.value)
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(_image(), "fog", 1, seed=0)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(_image(), "imagecorruptions/fog", 6, seed=0)


# --------------------------------------------------------------------------- config, draws, apply


def test_config_validation():
    with pytest.raises(ValueError, match="method"):
        D.DegradeParams("rain")
    with pytest.raises(ValueError, match="corruptions"):
        D.DegradeParams("corruption")
    with pytest.raises(ValueError, match="unknown corruption"):
        D.DegradeParams("corruption", corruptions=("imagecorruptions/nope",))
    with pytest.raises(ValueError, match="gamma_range"):
        D.DegradeParams("lowlight", gamma_range=(5.0, 1.5))
    with pytest.raises(ValueError, match="gamma_range"):
        D.DegradeParams("lowlight", gamma_range=(0.0, 1.5))
    with pytest.raises(ValueError, match="airlight"):
        D.DegradeParams("haze", airlight=1.2)
    with pytest.raises(ValueError, match="betas"):
        D.DegradeParams("haze", betas=())
    with pytest.raises(ValueError, match="depth_betas"):
        D.DegradeParams("haze_depth", depth_betas=(0.2, 0.1))
    with pytest.raises(ValueError, match="severit"):
        D.DegradeParams("corruption", corruptions=("imagecorruptions/fog",), severities=(0, 3))
    # Lists (as YAML gives them) become tuples: the config stays frozen and hashable.
    cfg = D.DegradeParams("corruption", corruptions=["imagecorruptions/fog"], severities=[2, 3])
    assert cfg.corruptions == ("imagecorruptions/fog",) and cfg.severities == (2, 3)
    hash(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.method = "haze"


@pytest.mark.parametrize(
    "cfg",
    [
        D.DegradeParams("haze"),
        D.DegradeParams("haze_depth"),
        D.DegradeParams("lowlight"),
        D.DegradeParams("corruption", corruptions=("imagecorruptions/fog", "albumentations/RandomRain")),
    ],
    ids=lambda c: c.method,
)
def test_draw_params_deterministic_with_all_keys(cfg):
    a = D.draw_params(cfg, np.random.default_rng(42))
    b = D.draw_params(cfg, np.random.default_rng(42))
    assert a == b
    assert set(a) == {"method", "beta", "airlight", "gamma", "corruption", "severity", "seed"}
    assert a["method"] == cfg.method
    used = {
        "haze": {"beta", "airlight"},
        "haze_depth": {"beta", "airlight"},
        "lowlight": {"gamma"},
        "corruption": {"corruption", "severity", "seed"},
    }[cfg.method]
    for key in ("beta", "airlight", "gamma", "corruption", "severity", "seed"):
        assert (a[key] is not None) == (key in used), key


def test_draw_params_ranges():
    rng = np.random.default_rng(0)
    haze = [D.draw_params(D.DegradeParams("haze"), rng)["beta"] for _ in range(300)]
    assert set(haze) == set(D.IAYOLO_BETAS)  # every level drawn, nothing else
    gammas = [D.draw_params(D.DegradeParams("lowlight"), rng)["gamma"] for _ in range(300)]
    assert all(1.5 <= g <= 5.0 for g in gammas) and max(gammas) - min(gammas) > 3.0
    depth = [D.draw_params(D.DegradeParams("haze_depth"), rng)["beta"] for _ in range(100)]
    assert all(0.02 <= b <= 0.12 for b in depth)
    cfg = D.DegradeParams("corruption", corruptions=("imagecorruptions/fog",), severities=(2, 4))
    draws = [D.draw_params(cfg, rng) for _ in range(50)]
    assert {d["severity"] for d in draws} == {2, 4}
    assert all(isinstance(d["seed"], int) and d["seed"] >= 0 for d in draws)
    assert len({d["seed"] for d in draws}) == 50


def test_apply_dispatches():
    img = _image(40, 40)
    rng = np.random.default_rng(3)
    p = D.draw_params(D.DegradeParams("haze"), rng)
    assert np.array_equal(D.apply(img, p), D.haze_iayolo(img, p["beta"], 0.5))
    p = D.draw_params(D.DegradeParams("lowlight"), rng)
    assert np.array_equal(D.apply(img, p), D.lowlight(img, p["gamma"]))
    cfg = D.DegradeParams("corruption", corruptions=("imagecorruptions/gaussian_noise",))
    p = D.draw_params(cfg, rng)
    assert np.array_equal(D.apply(img, p), C.corrupt(img, p["corruption"], p["severity"], p["seed"]))
    p = D.draw_params(D.DegradeParams("haze_depth"), rng)
    depth = np.full((40, 40), 20.0, np.float32)
    assert np.array_equal(D.apply(img, p, depth=depth), D.haze_depth(img, depth, p["beta"], 0.5))
    with pytest.raises(DataError, match="no depth map"):
        D.apply(img, p)
    with pytest.raises(ValueError, match="method"):
        D.apply(img, {"method": "blur"})
