"""Drawing in metres: :class:`_Painter` (one object on a local canvas with its coverage mask,
cv2 fixed-point coordinates) and :func:`_tint_ellipse` (shadows and stains on the image)."""

from __future__ import annotations

import math

import cv2
import numpy as np

_SHIFT = 4  # cv2 fixed-point bits
_ONE = 1 << _SHIFT


class _Painter:
    """Draws one object in metres onto a local canvas (colour + coverage mask).

    Object coordinates: x to the right of the object's anchor (its base centre, plus
    ``ox``), y up from the ground. ``flip`` mirrors x (object faces left).
    """

    def __init__(self, xa, ya, s, half_w, top, flip, frame: tuple[int, int] | None, bottom=0.05):
        x0 = int(math.floor(xa - half_w * s)) - 2
        x1 = int(math.ceil(xa + half_w * s)) + 3
        y0 = int(math.floor(ya - top * s)) - 2
        y1 = int(math.ceil(ya + bottom * s)) + 3
        if frame is not None:
            x0, y0 = max(x0, 0), max(y0, 0)
            x1, y1 = min(x1, frame[0]), min(y1, frame[1])
        self.x0, self.y0 = x0, y0
        self.w, self.h = max(x1 - x0, 0), max(y1 - y0, 0)
        self.img = np.zeros((self.h, self.w, 3), np.uint8)
        self.mask = np.zeros((self.h, self.w), np.uint8)
        self.ax, self.ay = xa - x0, ya - y0
        self.s = s
        self.sx = -s if flip else s
        self.ox = 0.0

    def pts(self, seq) -> np.ndarray:
        ax, ay, ox, sx, s = self.ax, self.ay, self.ox, self.sx, self.s
        return np.array(
            [(round((ax + (float(x) + ox) * sx) * _ONE), round((ay - float(y) * s) * _ONE)) for x, y in seq],
            np.int32,
        )

    def pt(self, x, y) -> tuple[int, int]:
        return (
            int(round((self.ax + (x + self.ox) * self.sx) * _ONE)),
            int(round((self.ay - y * self.s) * _ONE)),
        )

    def thick(self, metres: float) -> int:
        return max(1, int(round(metres * self.s)))

    def poly(self, seq, color) -> None:
        p = [self.pts(seq)]
        cv2.fillPoly(self.img, p, color, cv2.LINE_8, _SHIFT)
        cv2.fillPoly(self.mask, p, 255, cv2.LINE_8, _SHIFT)

    def rect(self, x1, y1, x2, y2, color) -> None:
        self.poly([(x1, y1), (x2, y1), (x2, y2), (x1, y2)], color)

    def circle(self, x, y, r, color, width: float | None = None) -> None:
        c = self.pt(x, y)
        rr = max(int(round(r * self.s * _ONE)), _ONE // 2)
        t = -1 if width is None else self.thick(width)
        cv2.circle(self.img, c, rr, color, t, cv2.LINE_8, _SHIFT)
        cv2.circle(self.mask, c, rr, 255, t, cv2.LINE_8, _SHIFT)

    def ellipse(self, x, y, ax, ay, color, angle: float = 0.0) -> None:
        c = self.pt(x, y)
        axes = (
            max(int(round(ax * self.s * _ONE)), _ONE // 2),
            max(int(round(ay * self.s * _ONE)), _ONE // 2),
        )
        ang = -angle if self.sx > 0 else angle
        cv2.ellipse(self.img, c, axes, ang, 0.0, 360.0, color, -1, cv2.LINE_8, _SHIFT)
        cv2.ellipse(self.mask, c, axes, ang, 0.0, 360.0, 255, -1, cv2.LINE_8, _SHIFT)

    def line(self, p, q, width, color) -> None:
        a, b = self.pt(*p), self.pt(*q)
        t = self.thick(width)
        cv2.line(self.img, a, b, color, t, cv2.LINE_8, _SHIFT)
        cv2.line(self.mask, a, b, 255, t, cv2.LINE_8, _SHIFT)

    def path(self, seq, width, color) -> None:
        p = [self.pts(seq)]
        t = self.thick(width)
        cv2.polylines(self.img, p, False, color, t, cv2.LINE_8, _SHIFT)
        cv2.polylines(self.mask, p, False, 255, t, cv2.LINE_8, _SHIFT)

    # Nine arguments: the rectangle (4), the grid (2), the lit fraction (2) and the colours.
    def cells(self, x1, y1, x2, y2, nx, ny, fx, fy, colours: np.ndarray) -> None:
        """A grid of nx x ny window cells inside the rectangle; each cell's lit part is a
        fraction fx x fy of it, coloured colours[iy, ix] (iy = 0 at the top). Vectorised."""
        (ax, ay), (bx, by) = self.pts([(x1, y2), (x2, y1)]) / _ONE
        cx0, cx1 = sorted((ax, bx))
        cy0, cy1 = ay, by
        cols = np.arange(max(int(cx0), 0), min(int(math.ceil(cx1)), self.w))
        rows = np.arange(max(int(cy0), 0), min(int(math.ceil(cy1)), self.h))
        if cols.size == 0 or rows.size == 0:
            return
        gx = (cols + 0.5 - cx0) / max(cx1 - cx0, 1e-6) * nx
        gy = (rows + 0.5 - cy0) / max(cy1 - cy0, 1e-6) * ny
        inx = (gx - np.floor(gx) > (1 - fx) / 2) & (gx - np.floor(gx) < (1 + fx) / 2) & (gx >= 0) & (gx < nx)
        iny = (gy - np.floor(gy) > (1 - fy) / 2) & (gy - np.floor(gy) < (1 + fy) / 2) & (gy >= 0) & (gy < ny)
        cols, gx = cols[inx], gx[inx]
        rows, gy = rows[iny], gy[iny]
        if cols.size == 0 or rows.size == 0:
            return
        ix = np.clip(gx.astype(np.int64), 0, nx - 1)
        iy = np.clip(gy.astype(np.int64), 0, ny - 1)
        self.img[np.ix_(rows, cols)] = colours[iy[:, None], ix[None, :]]
        self.mask[np.ix_(rows, cols)] = 255


def _tint_ellipse(img: np.ndarray, cx: float, cy: float, ax: float, ay: float, k: float) -> None:
    """Multiply the pixels inside an axis-aligned ellipse by k (shadows, stains)."""
    H, W = img.shape[:2]
    x0, x1 = int(max(cx - ax - 1, 0)), int(min(cx + ax + 2, W))
    y0, y1 = int(max(cy - ay - 1, 0)), int(min(cy + ay + 2, H))
    if x1 <= x0 or y1 <= y0:
        return
    m = np.zeros((y1 - y0, x1 - x0), np.uint8)
    c = (int((cx - x0) * _ONE), int((cy - y0) * _ONE))
    cv2.ellipse(m, c, (int(ax * _ONE), int(ay * _ONE)), 0.0, 0.0, 360.0, 1, -1, cv2.LINE_8, _SHIFT)
    sub = img[y0:y1, x0:x1]
    sel = m.astype(bool)
    sub[sel] = np.clip(sub[sel] * k, 0, 255).astype(np.uint8)
