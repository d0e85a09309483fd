"""NIQE, the no-reference image quality score (Mittal, Soundararajan and Bovik, IEEE SPL 2013).

Lower is better: the distance between a multivariate Gaussian (MVG) of natural-scene
statistics fitted on pristine images and the MVG of the image scored. We fit the pristine
model ourselves, on the *clean training images* of the run (:func:`fit_niqe`), as SPEC.md
asks, instead of the authors' model fitted on 125 photographs; so the numbers are not the
published NIQE scale, only comparable within one run (the report labels them so).

Per scale (the image, then the image halved with bicubic resampling; two scales):

- MSCN coefficients ``(I - mu) / (sigma + 1)``, mu and sigma local Gaussian-weighted
  mean and deviation (7 x 7 window, sigma 7/6), on the grey image in [0, 255];
- per ``patch`` x ``patch`` block: a generalized Gaussian fitted to the MSCN values
  (shape alpha, variance: 2 features) and an asymmetric generalized Gaussian fitted to the
  products of neighbouring MSCN values in 4 directions (shape, mean, left and right
  variances: 16 features); 18 features per scale, 36 in all.

Fitting keeps the sharpest blocks of each pristine image (mean local sigma at least
``sharpness`` times the image's sharpest block), as the paper's Sec. III-B. Scoring uses
all blocks of the image: ``NIQE = sqrt((m1 - m2)^T ((S1 + S2) / 2)^+ (m1 - m2))``.
The moment-matching fits follow Sharifi and Leon-Garcia (1995) and Lasmar et al. (2009)
as in the authors' MATLAB code; tests/test_niqe.py checks both fits on samples drawn from
known distributions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from scipy.special import gamma as G

_ALPHAS = np.arange(0.2, 10.0, 0.001)
_R_GGD = G(1 / _ALPHAS) * G(3 / _ALPHAS) / G(2 / _ALPHAS) ** 2
_R_AGGD = G(2 / _ALPHAS) ** 2 / (G(1 / _ALPHAS) * G(3 / _ALPHAS))


def _nearest(table: np.ndarray, v: np.ndarray) -> np.ndarray:
    """For each value of ``v``, the index of the nearest entry of ``table``, a strictly monotonic
    grid (the first on a tie): ``argmin(|table - v|)`` without the (len(v), len(table)) matrix."""
    flip = table[0] > table[-1]
    t = table[::-1] if flip else table  # increasing
    hi = np.clip(np.searchsorted(t, v), 1, len(t) - 1)
    lo = hi - 1
    d_hi, d_lo = np.abs(t[hi] - v), np.abs(t[lo] - v)
    take_hi = d_hi <= d_lo if flip else d_hi < d_lo  # a tie goes to the lower index of ``table``
    idx = np.where(take_hi, hi, lo)
    return len(t) - 1 - idx if flip else idx


def mscn(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MSCN coefficients, local sigma) of a float image in [0, 255]."""
    x = grey.astype(np.float64)
    mu = cv2.GaussianBlur(x, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    var = cv2.GaussianBlur(x * x, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu
    sigma = np.sqrt(np.abs(var))
    return (x - mu) / (sigma + 1.0), sigma


def _ggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(shape alpha, variance) of a zero-mean generalized Gaussian fitted to each row of ``x``
    (n, k), by moment matching."""
    var, e = np.mean(x * x, axis=1), np.mean(np.abs(x), axis=1)
    bad = (var <= 0) | (e <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = var / e**2
    alpha = _ALPHAS[_nearest(_R_GGD, np.nan_to_num(rho))]
    return np.where(bad, _ALPHAS[-1], alpha), np.where(bad, 0.0, var)


def _aggd(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(shape alpha, mean, left variance, right variance) of an asymmetric generalized Gaussian
    fitted to each row of ``x`` (n, k)."""
    sq = x * x
    n_left, n_right = (x < 0).sum(axis=1), (x > 0).sum(axis=1)
    l_var = np.where(x < 0, sq, 0.0).sum(axis=1) / np.maximum(n_left, 1)  # 0 where no value is < 0
    r_var = np.where(x > 0, sq, 0.0).sum(axis=1) / np.maximum(n_right, 1)
    bad = (l_var <= 0) | (r_var <= 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.sqrt(l_var) / np.sqrt(r_var)
        r_hat = np.mean(np.abs(x), axis=1) ** 2 / np.mean(sq, axis=1)
        r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = np.where(bad, _ALPHAS[-1], _ALPHAS[_nearest(_R_AGGD, np.nan_to_num(r_norm))])
    g1, g2, g3 = G(1 / alpha), G(2 / alpha), G(3 / alpha)
    mean = (np.sqrt(r_var) - np.sqrt(l_var)) * g2 / g1 * np.sqrt(g1 / g3)
    return alpha, np.where(bad, 0.0, mean), l_var, r_var


def fit_ggd(x: np.ndarray) -> tuple[float, float]:
    """(shape alpha, variance) of a zero-mean generalized Gaussian, by moment matching."""
    return tuple(float(v[0]) for v in _ggd(np.ravel(x)[None].astype(np.float64)))


def fit_aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """(shape alpha, mean, left variance, right variance) of an asymmetric generalized Gaussian."""
    return tuple(float(v[0]) for v in _aggd(np.ravel(x)[None].astype(np.float64)))


_PAIRS = (  # (a, b) slices of neighbouring MSCN values: horizontal, vertical, two diagonals
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def _tiles(x: np.ndarray, p: int, rows: int, cols: int) -> np.ndarray:
    """The ``rows`` x ``cols`` blocks of side ``p`` from the top left of ``x``, row by row: (n, p, p)."""
    return x[: rows * p, : cols * p].reshape(rows, p, cols, p).swapaxes(1, 2).reshape(rows * cols, p, p)


def _block_features(m: np.ndarray) -> np.ndarray:
    """18 features of each block of MSCN values (n, p, p) -> (n, 18); the products of
    neighbours are taken inside each block only."""
    n = len(m)
    feats = list(_ggd(m.reshape(n, -1)))
    for a, b in _PAIRS:
        feats += list(_aggd((m[(slice(None), *a)] * m[(slice(None), *b)]).reshape(n, -1)))
    return np.stack(feats, axis=1)


def _grey(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    return image.astype(np.float64)


def fits(image: np.ndarray, patch: int) -> bool:
    """Whether ``image`` holds one ``patch`` block at both scales (both sides >= 2 * patch)."""
    return min(image.shape[:2]) >= 2 * patch


def patch_features(image: np.ndarray, patch: int = 96) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_blocks, 36), sharpness (n_blocks,)) of an RGB or grey uint8 image.

    Blocks tile the image from the top left; a remainder narrower than ``patch`` is dropped
    (the image must hold at least one block at both scales, i.e. be at least 2 * patch)."""
    grey = _grey(image)
    h, w = grey.shape
    if not fits(grey, patch):
        raise ValueError(f"NIQE: image {w}x{h} is smaller than two blocks of {patch} px at both scales")
    rows, cols = h // patch, w // patch
    out, sharp = [], None
    for scale in (1, 2):
        if scale == 2:
            grey = cv2.resize(grey, (w // 2, h // 2), interpolation=cv2.INTER_CUBIC)
        m, sigma = mscn(grey)
        p = patch // scale
        out.append(_block_features(_tiles(m, p, rows, cols)))
        if scale == 1:
            sharp = _tiles(sigma, p, rows, cols).mean(axis=(1, 2))
    return np.concatenate(out, axis=1), sharp


@dataclass(frozen=True)
class NiqeModel:
    """The pristine MVG: mean (36,) and covariance (36, 36), with how it was fitted."""

    mean: np.ndarray
    cov: np.ndarray
    patch: int
    blocks: int  # pristine blocks it was fitted on

    def fits(self, image: np.ndarray) -> bool:
        """Whether ``image`` is large enough to be scored (see :func:`fits`)."""
        return fits(image, self.patch)

    def score(self, image: np.ndarray) -> float:
        """NIQE of one image (lower: closer to the pristine statistics)."""
        f, _ = patch_features(image, self.patch)
        mu = np.nanmean(f, axis=0)
        cov = np.cov(f, rowvar=False) if len(f) > 1 else np.zeros_like(self.cov)
        d = self.mean - mu
        return float(np.sqrt(max(d @ np.linalg.pinv((self.cov + cov) / 2) @ d, 0.0)))


def fit_niqe(images: Iterable[np.ndarray], patch: int = 96, sharpness: float = 0.75) -> NiqeModel:
    """Fit the pristine model on clean images, keeping each image's sharpest blocks."""
    feats = []
    for image in images:
        f, s = patch_features(image, patch)
        keep = s >= sharpness * s.max() if s.max() > 0 else np.ones(len(s), bool)
        feats.append(f[keep])
    if not feats:
        raise ValueError("NIQE: no images to fit the pristine model on")
    f = np.concatenate(feats)
    if len(f) < 2:
        raise ValueError("NIQE: fewer than 2 pristine blocks; use more or larger clean images")
    return NiqeModel(f.mean(axis=0), np.cov(f, rowvar=False), patch, len(f))
