"""File I/O with two guarantees: writes are atomic, and images come back as plain RGB.

Atomic: every writer goes through :func:`atomic_path`, which writes a temporary file in
the destination folder and renames it into place only when the write succeeded, so a
killed stage never leaves a half-written file under a final name; a stage's folders are
swapped in together by :func:`atomic_dirs` (both in :mod:`vat.atomic`).

Images: :func:`load_rgb` returns ``uint8`` ``(H, W, 3)`` whatever the file holds
(grayscale, palette, RGBA, 16 bits per channel, CMYK), applies EXIF orientation unless told
not to, and turns a truncated, corrupt or oversized file into a
:class:`~vat.errors.DataError` naming it. The rules (data/README.md says them to users):

- EXIF orientation: applied, so an image is used as viewers display it (the frame the
  annotation tools draw boxes in: :mod:`vat.data.readers.common`);
- alpha: dropped, the colour kept as stored (OpenCV's ``imread``, which ultralytics trains
  with, and Pillow's ``convert("RGB")`` do the same); no background colour is invented;
- 16 bits per channel (grey, 48-bit RGB, 64-bit RGBA): scaled by the type's range,
  ``round(v * 255 / 65535)``, so a dark image stays dark;
- size: Pillow's decompression-bomb limit (``Image.MAX_IMAGE_PIXELS``) stops a file whose
  header claims more pixels than that.

Text: :func:`read_text` reads UTF-8 (a BOM is allowed) and names the file, line and byte of
anything else.
"""

from __future__ import annotations

import json
import re
import sys
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

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


def read_text(path: str | Path) -> str:
    """A UTF-8 text file (a leading BOM allowed); DataError naming the file, and the line and
    byte, when it is missing, unreadable or not UTF-8 (Latin-1, UTF-16, binary)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as e:
        raise DataError(f"{path}: file not found") from e
    except OSError as e:
        raise DataError(f"{path}: not readable ({_first_line(e)})") from e
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise DataError(f"{path}: {not_utf8(data[e.start], line)}") from e


def not_utf8(byte: int, line: int) -> str:
    """The problem of a text file with ``byte`` on ``line`` that UTF-8 cannot decode."""
    return f"line {line}: not UTF-8 text (byte 0x{byte:02x}; a Latin-1 or binary file?): save it as UTF-8"


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
        # No metadata and a fixed compression level keep the bytes a function of the pixels;
        # level 1: 4x faster to write than the default 6 for files ~13 % larger (256 x 192 px).
        Image.fromarray(image).save(tmp, format="PNG", compress_level=1)


# Pillow refuses (DecompressionBombError) a header claiming more than twice its
# MAX_IMAGE_PIXELS (about 179 million pixels) and only warns below that; we refuse the same
# files, with one line naming the file, and decode the rest without the warning.
def max_pixels() -> int:
    return 2 * int(Image.MAX_IMAGE_PIXELS or 0) or 1 << 62


def open_image(path: str | Path) -> Image.Image:
    """PIL's own Image.open (ultralytics replaces it with one that tries to pip-install a
    HEIF plugin whenever a file is not an image, which hides the real error offline), with
    every failure a DataError naming the file: missing, not an image, or a header claiming
    more pixels than :func:`max_pixels`."""
    patches = sys.modules.get("ultralytics.utils.patches")
    opener = getattr(patches, "_image_open", Image.open)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return opener(path)
    except FileNotFoundError as e:
        raise DataError(f"{path}: image file not found") from e
    except Image.DecompressionBombError as e:
        size = re.search(r"\((\d+) pixels\)", str(e))
        claimed = f"{int(size.group(1)):,} pixels" if size else "too many pixels"
        raise DataError(
            f"{path}: oversized image: its header claims {claimed}, more than the "
            f"{max_pixels():,} Pillow decodes (a decompression-bomb guard)"
        ) from e
    except UnidentifiedImageError as e:  # its text only repeats the path
        empty = Path(path).is_file() and Path(path).stat().st_size == 0
        raise DataError(f"{path}: " + ("empty file (0 bytes), not an image file" if empty else
                                       "not an image file Pillow can read")) from e  # fmt: skip
    except (OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not an image file Pillow can read ({_first_line(e)})") from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def image_size(path: str | Path, exif: bool = True) -> tuple[int, int]:
    """(width, height) as :func:`load_rgb` would return it, reading only the header."""
    with open_image(path) as im:
        w, h = im.size
        if exif and exif_orientation_of(im) in (5, 6, 7, 8):
            w, h = h, w
        return w, h


def exif_orientation_of(im: Image.Image) -> int:
    """EXIF orientation tag of an open image (1 = upright; 1 when absent or unreadable)."""
    try:
        value = int(im.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not hide a good image
        return 1
    return value if 1 <= value <= 8 else 1


def exif_orientation(path: str | Path) -> int:
    """EXIF orientation tag of an image file (1 = upright) or 1 when absent."""
    try:
        with open_image(path) as im:
            return exif_orientation_of(im)
    except DataError:
        return 1


def bits_per_channel(im: Image.Image) -> int:
    """16 for an image Pillow decodes from 16 bits per channel (it keeps only the high byte of
    48-bit RGB and 64-bit RGBA), else 8; read from the open file's decoder arguments."""
    if im.mode.startswith("I;16"):
        return 16
    for tile in getattr(im, "tile", None) or []:
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return 16
    return 8


