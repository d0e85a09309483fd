"""Named corruptions at severity 1..5: imagecorruptions and albumentations 2.x transforms.

imagecorruptions (Michaelis et al., "Benchmarking Robustness in Object Detection", 2019)
runs through :mod:`vat.data.compat_imagecorruptions`; albumentations (Buslaev et al., 2020)
weather / noise / blur / compression transforms run with the per-severity arguments of
:func:`corrupt`. Deterministic for a given seed.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from vat.io import as_float_image, to_uint8

__all__ = ["ALBUMENTATIONS", "corrupt", "corruption_names"]


@functools.cache
def _ic() -> Any:
    # Imported lazily: scikit-image / scipy / cv2 are only needed for corruptions.
    from vat.data import compat_imagecorruptions

    return compat_imagecorruptions


@functools.cache
def _albumentations() -> Any:
    # Imported lazily: importing albumentations takes about 2 s.
    os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
    import albumentations

    return albumentations


def _pick(values: tuple[Any, ...], severity: int) -> Any:
    return values[severity - 1]


def _point(x: float) -> tuple[float, float]:
    return (x, x)


# Severity 1..5 -> albumentations 2.x constructor kwargs; ``(h, w)`` is the image size.
# Where a range is a single point, the severity alone fixes the strength and the seed
# only places things (drops, flakes, shadows, flare position, noise).
_ALB_SPECS: dict[str, Callable[[int, int, int], dict[str, Any]]] = {
    "RandomFog": lambda s, h, w: {
        "fog_coef_range": _point(_pick((0.2, 0.35, 0.5, 0.65, 0.8), s)),
        "alpha_coef": 0.08,
    },
    "RandomRain": lambda s, h, w: {
        "rain_type": _pick(("drizzle", "default", "heavy", "torrential", "torrential"), s),
        "brightness_coefficient": _pick((0.9, 0.8, 0.7, 0.6, 0.5), s),
    },
    "RandomSnow": lambda s, h, w: {
        "snow_point_range": _point(_pick((0.1, 0.2, 0.3, 0.4, 0.5), s)),
        "brightness_coeff": 2.5,
        "method": "bleach",
    },
    "RandomShadow": lambda s, h, w: {
        "shadow_roi": (0.0, 0.0, 1.0, 1.0),
        "num_shadows_limit": (_pick((1, 1, 2, 2, 3), s),) * 2,
        "shadow_intensity_range": _point(_pick((0.3, 0.4, 0.5, 0.6, 0.7), s)),
    },
    "RandomSunFlare": lambda s, h, w: {
        "src_radius": max(2, round(_pick((0.05, 0.1, 0.15, 0.2, 0.3), s) * max(h, w))),
        "num_flare_circles_range": _pick(((2, 4), (4, 6), (6, 8), (8, 10), (10, 12)), s),
        "flare_roi": (0.0, 0.0, 1.0, 0.5),
    },
    "GaussNoise": lambda s, h, w: {"std_range": _point(_pick((0.08, 0.12, 0.18, 0.26, 0.38), s))},
    "MotionBlur": lambda s, h, w: {"blur_limit": (_pick((5, 9, 13, 17, 23), s),) * 2},
    "ISONoise": lambda s, h, w: {
        "color_shift": _point(_pick((0.01, 0.02, 0.03, 0.04, 0.05), s)),
        "intensity": _point(_pick((0.1, 0.2, 0.3, 0.4, 0.5), s)),
    },
    "Downscale": lambda s, h, w: {"scale_range": _point(_pick((0.6, 0.5, 0.4, 0.3, 0.25), s))},
    "ImageCompression": lambda s, h, w: {
        "compression_type": "jpeg",
        "quality_range": (_pick((25, 18, 15, 10, 7), s),) * 2,
    },
    "RandomBrightnessContrast": lambda s, h, w: {
        "brightness_limit": (-_pick((0.1, 0.2, 0.3, 0.4, 0.5), s), _pick((0.1, 0.2, 0.3, 0.4, 0.5), s)),
        "contrast_limit": _point(-_pick((0.1, 0.2, 0.3, 0.4, 0.5), s)),
    },
}

#: Supported albumentations transform names (see :func:`corrupt` for the severity table).
ALBUMENTATIONS: tuple[str, ...] = tuple(_ALB_SPECS)


def corruption_names() -> tuple[str, ...]:
    """Every valid ``corrupt`` name: ``imagecorruptions/<name>`` and ``albumentations/<name>``."""
    return tuple(f"imagecorruptions/{n}" for n in _ic().CORRUPTIONS) + tuple(
        f"albumentations/{n}" for n in ALBUMENTATIONS
    )


def _check_corruption_name(name: str) -> tuple[str, str]:
    library, _, transform = str(name).partition("/")
    ok = (library == "albumentations" and transform in _ALB_SPECS) or (
        library == "imagecorruptions" and transform in _ic().CORRUPTIONS
    )
    if not ok:
        raise ValueError(f"unknown corruption {name!r}; valid names: {', '.join(corruption_names())}")
    return library, transform


def _check_severity(severity: int) -> int:
    ok = isinstance(severity, int | np.integer) and not isinstance(severity, bool) and 1 <= severity <= 5
    if not ok:
        raise ValueError(f"severity must be an integer 1..5, got {severity!r}")
    return int(severity)


def _fit(out: np.ndarray, height: int, width: int) -> np.ndarray:
    """Any corruption output -> float32 (H, W, 3) in [0, 1] of the input's size."""
    out = np.asarray(out)
    if out.dtype == np.uint8:
        out = out.astype(np.float32) / 255.0
    out = out.astype(np.float32, copy=False)
    if out.ndim == 2:
        out = np.repeat(out[:, :, None], 3, axis=2)
    if out.shape[:2] != (height, width):
        import cv2

        out = cv2.resize(out, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0)


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """Apply a named corruption at severity 1..5, deterministically for a given ``seed``.

    ``name`` is ``"imagecorruptions/<name>"`` (any of its 19: gaussian_noise, shot_noise,
    impulse_noise, defocus_blur, glass_blur, motion_blur, zoom_blur, snow, frost, fog,
    brightness, contrast, elastic_transform, pixelate, jpeg_compression, speckle_noise,
    gaussian_blur, spatter, saturate; severity is the package's own 1..5, images at least
    32 px a side; the input is quantised to uint8 as the package expects) or
    ``"albumentations/<Transform>"``, built with ``p=1`` inside ``A.Compose(seed=seed)``
    with these albumentations 2.x arguments per severity 1 / 2 / 3 / 4 / 5 ("x" means the
    range (x, x), so the severity alone sets the strength):

    ======================== ================================================================
    Transform                Severity 1 / 2 / 3 / 4 / 5
    ======================== ================================================================
    RandomFog                fog_coef_range x = 0.2 / 0.35 / 0.5 / 0.65 / 0.8; alpha_coef 0.08
    RandomRain               rain_type drizzle / default / heavy / torrential / torrential;
                             brightness_coefficient 0.9 / 0.8 / 0.7 / 0.6 / 0.5
    RandomSnow               snow_point_range x = 0.1 / 0.2 / 0.3 / 0.4 / 0.5;
                             brightness_coeff 2.5, method bleach
    RandomShadow             num_shadows_limit x = 1 / 1 / 2 / 2 / 3; shadow_intensity_range
                             x = 0.3 / 0.4 / 0.5 / 0.6 / 0.7; shadow_roi whole image
    RandomSunFlare           src_radius = 0.05 / 0.1 / 0.15 / 0.2 / 0.3 x max(H, W) px;
                             num_flare_circles_range (2,4) / (4,6) / (6,8) / (8,10) / (10,12);
                             flare_roi top half
    GaussNoise               std_range x = 0.08 / 0.12 / 0.18 / 0.26 / 0.38 (as
                             imagecorruptions' gaussian_noise)
    MotionBlur               blur_limit x = 5 / 9 / 13 / 17 / 23 px
    ISONoise                 color_shift x = 0.01 / 0.02 / 0.03 / 0.04 / 0.05;
                             intensity x = 0.1 / 0.2 / 0.3 / 0.4 / 0.5
    Downscale                scale_range x = 0.6 / 0.5 / 0.4 / 0.3 / 0.25 (as pixelate)
    ImageCompression         jpeg, quality_range x = 25 / 18 / 15 / 10 / 7 (as
                             jpeg_compression)
    RandomBrightnessContrast brightness_limit (-b, b), contrast_limit x = -b, with
                             b = 0.1 / 0.2 / 0.3 / 0.4 / 0.5 (always lower contrast)
    ======================== ================================================================

    Returns ``float32`` (H, W, 3) in [0, 1] with the input's H and W.
    """
    image = as_float_image(image)
    library, transform = _check_corruption_name(name)
    severity = _check_severity(severity)
    if not isinstance(seed, int | np.integer) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    height, width = image.shape[:2]
    if library == "imagecorruptions":
        out = _ic().get_corruption(transform)(to_uint8(image), severity, seed)
    else:
        A = _albumentations()
        kwargs = _ALB_SPECS[transform](severity, height, width)
        pipeline = A.Compose([getattr(A, transform)(p=1.0, **kwargs)], seed=seed)
        out = pipeline(image=np.ascontiguousarray(np.clip(image, 0.0, 1.0)))["image"]
    return _fit(out, height, width)
