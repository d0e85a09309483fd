"""imagecorruptions 1.1.2 (Michaelis et al., 2019) made to run on today's stack.

The package (last released 2020) breaks in three places, all fixed here without touching
anything outside its own module namespace:

- it imports ``pkg_resources`` (gone from current setuptools) only for
  ``resource_filename``, which locates its frost images. A throwaway ``pkg_resources``
  module sits in ``sys.modules`` during the import only; its ``resource_filename`` resolves
  paths inside the package's own folder.
- ``glass_blur`` and ``gaussian_blur`` pass scikit-image's removed ``multichannel=True``
  to ``skimage.filters.gaussian``; the module gets a ``gaussian`` that maps it to
  ``channel_axis=-1``.
- ``fog`` uses ``np.float_`` (removed in numpy 2); the module gets its own numpy proxy in
  which ``float_`` is ``float64``. The real numpy is left alone.

It also draws from numpy's *global* RNG. :func:`get_corruption` returns callables that
seed that RNG from a per-call seed and put the previous global state back afterwards, so
results depend only on (image, severity, seed) and callers' global RNG streams are
undisturbed. (This is not thread-safe: two threads corrupting at once share the global
RNG. Use processes for parallelism.)
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import skimage
import skimage.color
import skimage.util
from PIL import Image
from skimage.filters import gaussian as _sk_gaussian

__all__ = ["CORRUPTIONS", "MIN_SIDE", "get_corruption"]

# imagecorruptions rejects smaller images, and several corruptions genuinely need that size.
MIN_SIDE = 32


def _resource_filename(package_or_requirement: str, resource_name: str) -> str:
    """``pkg_resources.resource_filename`` for a package's own files."""
    mod = sys.modules.get(package_or_requirement)
    if mod is not None and getattr(mod, "__file__", None):
        base = os.path.dirname(mod.__file__)
    else:
        spec = importlib.util.find_spec(package_or_requirement.split(".")[0])
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"cannot locate package {package_or_requirement!r}")
        base = list(spec.submodule_search_locations)[0]
    return os.path.normpath(os.path.join(base, resource_name))


@contextlib.contextmanager
def _fake_pkg_resources() -> Iterator[None]:
    sentinel = object()
    previous = sys.modules.get("pkg_resources", sentinel)
    fake = types.ModuleType("pkg_resources")
    fake.resource_filename = _resource_filename  # type: ignore[attr-defined]
    sys.modules["pkg_resources"] = fake
    try:
        yield
    finally:
        if previous is sentinel:
            sys.modules.pop("pkg_resources", None)
        else:
            sys.modules["pkg_resources"] = previous  # type: ignore[assignment]


def _gaussian(image: Any, *args: Any, multichannel: bool | None = None, **kwargs: Any) -> Any:
    """``skimage.filters.gaussian`` accepting the old ``multichannel`` flag."""
    if multichannel is not None and "channel_axis" not in kwargs:
        kwargs["channel_axis"] = -1 if multichannel else None
    return _sk_gaussian(image, *args, **kwargs)


class _ModuleProxy(types.ModuleType):
    """A module seen through a few overridden attributes, for one legacy module only."""

    def __init__(self, module: types.ModuleType, **overrides: Any) -> None:
        super().__init__(module.__name__)
        self._module = module
        self._overrides = overrides

    def __getattr__(self, name: str) -> Any:
        if name in self._overrides:
            return self._overrides[name]
        return getattr(self._module, name)


def _random_noise(image: Any, *args: Any, rng: Any = None, **kwargs: Any) -> Any:
    """``skimage.util.random_noise`` drawing from numpy's (seeded) global RNG.

    Without ``rng`` scikit-image uses a fresh, OS-seeded generator, which made
    ``impulse_noise`` differ on every call whatever the seed.
    """
    if rng is None:
        rng = np.random.randint(0, 2**31 - 1)
    return skimage.util.random_noise(image, *args, rng=rng, **kwargs)


def _load() -> tuple[types.ModuleType, dict[str, Callable[..., Any]]]:
    with _fake_pkg_resources(), warnings.catch_warnings():
        # scipy.ndimage.interpolation is a deprecated alias module.
        warnings.simplefilter("ignore", DeprecationWarning)
        import imagecorruptions
        import imagecorruptions.corruptions as corruptions_mod
    corruptions_mod.gaussian = _gaussian
    # numpy 2 removed these aliases; give them back to this module only.
    corruptions_mod.np = _ModuleProxy(np, float_=np.float64, complex_=np.complex128)
    corruptions_mod.sk = _ModuleProxy(
        skimage, util=_ModuleProxy(skimage.util, random_noise=_random_noise), color=skimage.color
    )
    return corruptions_mod, dict(imagecorruptions.corruption_dict)


_MODULE, _FUNCS = _load()

#: All 19 corruption names, in imagecorruptions' own order (15 common, 4 validation).
CORRUPTIONS: tuple[str, ...] = tuple(_FUNCS)


@contextlib.contextmanager
def _seeded_global_rng(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG for the block, then restore whatever state it had."""
    saved = np.random.get_state()
    # Any non-negative int (also > 2**32) gives a well-mixed MT19937 state.
    state = np.random.RandomState(np.random.MT19937(np.random.SeedSequence(int(seed))))
    np.random.set_state(state.get_state())
    try:
        yield
    finally:
        np.random.set_state(saved)


def _to_float_hw3(out: Any, height: int, width: int) -> np.ndarray:
    """Corruption output (PIL image or float array in [0, 255]) -> float32 (H, W, 3) in [0, 1]."""
    if isinstance(out, Image.Image):
        if out.mode != "RGB":
            out = out.convert("RGB")
        if out.size != (width, height):
            out = out.resize((width, height), Image.BILINEAR)
        arr = np.asarray(out, dtype=np.float32)
    else:
        arr = np.asarray(out, dtype=np.float32)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        if arr.shape[:2] != (height, width):
            import cv2

            arr = cv2.resize(arr, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.clip(arr / 255.0, 0.0, 1.0).astype(np.float32, copy=False)


def get_corruption(name: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """A deterministic corruption ``fn(image, severity, seed)``.

    ``image`` is ``uint8`` (H, W, 3) with H, W >= 32; ``severity`` is 1..5. The result is
    ``float32`` (H, W, 3) in [0, 1] (the raw output is kept in float, not truncated to
    ``uint8`` as ``imagecorruptions.corrupt`` does), resized back to (H, W) if the
    corruption changed the size.
    """
    if name not in _FUNCS:
        raise ValueError(f"unknown imagecorruptions corruption {name!r}; valid: {', '.join(CORRUPTIONS)}")
    func = _FUNCS[name]

    def corrupt(image: np.ndarray, severity: int, seed: int) -> np.ndarray:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected uint8 (H, W, 3), got {image.dtype} {image.shape}")
        height, width = image.shape[:2]
        if min(height, width) < MIN_SIDE:
            raise ValueError(
                f"imagecorruptions needs images of at least {MIN_SIDE} px a side, got {height}x{width}"
            )
        if int(severity) not in (1, 2, 3, 4, 5):
            raise ValueError(f"severity must be 1..5, got {severity}")
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        with _seeded_global_rng(seed):
            out = func(Image.fromarray(np.ascontiguousarray(image)), int(severity))
        return _to_float_hw3(out, height, width)

    corrupt.__name__ = f"corrupt_{name}"
    corrupt.__doc__ = (
        f"imagecorruptions {name}(image uint8 (H, W, 3), severity 1..5, seed) -> float32 [0, 1]."
    )
    return corrupt
