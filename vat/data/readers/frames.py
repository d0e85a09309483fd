"""Image files and the frame their boxes are in: decoded once, converted when needed, EXIF
orientation applied, boxes clipped to the image.

The EXIF rule (data/README.md says it to users). Every image is used as viewers display it:
its EXIF orientation applied, here, in every reader, in every later stage and in ``vat
translate`` (:func:`vat.io.load_rgb`). Boxes are read in that displayed frame, the one the
annotation tools draw in: CVAT (since 2.0, cvat-ai/cvat#4529), LabelImg (since 1.8.4,
HumanSignal/labelImg#650), labelme (wkentaro/labelme#305), and ultralytics, which sizes
labels with ``exif_size`` and decodes with OpenCV's EXIF-applying ``imread``. One case is
told apart, not guessed: an annotation that states the *stored* size of an image whose
orientation swaps its axes (orientations 5-8) was drawn on the stored pixels (LabelImg
before 1.8.4 did so); its boxes are turned into the displayed frame with the image. Both
counts are reported.

Boxes: a box partly outside the image is clipped to it, counted and listed
(``ReadReport.clipped``); one fully outside, of zero area or with a coordinate that is not
a finite number is a bad box (stop, or skip and count).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from vat.errors import DataError
from vat.io import bits_per_channel, exif_orientation_of, load_rgb, open_image, save_png

if TYPE_CHECKING:
    from vat.data.readers.common import RawItem, ReadContext

SWAPS_AXES = (5, 6, 7, 8)  # EXIF orientations whose displayed image is the stored one transposed


@dataclass
class CheckedImage:
    path: str  # the file later stages read (the original, or its converted copy)
    width: int  # as displayed
    height: int
    orientation: int = 1  # EXIF orientation of the file (1: upright, or none)
    stored_frame: bool = False  # the annotation's boxes are in the stored frame: turn them
    stored_size: tuple[int, int] = (0, 0)  # (width, height) of the stored pixels


def turn_box(box: tuple[float, float, float, float], orientation: int, stored: tuple[int, int]):
    """A box (x1, y1, x2, y2) on the stored pixels of a ``stored`` = (W, H) image -> the same
    box on the image as displayed under EXIF ``orientation`` (what :func:`vat.io.load_rgb` shows)."""
    w, h = stored
    x1, y1, x2, y2 = box
    corners = {
        1: (x1, y1, x2, y2),
        2: (w - x2, y1, w - x1, y2),  # mirrored left-right
        3: (w - x2, h - y2, w - x1, h - y1),  # turned 180
        4: (x1, h - y2, x2, h - y1),  # mirrored top-bottom
        5: (y1, x1, y2, x2),  # transposed
        6: (h - y2, x1, h - y1, x2),  # turned 90 clockwise to display
        7: (h - y2, w - x2, h - y1, w - x1),  # transversed
        8: (y1, w - x2, y2, w - x1),  # turned 90 counter-clockwise to display
    }
    return corners[orientation]


def clip_box(x1: float, y1: float, x2: float, y2: float, width: int, height: int) -> tuple[float, ...] | str:
    """The box clipped to the image (float32-exact), or the reason it cannot be kept."""
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        return "has a coordinate that is not a finite number"
    if x2 <= x1 or y2 <= y1:
        return "has zero or negative area"
    if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
        return f"lies fully outside the {width}x{height} image"
    c = [float(np.float32(v)) for v in (max(x1, 0.0), max(y1, 0.0), min(x2, width), min(y2, height))]
    if c[2] <= c[0] or c[3] <= c[1]:
        return f"has zero area after clipping to the {width}x{height} image"
    return tuple(c)


def check_image(item: RawItem, image_id: str, ctx: ReadContext) -> CheckedImage | None:
    """Decode the image once; convert it if needed; None when it was skipped."""
    src = item.image_path
    if item.array is not None:
        dst = Path(ctx.convert_dir) / f"{image_id}.png"
        save_png(np.ascontiguousarray(item.array), dst)
        return CheckedImage(str(dst), int(item.array.shape[1]), int(item.array.shape[0]))
    if not src.is_file():
        where = item.ann_path if item.ann_path is not None else src
        ctx.fail(f"{where}: names image {src}, which does not exist")
        return None
    try:
        with open_image(src) as im:
            deep = bits_per_channel(im)  # first: reading a PNG's EXIF decodes it, which drops the tile info
            mode, stored, orientation = im.mode, im.size, exif_orientation_of(im)
        pixels = load_rgb(src)
    except DataError as e:
        ctx.fail(str(e))
        return None
    height, width = pixels.shape[:2]
    turned = orientation in SWAPS_AXES and item.declared_size == stored
    reasons = [f"mode {mode}" + (" (alpha dropped)" if "A" in mode else "")] if mode != "RGB" else []
    if deep == 16 and not mode.startswith("I;16"):
        reasons.append("16 bits per channel")
    if orientation != 1:
        ctx.report.n_exif_oriented += 1
        ctx.report.n_exif_stored_frame += turned
        frame = f"boxes turned from the stored {stored[0]}x{stored[1]} frame the annotation states"
        reasons.append(
            f"EXIF orientation {orientation} applied, " + (frame if turned else "boxes as displayed")
        )
    image = CheckedImage(str(src), width, height, orientation, turned, stored)
    if reasons:
        dst = Path(ctx.convert_dir) / f"{image_id}.png"
        save_png(pixels, dst)
        ctx.report.converted.append(f"{src}: {', '.join(reasons)} -> {dst}")
        image.path = str(dst)
    return image