def load_rgb(path: str | Path, exif: bool = True) -> np.ndarray:
    """Decode an image file fully into ``uint8`` ``(H, W, 3)`` RGB (rules: module docstring)."""
    with open_image(path) as im:
        deep = bits_per_channel(im) == 16 and im.mode in ("RGB", "RGBA")
        orientation = exif_orientation_of(im) if exif else 1
        try:
            im.load()  # decode now so a truncated file fails here, naming the path
            pixels = _deep_rgb8(path) if deep else None
            if pixels is None:
                return _to_rgb8(_oriented(im, orientation))
        except (OSError, SyntaxError, ValueError, EOFError) as e:
            raise DataError(f"{path}: truncated or corrupt image ({_first_line(e)})") from e
    return np.ascontiguousarray(np.asarray(_oriented(Image.fromarray(pixels), orientation)))


class ImageCache:
    """:func:`load_rgb` that keeps what it decoded, up to ``max_bytes`` (then it only loads):
    for a split read once per method (``vat evaluate``: every translator reads the same test
    images). Fill-until-full rather than LRU: a split larger than the budget read in the same
    order each time would evict every image before its next read. The arrays are read-only."""

    def __init__(self, max_bytes: int = 512 << 20) -> None:
        self.max_bytes = max_bytes
        self.used = 0
        self._images: dict[str, np.ndarray] = {}

    def __call__(self, path: str | Path) -> np.ndarray:
        key = str(path)
        image = self._images.get(key)
        if image is None:
            image = load_rgb(path)
            if self.used + image.nbytes <= self.max_bytes:
                image.flags.writeable = False  # shared by every later read
                self._images[key] = image
                self.used += image.nbytes
        return image


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}  # EXIF orientation -> the transpose that shows the image upright (ImageOps.exif_transpose's)


def _oriented(im: Image.Image, orientation: int) -> Image.Image:
    return im.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else im


def _deep_rgb8(path: str | Path) -> np.ndarray | None:
    """16-bit-per-channel colour through OpenCV (Pillow keeps only the high byte), rounded to
    8 bits, alpha dropped; None when OpenCV cannot read it (Pillow's high byte is used then)."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8)
    a = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if a is None or a.dtype != np.uint16 or a.ndim != 3 or a.shape[2] not in (3, 4):
        return None
    rgb = a[:, :, 2::-1].astype(np.float64)  # BGR(A) -> RGB, alpha dropped
    return np.round(rgb * (255.0 / 65535.0)).astype(np.uint8)


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
    if mode in ("LA", "La"):
        im = im.convert("L")  # alpha dropped, as for RGBA (module docstring)
    if mode != "RGB":
        im = im.convert("RGB")  # RGBA, PA, P with transparency: alpha dropped, colour as stored
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
