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


def mscn(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(MSCN coefficients, local sigma) of a float image in [0, 255]."""
    x = grey.astype(np.float64)
    mu = cv2.GaussianBlur(x, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    var = cv2.GaussianBlur(x * x, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu
    sigma = np.sqrt(np.abs(var))
    return (x - mu) / (sigma + 1.0), sigma


def fit_ggd(x: np.ndarray) -> tuple[float, float]:
    """(shape alpha, variance) of a zero-mean generalized Gaussian, by moment matching."""
    x = x.ravel()
    var = float(np.mean(x * x))
    e = float(np.mean(np.abs(x)))
    if var <= 0 or e <= 0:
        return float(_ALPHAS[-1]), 0.0
    rho = var / e**2
    return float(_ALPHAS[np.argmin(np.abs(rho - _R_GGD))]), var


def fit_aggd(x: np.ndarray) -> tuple[float, float, float, float]:
    """(shape alpha, mean, left variance, right variance) of an asymmetric generalized Gaussian."""
    x = x.ravel()
    left, right = x[x < 0], x[x > 0]
    l_var = float(np.mean(left * left)) if left.size else 0.0
    r_var = float(np.mean(right * right)) if right.size else 0.0
    if l_var <= 0 or r_var <= 0:
        return float(_ALPHAS[-1]), 0.0, l_var, r_var
    g = np.sqrt(l_var) / np.sqrt(r_var)
    r_hat = float(np.mean(np.abs(x))) ** 2 / float(np.mean(x * x))
    r_norm = r_hat * (g**3 + 1) * (g + 1) / (g**2 + 1) ** 2
    alpha = float(_ALPHAS[np.argmin((_R_AGGD - r_norm) ** 2)])
    mean = (
        (np.sqrt(r_var) - np.sqrt(l_var)) * G(2 / alpha) / G(1 / alpha) * np.sqrt(G(1 / alpha) / G(3 / alpha))
    )
    return alpha, float(mean), l_var, r_var


_PAIRS = (  # (a, b) slices of neighbouring MSCN values: horizontal, vertical, two diagonals
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def _block_features(m: np.ndarray) -> list[float]:
    """18 features of one block of MSCN values (products of neighbours inside the block only)."""
    feats = list(fit_ggd(m))
    for a, b in _PAIRS:
        feats += list(fit_aggd(m[a] * m[b]))
    return feats


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
        feats, s = [], []
        for r in range(rows):
            for c in range(cols):
                feats.append(_block_features(m[r * p : (r + 1) * p, c * p : (c + 1) * p]))
                s.append(float(sigma[r * p : (r + 1) * p, c * p : (c + 1) * p].mean()))
        out.append(np.asarray(feats))
        if scale == 1:
            sharp = np.asarray(s)
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
