"""NIQE: the two moment-matching fits recover known parameters; the score ranks degradations."""

import numpy as np
import pytest
from scipy.stats import gennorm

from vat.data.embedded import SceneSpec, render_scene
from vat.eval.niqe import fit_aggd, fit_ggd, fit_niqe, mscn, patch_features


@pytest.mark.parametrize("alpha", [0.6, 1.0, 2.0, 4.0])
def test_ggd_fit_recovers_shape_and_variance(alpha):
    rng = np.random.default_rng(0)
    scale = 0.7
    x = gennorm.rvs(alpha, scale=scale, size=200_000, random_state=rng)
    a, var = fit_ggd(x)
    assert a == pytest.approx(alpha, rel=0.05)
    assert var == pytest.approx(gennorm.var(alpha, scale=scale), rel=0.03)


@pytest.mark.parametrize("alpha, left, right", [(1.0, 0.5, 1.0), (2.0, 1.0, 0.6), (0.8, 1.0, 1.0)])
def test_aggd_fit_recovers_shape_and_side_variances(alpha, left, right):
    rng = np.random.default_rng(1)
    n = 400_000
    # an AGGD: each side a half generalized Gaussian of its own scale, in proportion to the scales
    side = rng.random(n) < left / (left + right)
    mag = np.abs(gennorm.rvs(alpha, size=n, random_state=rng))
    x = np.where(side, -left * mag, right * mag)
    a, mean, l_var, r_var = fit_aggd(x)
    half_var = gennorm.var(alpha)  # E[mag^2]
    assert a == pytest.approx(alpha, rel=0.06)
    assert l_var == pytest.approx(left**2 * half_var, rel=0.03)
    assert r_var == pytest.approx(right**2 * half_var, rel=0.03)
    assert mean == pytest.approx(float(np.mean(x)), abs=0.02)  # the fitted mean is the sample mean


def test_mscn_of_flat_image_is_zero_and_features_have_36_columns():
    m, sigma = mscn(np.full((64, 64), 128.0))
    assert np.allclose(m, 0) and np.allclose(sigma, 0, atol=1e-5)
    f, sharp = patch_features(np.random.default_rng(0).integers(0, 255, (100, 140, 3), dtype=np.uint8), 32)
    assert f.shape == (3 * 4, 36) and sharp.shape == (12,) and np.isfinite(f).all()
    with pytest.raises(ValueError, match="smaller than two blocks"):
        patch_features(np.zeros((40, 40), np.uint8), 32)


def test_niqe_fitted_on_clean_scenes_ranks_degradations():
    import cv2

    spec = SceneSpec(width=256, height=192)
    scenes = [render_scene(spec, np.random.default_rng(s)).image for s in range(14)]
    model = fit_niqe(scenes[:10], patch=32)
    assert model.blocks >= 10 and model.mean.shape == (36,)
    clean = np.mean([model.score(im) for im in scenes[10:]])
    rng = np.random.default_rng(0)
    noisy = np.mean([model.score(np.clip(im + rng.normal(0, 25, im.shape), 0, 255).astype(np.uint8))
                     for im in scenes[10:]])  # fmt: skip
    blurred = np.mean([model.score(cv2.GaussianBlur(im, (0, 0), 3)) for im in scenes[10:]])
    assert clean < noisy and clean < blurred, (clean, noisy, blurred)
    assert model.score(scenes[10]) == model.score(scenes[10].copy())  # deterministic


def test_block_features_equal_fitting_each_block_alone():
    """The vectorised features are the per-block fits of the MSCN block and its four
    neighbour products (the definition), block by block from the top left."""
    from vat.eval.niqe import _PAIRS, _grey

    image = render_scene(SceneSpec(width=160, height=96), np.random.default_rng(3)).image
    f, sharp = patch_features(image, 32)
    m, sigma = mscn(_grey(image))
    for k, (r, c) in enumerate((r, c) for r in range(3) for c in range(5)):
        block = m[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32]
        want = list(fit_ggd(block))
        for a, b in _PAIRS:
            want += list(fit_aggd(block[a] * block[b]))
        np.testing.assert_allclose(f[k, :18], want, rtol=1e-9, atol=1e-12)
        assert sharp[k] == pytest.approx(sigma[r * 32 : (r + 1) * 32, c * 32 : (c + 1) * 32].mean(), rel=1e-9)


def test_nearest_grid_entry_is_argmin_of_the_distance():
    from vat.eval.niqe import _R_AGGD, _R_GGD, _nearest

    rng = np.random.default_rng(0)
    for table in (_R_GGD, _R_AGGD):  # one decreasing, one increasing
        v = np.concatenate([rng.uniform(table.min() - 1, table.max() + 1, 2000), table[::97],
                            (table[1:] + table[:-1])[::89] / 2])  # fmt: skip
        want = np.argmin(np.abs(table[None] - v[:, None]), axis=1)
        np.testing.assert_array_equal(_nearest(table, v), want)
