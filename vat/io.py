"""File I/O with two guarantees: writes are atomic, and images come back as plain RGB.

Atomic: every writer goes through :func:`atomic_path`, which writes a temporary file in
the destination folder and renames it into place only when the write succeeded, so a
killed stage never leaves a half-written file under a final name; a stage's folders are
swapped in together by :func:`atomic_dirs` (both in :mod:`vat.atomic`).

Images: :func:`load_rgb` returns ``uint8`` ``(H, W, 3)`` whatever the file holds
(grayscale, palette, RGBA, 16-bit, CMYK), applies EXIF orientation unless told not to,
and turns a truncated or corrupt file into a :class:`~vat.errors.DataError` naming it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vat.atomic import atomic_dir, atomic_dirs, atomic_path, final_names, rebase  # noqa: F401 (writers use vat.io)
from vat.errors import DataError


def write_json(obj: object, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(text: str, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def save_npy(array: np.ndarray, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, array)


def save_torch(obj: object, path: str | Path) -> None:
    """``torch.save(obj)`` to ``path`` atomically, with the same bytes for the same ``obj``.

    Saved to a path, torch names the archive's inner folder after the file, here a random
    temporary name: equal checkpoints would differ in bytes, and DVC would rerun every stage
    after a rerun one. Through a file object the folder is always ``archive``.
    """
    import torch

    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(obj, f)


def load_npy(path: str | Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except (ValueError, OSError, EOFError) as e:
        raise DataError(f"{path}: not a readable .npy array ({e})") from e


def save_png(image: np.ndarray, path: str | Path) -> None:
    """Write ``uint8`` ``(H, W, 3)`` or ``(H, W)`` losslessly; same array, same bytes."""
    if image.dtype != np.uint8:
        raise TypeError(f"save_png expects uint8, got {image.dtype}")
    with atomic_path(path) as tmp:
        # No metadata and a fixed compression level keep the bytes a function of the pixels.
        Image.fromarray(image).save(tmp, format="PNG", compress_level=6)


def open_image(path: str | Path) -> Image.Image:
    """PIL's own Image.open: ultralytics replaces it with one that tries to pip-install a
    HEIF plugin whenever a file is not an image, which hides the real error offline."""
    patches = sys.modules.get("ultralytics.utils.patches")
    return getattr(patches, "_image_open", Image.open)(path)


def image_size(path: str | Path, exif: bool = True) -> tuple[int, int]:
    """(width, height) as :func:`load_rgb` would return it, reading only the header."""
    try:
        with open_image(path) as im:
            w, h = im.size
            if exif and _exif_swaps_axes(im):
                w, h = h, w
            return w, h
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file not found") from e
    except (UnidentifiedImageError, OSError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from e


def _exif_swaps_axes(im: Image.Image) -> bool:
    try:
        orientation = im.getexif().get(0x0112, 1)
    except Exception:  # a broken EXIF block must not hide a good image
        return False
    return orientation in (5, 6, 7, 8)


def exif_orientation(path: str | Path) -> int:
    """EXIF orientation tag (1 = upright) or 1 when absent."""
    try:
        with open_image(path) as im:
            return int(im.getexif().get(0x0112, 1))
    except Exception:
        return 1


def load_rgb(path: str | Path, exif: bool = True) -> np.ndarray:
    """Decode an image file fully into ``uint8`` ``(H, W, 3)`` RGB."""
    try:
        with open_image(path) as im:
            im.load()  # decode now so a truncated file fails here, naming the path
            if exif:
                im = ImageOps.exif_transpose(im)
            return _to_rgb8(im)
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file not found") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: truncated or corrupt image ({e})") from e


def _to_rgb8(im: Image.Image) -> np.ndarray:
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        a = np.asarray(im).astype(np.float64)
        # 16-bit and 32-bit grayscale: scale by the type's range, not the image's, so
        # brightness is kept (a dark 16-bit image stays dark).
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        if mode == "F":
            top = 1.0 if a.max() <= 1.0 else a.max()
        a = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(a[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        # Composite on black: drop alpha without inventing a background colour.
        im = im.convert("RGBA")
        a = np.asarray(im).astype(np.float32)
        rgb = a[:, :, :3] * (a[:, :, 3:4] / 255.0)
        return np.round(rgb).astype(np.uint8)
    if mode != "RGB":
        im = im.convert("RGB")
    return np.ascontiguousarray(np.asarray(im, dtype=np.uint8))


def to_float(image: np.ndarray) -> np.ndarray:
    """``uint8`` (H, W, 3) -> float32 in [0, 1]."""
    return image.astype(np.float32) / 255.0


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float in [0, 1] -> ``uint8`` with rounding (clipped)."""
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def as_float_image(image: np.ndarray) -> np.ndarray:
    """Check an (H, W, 3) float image in [0, 1]; return it as float32 (no copy if already)."""
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) image, got shape {image.shape}")
    if not np.issubdtype(image.dtype, np.floating):
        raise TypeError(f"expected a float image in [0, 1], got {image.dtype} (convert with vat.io.to_float)")
    return image.astype(np.float32, copy=False)
