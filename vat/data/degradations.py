"""Synthetic degradations: IA-YOLO haze, depth-based haze, low light, named corruptions.

Images are ``float32`` numpy arrays ``(H, W, 3)`` in [0, 1]; every function returns a
new array of the same shape and dtype, clipped to [0, 1], and is vectorised (no Python
loop over pixels). Randomness never comes from a global RNG: :func:`draw_params` takes an
explicit generator (see :func:`vat.seeding.item_rng`) and records every draw, and
:func:`apply` is a pure function of (image, params, depth).

References
----------
- Haze: the atmospheric scattering model I = J t + A (1 - t) with IA-YOLO's synthetic
  transmission (Liu et al., "Image-Adaptive YOLO for Object Detection in Adverse Weather
  Conditions", AAAI 2022), as used by VaT (Wu & Jin, ECCV 2024): for pixel (j, l) of an
  r x c image, d = -0.04 * sqrt((j - r/2)^2 + (l - c/2)^2) + sqrt(max(r, c)),
  t = exp(-beta d), A = 0.5, beta = 0.01 i + 0.05 for i in 0..9. Haze is thickest at the
  image centre. (IA-YOLO's own script puts the centre at the integer pixel
  (r // 2, c // 2); ``floor_centre=True`` reproduces that; the two differ by half a pixel
  on odd sizes.)
- Depth haze: Koschmieder's law t = exp(-beta * depth) with depth in metres.
- Low light: I = J ** gamma, gamma ~ U(1.5, 5) (VaT's low-light synthesis).
- Corruptions: imagecorruptions (Michaelis et al., "Benchmarking Robustness in Object
  Detection", 2019) through :mod:`vat.data.compat_imagecorruptions`, and albumentations 2.x
  (Buslaev et al., 2020) weather / noise / blur / compression transforms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vat.data.corruptions import _check_corruption_name, _check_severity, corrupt
from vat.errors import DataError
from vat.io import as_float_image, to_uint8

__all__ = [
    "IAYOLO_BETAS",
    "METHODS",
    "PARAM_KEYS",
    "DegradeParams",
    "apply",
    "draw_params",
    "haze_depth",
    "haze_iayolo",
    "lowlight",
    "transmission_iayolo",
]

#: IA-YOLO's ten haze levels: beta = 0.01 * i + 0.05, i = 0..9 (0.05 .. 0.14).
IAYOLO_BETAS: tuple[float, ...] = tuple(round(0.01 * i + 0.05, 10) for i in range(10))

METHODS: tuple[str, ...] = ("haze", "haze_depth", "lowlight", "corruption", "none")

#: Keys of every :func:`draw_params` dict (unused ones are None).
PARAM_KEYS: tuple[str, ...] = ("method", "beta", "airlight", "gamma", "corruption", "severity", "seed")


# --------------------------------------------------------------------------- helpers


def _scatter(image: np.ndarray, t: np.ndarray, airlight: float) -> np.ndarray:
    """I = J t + A (1 - t), with t (H, W) broadcast over channels, clipped to [0, 1]."""
    t = t[:, :, None]  # (H, W, 1)
    out = image * t + np.float32(airlight) * (np.float32(1.0) - t)  # (H, W, 3)
    return np.clip(out, 0.0, 1.0, out=out)


def _check_airlight(airlight: float) -> None:
    if not (0.0 <= airlight <= 1.0):
        raise ValueError(f"airlight A must be in [0, 1], got {airlight}")


# --------------------------------------------------------------------------- haze


def transmission_iayolo(height: int, width: int, beta: float, floor_centre: bool = False) -> np.ndarray:
    """IA-YOLO's transmission map t, ``float32`` (H, W).

    d = -0.04 * sqrt((j - r/2)^2 + (l - c/2)^2) + sqrt(max(r, c)), t = exp(-beta d), with
    j the row and l the column. ``floor_centre`` uses (r // 2, c // 2) as IA-YOLO's script.
    On very large images (max side above ~2500 px) d turns negative at the corners and t
    exceeds 1 there; :func:`haze_iayolo` clips the result to [0, 1].
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if not (beta >= 0.0 and math.isfinite(beta)):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    cy = height // 2 if floor_centre else height / 2
    cx = width // 2 if floor_centre else width / 2
    j = np.arange(height, dtype=np.float64)[:, None] - cy  # (H, 1)
    lc = np.arange(width, dtype=np.float64)[None, :] - cx  # (1, W)
    d = -0.04 * np.sqrt(j * j + lc * lc) + math.sqrt(max(height, width))  # (H, W)
    return np.exp(-beta * d).astype(np.float32)


def haze_iayolo(image: np.ndarray, beta: float, A: float = 0.5, floor_centre: bool = False) -> np.ndarray:
    """IA-YOLO synthetic haze: I = J t + A (1 - t) with :func:`transmission_iayolo`."""
    image = as_float_image(image)
    _check_airlight(A)
    t = transmission_iayolo(image.shape[0], image.shape[1], beta, floor_centre=floor_centre)
    return _scatter(image, t, A)


def haze_depth(image: np.ndarray, depth: np.ndarray, beta: float, A: float = 0.5) -> np.ndarray:
    """Depth-based haze: t = exp(-beta * depth), ``depth`` (H, W) in metres, beta in 1/m."""
    image = as_float_image(image)
    _check_airlight(A)
    depth = np.asarray(depth)
    if depth.ndim == 3 and depth.shape[2] == 1:
        depth = depth[:, :, 0]
    if depth.shape != image.shape[:2]:
        raise DataError(f"depth map shape {depth.shape} does not match the image's {image.shape[:2]}")
    if not (beta >= 0.0 and math.isfinite(beta)):
        raise ValueError(f"beta must be finite and >= 0, got {beta}")
    depth = depth.astype(np.float32, copy=False)
    if not np.all(np.isfinite(depth)) or bool((depth < 0).any()):
        raise DataError("depth map must be finite and >= 0 (metres)")
    t = np.exp(np.float32(-beta) * depth)  # (H, W)
    return _scatter(image, t, A)


# --------------------------------------------------------------------------- low light


def lowlight(image: np.ndarray, gamma: float) -> np.ndarray:
    """Low light: I = J ** gamma (gamma > 1 darkens)."""
    image = as_float_image(image)
    if not (gamma > 0.0 and math.isfinite(gamma)):
        raise ValueError(f"gamma must be finite and > 0, got {gamma}")
    # Clip first: a negative value (rounding noise) to a fractional power is NaN.
    out = np.clip(image, 0.0, 1.0)
    return np.power(out, np.float32(gamma), out=out)


# --------------------------------------------------------------------------- config, draw, apply


def _pair(value: Any, field: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{field} must be a pair (lo, hi) of numbers, got {value!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        raise ValueError(f"{field} must be finite with lo <= hi, got {value!r}")
    return lo, hi


@dataclass(frozen=True)
class DegradeParams:
    """``degrade``: what to synthesise; one set of parameters is drawn per image by
    :func:`draw_params`. The defaults are IA-YOLO's (haze) and the paper's (low light)."""

    method: Literal["haze", "haze_depth", "lowlight", "corruption", "none"]  # none: given already degraded
    betas: tuple[float, ...] = IAYOLO_BETAS  # haze: levels, one drawn uniformly per image (0.05..0.14)
    depth_betas: tuple[float, float] = (0.02, 0.12)  # haze_depth: beta ~ U(lo, hi), 1/m
    airlight: float = 0.5  # A in I = J t + A (1 - t), in [0, 1]
    gamma_range: tuple[float, float] = (1.5, 5.0)  # lowlight: gamma ~ U(lo, hi), > 0 (paper: 1.5..5)
    corruptions: tuple[str, ...] = ()  # corruption: "imagecorruptions/fog", "albumentations/RandomRain"
    severities: tuple[int, ...] = (1, 2, 3, 4, 5)  # corruption: severity levels, one drawn per image
    splits: tuple[str, ...] = ("train", "val", "test")  # which splits the stage degrades

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"degrade method must be one of {', '.join(METHODS)}; got {self.method!r}")
        # Lists from YAML become tuples so the config stays hashable and immutable.
        try:
            betas = tuple(float(b) for b in self.betas)
        except (TypeError, ValueError):
            raise ValueError(f"betas must be a list of numbers, got {self.betas!r}") from None
        if not betas or not all(math.isfinite(b) and b >= 0 for b in betas):
            raise ValueError(f"betas must be a non-empty list of finite numbers >= 0, got {self.betas!r}")
        object.__setattr__(self, "betas", betas)
        depth_betas = _pair(self.depth_betas, "depth_betas")
        if depth_betas[0] < 0:
            raise ValueError(f"depth_betas must be >= 0 (1/m), got {self.depth_betas!r}")
        object.__setattr__(self, "depth_betas", depth_betas)
        airlight = float(self.airlight)
        if not 0.0 <= airlight <= 1.0:
            raise ValueError(f"airlight must be in [0, 1], got {self.airlight!r}")
        object.__setattr__(self, "airlight", airlight)
        gamma_range = _pair(self.gamma_range, "gamma_range")
        if gamma_range[0] <= 0:
            raise ValueError(f"gamma_range must be > 0, got {self.gamma_range!r}")
        object.__setattr__(self, "gamma_range", gamma_range)
        if isinstance(self.corruptions, str):
            raise ValueError(f"corruptions must be a list of names, got the string {self.corruptions!r}")
        corruptions = tuple(str(c) for c in self.corruptions)
        for name in corruptions:
            _check_corruption_name(name)
        if self.method == "corruption" and not corruptions:
            raise ValueError(
                "method 'corruption' needs a non-empty corruptions list, e.g. "
                "['imagecorruptions/fog', 'albumentations/RandomRain']"
            )
        object.__setattr__(self, "corruptions", corruptions)
        severities = tuple(self.severities)
        if not severities:
            raise ValueError("severities must be a non-empty list of integers 1..5")
        object.__setattr__(self, "severities", tuple(_check_severity(s) for s in severities))
        if unknown := sorted(set(self.splits) - {"train", "val", "test"}):
            raise ValueError(f"splits: unknown {unknown} (train, val, test)")


def draw_params(cfg: DegradeParams, rng: np.random.Generator) -> dict:
    """Draw one image's degradation parameters; a flat dict with every key of PARAM_KEYS.

    Values are plain Python ``str`` / ``float`` / ``int`` (or None where unused), ready
    for Parquet or JSON.
    """
    params: dict[str, Any] = dict.fromkeys(PARAM_KEYS)
    params["method"] = cfg.method
    if cfg.method == "haze":
        params["beta"] = float(cfg.betas[int(rng.integers(len(cfg.betas)))])
        params["airlight"] = cfg.airlight
    elif cfg.method == "haze_depth":
        params["beta"] = float(rng.uniform(*cfg.depth_betas))
        params["airlight"] = cfg.airlight
    elif cfg.method == "lowlight":
        params["gamma"] = float(rng.uniform(*cfg.gamma_range))
    elif cfg.method == "none":
        pass
    else:  # corruption
        params["corruption"] = cfg.corruptions[int(rng.integers(len(cfg.corruptions)))]
        params["severity"] = cfg.severities[int(rng.integers(len(cfg.severities)))]
        params["seed"] = int(rng.integers(0, 2**63 - 1))
    return params


def apply(image: np.ndarray, params: dict, depth: np.ndarray | None = None) -> np.ndarray:
    """Degrade one float32 (H, W, 3) image with parameters from :func:`draw_params`.

    Raises :class:`~vat.errors.DataError` for ``haze_depth`` when ``depth`` is None (the
    caller adds the file name).
    """
    method = params.get("method")
    if method == "haze":
        return haze_iayolo(image, params["beta"], params["airlight"])
    if method == "haze_depth":
        if depth is None:
            raise DataError("the image has no depth map, which degrade method 'haze_depth' needs")
        return haze_depth(image, depth, params["beta"], params["airlight"])
    if method == "lowlight":
        return lowlight(image, params["gamma"])
    if method == "corruption":
        return corrupt(image, params["corruption"], params["severity"], params["seed"])
    if method == "none":
        return image
    raise ValueError(f"unknown degrade method {method!r}; expected one of {', '.join(METHODS)}")


def degrade_record(params: DegradeParams, record, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """One manifest record's clean and degraded images (uint8) and the parameters drawn for it, from
    (``seed``, its image id) alone: the same seed gives the same image in any order or subset."""
    from vat.io import load_npy, load_rgb, to_float
    from vat.seeding import item_rng

    p = draw_params(params, item_rng(seed, "degrade", record.image_id))
    depth = None
    if params.method == "haze_depth":
        if not record.depth_path:
            raise DataError(f"{record.path}: method haze_depth needs a depth map and this image has none")
        depth = load_npy(record.depth_path).astype(np.float32)
    image = load_rgb(record.path)
    try:
        return image, to_uint8(apply(to_float(image), p, depth=depth)), p
    except DataError as e:
        raise DataError(f"{record.path}: {e}") from e
