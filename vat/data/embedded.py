"""The embedded default dataset: synthetic road scenes with exact boxes and per-pixel depth.

What a scene contains
---------------------
A road seen from a camera at human or dashcam height: sky (gradient and clouds) above a
horizon row, ground below it (asphalt road with lane markings and sometimes a zebra
crossing, curbs, paved sidewalks, grass or gravel beyond), a skyline of buildings or a
distant tree line on the horizon, and upright objects standing on the ground:

* **targets**, the five classes of :data:`EMBEDDED_CLASSES` (the order of
  ``vat.data.classes.TASK_CLASSES["haze"]``): bicycle, bus, car, motorbike, person. Cars and
  buses are drawn from the side or from the back/front, bicycles and motorbikes from the
  side, people walking (side) or standing (front), each facing left or right, with
  randomised colours and a +-12 % size variation around real sizes (car 4.2 x 1.5 m,
  bus 11 x 3.2 m, bicycle 1.7 x 1.1 m, motorbike 2.0 x 1.2 m, person 0.5 x 1.75 m).
* **distractors**, which far outnumber the targets (the paper's m << n argument): street
  lamps, traffic lights, signs, trees, bushes, buildings, fences, benches, bins, cones,
  bollards; plus ground clutter (stains, manhole covers) that is not counted.

Camera model and units
----------------------
A pinhole camera with square pixels, looking horizontally (no pitch or roll), at height
``cam_h`` (1.2-1.8 m) above a flat ground. Focal length ``f = 0.9 * width`` px (horizontal
field of view about 58 degrees), principal point at the image centre column and at the
horizon row ``y_h`` (35-50 % of the height from the top). A point on the ground at depth
``z`` metres lies on row ``y = y_h + f * cam_h / z``; an object of height ``h`` metres at
depth ``z`` is ``f * h / z`` px tall. The road runs at a small yaw, so its lane lines
converge to a vanishing point on the horizon that is not always the image centre.

Everything is painted far to near (painter's algorithm). Each object is flat and
upright at one depth, so the depth map holds, per pixel, that object's distance in metres;
ground pixels hold ``f * cam_h / (y - y_h)`` for the row ``y`` of the pixel's sample point,
capped at :data:`MAX_GROUND_DEPTH` (which the distant hills on the horizon also hold); the
sky holds :data:`SKY_DEPTH`. Depth and the instance map are sampled at one supersampled
point per output pixel; the image is the area average.

A target's distance is chosen so that its nominal box size (geometric mean of width and
height) is log-uniform between ``max(1.5 * min_box, 10)`` px and ``0.42 * height`` px (moved
farther if its base would fall below the frame), so boxes shrink with distance and most are
12 px or more on the long side. Targets stand on the road, its edge or the sidewalks
(depending on the class); a placement overlapping an earlier target (IoU > 0.3, or half
inside it) is redrawn, and distractors that would cover 30 % of a farther target's box are
not placed.

Scenes are drawn at :data:`SUPERSAMPLE` times the output size and area-averaged down
(anti-aliasing). A target's box is the bounds of its pixels that are still visible after
all nearer objects are painted, in output pixels at 1 / SUPERSAMPLE px precision; a target
that is less than 40 % visible (occluded or cut by the border) or smaller than
:attr:`SceneSpec.min_box` keeps its pixels but gets no box.

All randomness comes from the generator passed to :func:`render_scene`, so the same spec
and seed give identical arrays.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from vat.data.manifest import Box

EMBEDDED_CLASSES = ["bicycle", "bus", "car", "motorbike", "person"]
BICYCLE, BUS, CAR, MOTORBIKE, PERSON = range(5)

SKY_DEPTH = 1000.0  # metres, the depth map's value for sky pixels
MAX_GROUND_DEPTH = 400.0  # metres, cap of ground depth next to the horizon
SUPERSAMPLE = 2  # internal drawing scale (anti-aliasing)
FOCAL_FRACTION = 0.9  # focal length in px = FOCAL_FRACTION * width
MIN_VISIBLE = 0.4  # a target keeps its box when at least this fraction of it is visible
MAX_TARGET_IOU = 0.3  # target placements overlapping a placed one more than this are rejected

_SHIFT = 4  # cv2 fixed-point bits
_ONE = 1 << _SHIFT


@dataclass(frozen=True)
class SceneSpec:
    """What to draw: image size in px, how many targets and distractors, smallest box."""

    width: int = 320
    height: int = 240
    targets: tuple[int, int] = (1, 5)  # target objects per image, inclusive range
    distractors: tuple[int, int] = (8, 20)  # non-target objects per image, inclusive range
    # A target keeps its box when sqrt(w * h) >= min_box and min(w, h) >= min_box / 2 (px),
    # so a distant pedestrian (narrow, tall) counts while a speck does not.
    min_box: int = 8

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"SceneSpec: image must be at least 32x32 px, got {self.width}x{self.height}")
        for name in ("targets", "distractors"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"SceneSpec.{name} must be (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if self.min_box < 1:
            raise ValueError("SceneSpec.min_box must be at least 1")


@dataclass
class Scene:
    """One rendered scene."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32, metres from the camera; sky = SKY_DEPTH
    boxes: list[Box]  # visible extent of each target, px x1 y1 x2 y2; cls indexes EMBEDDED_CLASSES
    distances: list[float] = field(default_factory=list)  # per box: the target's depth, metres
    # (H, W) int16: index into ``boxes`` of the boxed target seen at each pixel, -1 elsewhere;
    # like ``depth``, sampled at one internal (supersampled) pixel per output pixel.
    instance: np.ndarray | None = None
    n_distractors: int = 0  # non-target objects placed in view
    n_unboxed: int = 0  # targets drawn but left without a box (hidden, cut or too small)


# --------------------------------------------------------------------------------------
# Camera and layout


@dataclass(frozen=True)
class _Camera:
    f: float  # focal length, px (internal, supersampled)
    cx: float  # principal point column
    yh: float  # horizon row
    h: float  # camera height, m
    w: int  # internal width, px
    H: int  # internal height, px

    def project(self, x_world: float, z: float) -> tuple[float, float, float]:
        """(column, ground row, px per metre) of a ground point at lateral x, depth z."""
        s = self.f / z
        return self.cx + x_world * s, self.yh + self.h * s, s


@dataclass(frozen=True)
class _Layout:
    x0: float  # lateral offset of the road centre at z = 0, m (camera is at x = 0)
    tan_yaw: float  # road direction: centre at x0 + tan_yaw * z
    lanes: int
    lane_w: float
    sidewalk: float  # sidewalk width, m
    urban: bool

    @property
    def half_road(self) -> float:
        return self.lanes * self.lane_w / 2

    def world_x(self, u: float, z: float) -> float:
        """Lateral world x of a point u metres right of the road centre at depth z."""
        return self.x0 + self.tan_yaw * z + u


def _c(color) -> tuple[int, int, int]:
    r, g, b = (min(max(int(round(float(v))), 0), 255) for v in color)
    return (r, g, b)


def _jit(rng: np.random.Generator, color, amt: int = 14) -> tuple[int, int, int]:
    d = rng.integers(-amt, amt + 1, 3)
    return _c((color[0] + d[0], color[1] + d[1], color[2] + d[2]))


def _shade(color, k: float) -> tuple[int, int, int]:
    return _c((color[0] * k, color[1] * k, color[2] * k))


def _pick(rng: np.random.Generator, palette: list) -> tuple[int, int, int]:
    return palette[int(rng.integers(len(palette)))]


# --------------------------------------------------------------------------------------
# Background: sky, horizon band, ground


def _sky(img: np.ndarray, cam: _Camera, rng: np.random.Generator) -> None:
    rows = int(math.ceil(cam.yh))
    if rows <= 0:
        return
    overcast = rng.random() < 0.25
    if overcast:
        top = np.array(_jit(rng, (150, 158, 170), 12), np.float32)
        bottom = np.array(_jit(rng, (205, 208, 212), 10), np.float32)
    else:
        top = np.array(_jit(rng, (70, 125, 200), 18), np.float32)
        bottom = np.array(_jit(rng, (190, 212, 232), 12), np.float32)
    # The sky is smooth: compute it at 1/4 resolution and upsample.
    lw, lh = max(cam.w // 4, 8), max(rows // 4, 2)
    t = ((np.arange(lh, dtype=np.float32) + 0.5) / lh) ** 0.7  # 0 top .. 1 horizon
    sky = np.empty((lh, lw, 3), np.float32)
    sky[:] = (top[None, :] * (1 - t[:, None]) + bottom[None, :] * t[:, None])[:, None, :]
    # Clouds: two octaves of smooth noise, thresholded softly.
    amount = rng.uniform(0.0, 1.0) if not overcast else rng.uniform(0.2, 0.5)
    if amount > 0.1:
        n1 = cv2.resize(rng.random((4, 7)).astype(np.float32), (lw, lh), interpolation=cv2.INTER_CUBIC)
        n2 = cv2.resize(rng.random((9, 16)).astype(np.float32), (lw, lh), interpolation=cv2.INTER_CUBIC)
        n = 0.65 * n1 + 0.35 * n2
        c = np.clip((n - (1.0 - 0.55 * amount)) * 4.0, 0, 1) * (0.35 + 0.5 * t[:, None])
        white = np.array(_jit(rng, (245, 245, 248), 6), np.float32)
        sky += (white[None, None, :] - sky) * c[:, :, None]
    img[:rows] = cv2.convertScaleAbs(cv2.resize(sky, (cam.w, rows), interpolation=cv2.INTER_LINEAR))


def _horizon_band(
    img: np.ndarray, depth: np.ndarray, cam: _Camera, rng: np.random.Generator, urban: bool
) -> None:
    """A distant tree line / hills silhouette sitting on the horizon (background, not counted)."""
    if urban and rng.random() < 0.5:
        return
    w = cam.w
    scale = cam.H / 480.0
    prof = cv2.resize(rng.random((1, 12)).astype(np.float32), (w, 1), interpolation=cv2.INTER_CUBIC)[0]
    fine = cv2.resize(rng.random((1, 60)).astype(np.float32), (w, 1), interpolation=cv2.INTER_LINEAR)[0]
    height = (4 + rng.uniform(6, 30) * prof + 5 * fine) * scale
    y1 = int(math.ceil(cam.yh))
    y0 = max(int(math.floor(cam.yh - float(height.max()))) - 1, 0)
    y = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5
    band = y > (cam.yh - height[None, :])
    if not band.any():
        return
    col = np.array(_jit(rng, (70, 105, 70) if rng.random() < 0.7 else (110, 120, 135), 12), np.float32)
    part = img[y0:y1]
    # Mix with the sky colour a little: distant things are paler (aerial perspective).
    part[band] = cv2.convertScaleAbs(0.75 * col[None, :] + 0.25 * part[band].astype(np.float32))
    depth[y0:y1][band] = MAX_GROUND_DEPTH


def _noise_tex(rng: np.random.Generator, n: int = 64, blur: float = 1.0) -> np.ndarray:
    t = rng.standard_normal((n, n)).astype(np.float32)
    if blur > 0:
        t = cv2.GaussianBlur(t, (0, 0), blur, borderType=cv2.BORDER_REFLECT_101)
    return t / (t.std() + 1e-6)


def _ground(img: np.ndarray, depth: np.ndarray, cam: _Camera, lay: _Layout, rng: np.random.Generator) -> None:
    r0 = max(int(math.floor(cam.yh + 0.5)), 0)  # first row whose centre is below the horizon
    if r0 >= cam.H:
        return
    dy = np.arange(r0, cam.H, dtype=np.float32) + np.float32(0.5 - cam.yh)
    z = np.minimum(np.float32(cam.f * cam.h) / dy, np.float32(MAX_GROUND_DEPTH))  # (R,)
    zc = z[:, None]
    xs = np.arange(cam.w, dtype=np.float32) + np.float32(0.5 - cam.cx)
    u = xs[None, :] * (zc / np.float32(cam.f)) - (np.float32(lay.x0) + np.float32(lay.tan_yaw) * zc)
    au = np.abs(u)
    hr = lay.half_road
    curb_out = hr + 0.25
    walk_out = curb_out + lay.sidewalk
    mat = (au >= hr).astype(np.uint8)  # 0 road, 1 curb, 2 sidewalk, 3 beyond
    mat += au >= curb_out
    mat += au >= walk_out

    # Material colours, jittered per image.
    asphalt = _jit(rng, (88, 88, 92) if rng.random() < 0.7 else (110, 108, 104), 10)
    curb = _jit(rng, (175, 172, 165), 10)
    walk = _jit(rng, _pick(rng, [(160, 155, 148), (150, 140, 130), (170, 160, 140), (140, 140, 145)]), 10)
    if lay.urban and rng.random() < 0.5:
        beyond, beyond_amp = _jit(rng, (125, 120, 112), 12), 0.08  # more pavement / plaza
    else:
        beyond = _jit(rng, _pick(rng, [(80, 125, 55), (95, 130, 60), (110, 125, 70), (125, 115, 80)]), 12)
        beyond_amp = 0.2
    lut = np.zeros((1, 256, 3), np.uint8)
    lut[0, :4] = [asphalt, curb, walk, beyond]
    base = cv2.LUT(cv2.merge([mat, mat, mat]), lut)
    amps = np.array([0.07, 0.05, 0.08, beyond_amp], np.float32)

    # World-space texture (perspective-correct, bilinear, wrapping): fine grain (a 64-cell
    # tile of 0.2 m cells) plus large patches, in one 512 x 512 texture read by one remap.
    fine, patches = _noise_tex(rng, 64, 0.8), _noise_tex(rng, 64, 2.5)
    tex_img = np.tile(fine, (8, 8))
    tex_img += 1.3 * cv2.resize(patches, (512, 512), interpolation=cv2.INTER_CUBIC)
    tex = cv2.remap(
        tex_img, u * 5.0, np.broadcast_to(zc * 5.0, u.shape), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
    )
    fac = np.take(amps, mat) * tex
    fac += 1.0
    col = base * fac[:, :, None]

    # Sidewalk tiles, only near where they do not alias.
    near = int(np.searchsorted(-z, -18.0))  # first row nearer than 18 m
    if near < z.size:
        tile = np.float32(rng.uniform(0.5, 0.9))
        un, zn = u[near:], zc[near:]
        tiles = (mat[near:] == 2) & ((np.mod(un, tile) < 0.05) | (np.mod(zn, tile) < 0.05))
        col[near:][tiles] *= 0.8

    # Lane markings, at least ~1.2 internal px wide so distant lines do not vanish.
    white = np.array(_jit(rng, (232, 232, 225), 8), np.float32)
    mw = np.maximum(np.float32(0.075), np.float32(0.6 / cam.f) * zc)
    marks = np.zeros(u.shape, bool)
    if rng.random() < 0.85:
        marks |= np.abs(au - np.float32(hr - 0.35)) < mw
    dashed = np.mod(zc + np.float32(rng.uniform(0, 9)), np.float32(9.0)) < 3.0
    for k in range(1, lay.lanes):
        line = np.abs(u - np.float32(-hr + k * lay.lane_w)) < mw
        if lay.lanes == 2 and rng.random() < 0.35:  # solid yellow centre line
            col[line] = (225, 185, 45)
        else:
            marks |= line & dashed
    if rng.random() < 0.3:  # zebra crossing
        zc0 = rng.uniform(6, 25)
        rows = slice(int(np.searchsorted(-z, -(zc0 + 3.5))), int(np.searchsorted(-z, -zc0)))
        ur = u[rows]
        marks[rows] |= (np.abs(ur) < hr - 0.2) & (np.mod(ur, np.float32(1.1)) < 0.55)
    col[marks] = white
    img[r0:] = cv2.convertScaleAbs(col)
    depth[r0:] = zc


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


def _ground_clutter(img: np.ndarray, cam: _Camera, rng: np.random.Generator) -> None:
    """Stains, patches and manhole covers on the ground: texture, not objects."""
    top = int(math.ceil(cam.yh)) + 3
    if top >= cam.H - 2:
        return
    for _ in range(int(rng.integers(3, 9))):
        y = float(rng.uniform(top, cam.H))
        z = cam.f * cam.h / max(y - cam.yh, 1e-3)
        r = rng.uniform(0.1, 0.4)
        ax = max(r * cam.f / z, 1.0)
        ay = max(r * cam.f * cam.h / (z * z), 0.6)
        _tint_ellipse(img, float(rng.uniform(0, cam.w)), y, ax, ay, rng.uniform(0.82, 1.12))


# --------------------------------------------------------------------------------------
# Painting one object


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


# --------------------------------------------------------------------------------------
# Target drawings (canonical: facing +x; x in 0..L for side views via ox = -L/2)

_CAR_COLOURS = [
    (235, 235, 232),
    (195, 197, 200),
    (125, 127, 130),
    (35, 36, 40),
    (175, 30, 28),
    (40, 70, 150),
    (30, 85, 55),
    (205, 185, 145),
    (230, 190, 40),
    (110, 35, 30),
    (70, 120, 180),
    (225, 110, 35),
]
_BUS_COLOURS = [(232, 190, 30), (200, 40, 35), (40, 90, 170), (236, 236, 230), (50, 140, 80), (240, 120, 30)]
_SKIN = [(250, 215, 180), (230, 185, 145), (200, 150, 110), (150, 100, 70), (100, 68, 48)]
_HAIR = [(30, 25, 20), (70, 45, 25), (120, 80, 40), (210, 180, 110), (150, 150, 150)]
_CLOTHES = [
    (200, 40, 40),
    (40, 60, 140),
    (30, 30, 35),
    (230, 230, 225),
    (60, 120, 60),
    (240, 190, 40),
    (120, 70, 140),
    (90, 90, 95),
    (230, 120, 40),
    (60, 150, 190),
    (140, 100, 70),
    (200, 90, 140),
]
_PANTS = [(40, 50, 90), (30, 30, 35), (90, 90, 95), (120, 100, 75), (60, 70, 110), (150, 130, 100)]
_GLASS = (55, 68, 85)
_TYRE = (24, 24, 26)


def _glass(rng: np.random.Generator) -> tuple[int, int, int]:
    return _jit(rng, _GLASS, 10)


def _wheel(p: _Painter, x, y, r, rim_col, arch=None) -> None:
    if arch is not None:
        p.circle(x, y, r * 1.14, arch)
    p.circle(x, y, r, _TYRE)
    p.circle(x, y, r * 0.58, rim_col)
    p.circle(x, y, r * 0.2, (60, 60, 64))


def _car_side(p: _Painter, q: dict) -> None:
    L, H, body = q["L"], q["H"], q["body"]
    p.ox = -L / 2
    style = q["style"]
    if style == "sedan":
        wf, rf, rr, wr, tail = (0.74, 0.62), (0.57, 1.0), (0.30, 1.0), (0.11, 0.66), (0.0, 0.62)
    elif style == "hatch":
        wf, rf, rr, wr, tail = (0.72, 0.62), (0.56, 1.0), (0.12, 0.98), (0.03, 0.68), (0.0, 0.64)
    else:  # suv / van
        wf, rf, rr, wr, tail = (0.80, 0.63), (0.69, 1.0), (0.04, 1.0), (0.01, 0.95), (0.0, 0.62)

    def sc(pt):
        return (pt[0] * L, pt[1] * H)

    outline = [
        (0.02, 0.17),
        (0.98, 0.17),
        (1.0, 0.30),
        (1.0, 0.52),
        (0.97, 0.58),
        wf,
        rf,
        rr,
        wr,
        tail,
        (0.0, 0.30),
    ]
    p.poly([sc(v) for v in outline], body)
    g = np.array([wf, rf, rr, wr], np.float64)
    cen = g.mean(axis=0)
    glass = cen + (g - cen) * np.array([0.86, 0.78])
    glass[:, 1] += 0.02
    p.poly([sc(v) for v in glass], q["glass"])
    # B-pillar and door lines.
    xb = float(glass[:, 0].min() + glass[:, 0].max()) / 2
    p.rect(xb * L - 0.05, 0.6 * H, xb * L + 0.05, 0.98 * H, _shade(body, 0.9))
    dark = _shade(body, 0.55)
    p.line(sc((xb, 0.2)), sc((xb, 0.62)), 0.025, dark)
    p.line(sc((wf[0] - 0.04, 0.22)), sc((wf[0] - 0.04, 0.6)), 0.025, dark)
    p.rect((xb - 0.08) * L, 0.52 * H, (xb - 0.05) * L, 0.55 * H, dark)
    p.rect((wf[0] - 0.1) * L, 0.52 * H, (wf[0] - 0.07) * L, 0.55 * H, dark)
    # Bumpers, lights, mirror.
    bump = _shade(body, 0.5) if sum(body) > 200 else (70, 70, 74)
    p.rect(0.93 * L, 0.17 * H, L, 0.30 * H, bump)
    p.rect(0.0, 0.17 * H, 0.06 * L, 0.30 * H, bump)
    p.rect(0.965 * L, 0.44 * H, L, 0.53 * H, (250, 240, 205))
    p.rect(0.0, 0.50 * H, 0.025 * L, 0.60 * H, (205, 25, 25))
    p.poly([sc((wf[0] - 0.02, 0.62)), sc((wf[0] - 0.05, 0.69)), sc((wf[0] - 0.08, 0.66))], _shade(body, 0.7))
    r = 0.215 * H
    for xw in (0.19 * L, 0.80 * L):
        _wheel(p, xw, r, r, q["rim"], arch=(28, 28, 30))


def _car_end(p: _Painter, q: dict) -> None:
    W, H, body = q["L"], q["H"], q["body"]
    wheel = _TYRE
    p.rect(-0.48 * W, 0.0, -0.30 * W, 0.24 * H, wheel)
    p.rect(0.30 * W, 0.0, 0.48 * W, 0.24 * H, wheel)
    p.poly(
        [
            (-0.5 * W, 0.2 * H),
            (0.5 * W, 0.2 * H),
            (0.5 * W, 0.58 * H),
            (0.46 * W, 0.64 * H),
            (-0.46 * W, 0.64 * H),
            (-0.5 * W, 0.58 * H),
        ],
        body,
    )
    top = 0.98 if q["style"] != "suv" else 1.0
    p.poly([(-0.44 * W, 0.62 * H), (0.44 * W, 0.62 * H), (0.35 * W, top * H), (-0.35 * W, top * H)], body)
    p.poly(
        [
            (-0.38 * W, 0.66 * H),
            (0.38 * W, 0.66 * H),
            (0.31 * W, (top - 0.05) * H),
            (-0.31 * W, (top - 0.05) * H),
        ],
        q["glass"],
    )
    bump = _shade(body, 0.5) if sum(body) > 200 else (70, 70, 74)
    p.rect(-0.5 * W, 0.18 * H, 0.5 * W, 0.27 * H, bump)
    p.rect(-0.12 * W, 0.30 * H, 0.12 * W, 0.38 * H, (235, 235, 225))
    if q["rear"]:
        for sgn in (-1, 1):
            p.rect(sgn * 0.34 * W, 0.45 * H, sgn * 0.48 * W, 0.56 * H, (200, 25, 25))
    else:
        p.rect(-0.22 * W, 0.40 * H, 0.22 * W, 0.52 * H, (45, 45, 48))
        for sgn in (-1, 1):
            p.rect(sgn * 0.29 * W, 0.45 * H, sgn * 0.46 * W, 0.54 * H, (250, 245, 215))
        p.rect(-0.48 * W, 0.62 * H, -0.56 * W, 0.69 * H, _shade(body, 0.7))
        p.rect(0.48 * W, 0.62 * H, 0.56 * W, 0.69 * H, _shade(body, 0.7))


def _bus_side(p: _Painter, q: dict) -> None:
    L, H, body = q["L"], q["H"], q["body"]
    p.ox = -L / 2
    p.poly([(0, 0.1 * H), (L, 0.1 * H), (L, 0.93 * H), (L - 0.2, H), (0.15, H), (0, 0.96 * H)], body)
    p.rect(0, 0.1 * H, L, 0.2 * H, _shade(body, 0.6))
    p.rect(0, 0.42 * H, L, 0.48 * H, q["accent"])
    glass = q["glass"]
    x_end = L - 2.2
    p.rect(0.3, 0.55 * H, x_end, 0.9 * H, glass)
    n = max(int((x_end - 0.3) / 1.35), 1)
    for i in range(1, n):
        xi = 0.3 + i * (x_end - 0.3) / n
        p.rect(xi - 0.06, 0.55 * H, xi + 0.06, 0.9 * H, body)
    p.rect(L - 0.25, 0.48 * H, L, 0.92 * H, glass)  # windshield edge
    p.rect(L - 2.0, 0.13 * H, L - 1.15, 0.9 * H, _shade(glass, 0.8))  # front door
    p.line((L - 1.575, 0.14 * H), (L - 1.575, 0.89 * H), 0.04, _shade(body, 0.5))
    if q["mid_door"]:
        xm = 0.48 * L
        p.rect(xm - 0.45, 0.13 * H, xm + 0.45, 0.9 * H, _shade(glass, 0.8))
    p.rect(L - 2.0, 0.92 * H, L - 0.3, 0.975 * H, (250, 170, 40))  # destination display
    p.rect(L - 0.12, 0.2 * H, L, 0.28 * H, (250, 240, 205))
    r = 0.15 * H
    xs = [2.7, L - 2.5] + ([2.7 + 1.3] if q["tandem"] else [])
    for xw in xs:
        _wheel(p, xw, r, r, q["rim"], arch=(28, 28, 30))


def _bus_end(p: _Painter, q: dict) -> None:
    W, H, body = q["L"], q["H"], q["body"]
    p.rect(-0.47 * W, 0.0, -0.32 * W, 0.12 * H, _TYRE)
    p.rect(0.32 * W, 0.0, 0.47 * W, 0.12 * H, _TYRE)
    p.poly(
        [
            (-0.5 * W, 0.08 * H),
            (0.5 * W, 0.08 * H),
            (0.5 * W, 0.96 * H),
            (0.46 * W, H),
            (-0.46 * W, H),
            (-0.5 * W, 0.96 * H),
        ],
        body,
    )
    p.rect(-0.5 * W, 0.08 * H, 0.5 * W, 0.15 * H, (50, 50, 54))
    if q["rear"]:
        p.rect(-0.4 * W, 0.68 * H, 0.4 * W, 0.9 * H, q["glass"])
        for i in range(5):
            y = (0.3 + 0.05 * i) * H
            p.rect(-0.3 * W, y, 0.3 * W, y + 0.02 * H, _shade(body, 0.6))
        for sgn in (-1, 1):
            p.rect(sgn * 0.41 * W, 0.18 * H, sgn * 0.48 * W, 0.4 * H, (200, 25, 25))
        p.rect(-0.12 * W, 0.18 * H, 0.12 * W, 0.23 * H, (235, 235, 225))
    else:
        p.rect(-0.45 * W, 0.42 * H, 0.45 * W, 0.9 * H, q["glass"])
        p.line((0.0, 0.42 * H), (0.0, 0.9 * H), 0.05, _shade(body, 0.5))
        p.rect(-0.35 * W, 0.915 * H, 0.35 * W, 0.975 * H, (250, 170, 40))
        p.rect(-0.5 * W, 0.36 * H, 0.5 * W, 0.40 * H, q["accent"])
        for sgn in (-1, 1):
            p.rect(sgn * 0.3 * W, 0.18 * H, sgn * 0.45 * W, 0.25 * H, (250, 245, 215))


def _bicycle(p: _Painter, q: dict) -> None:
    L, H, frame = q["L"], q["H"], q["frame"]
    p.ox = -L / 2
    r = 0.31 * H
    rear, front = (r + 0.02, r), (L - r - 0.02, r)
    bb = (0.47 * L, 0.27 * H)
    seat = (0.40 * L, 0.75 * H)
    head_top, head_bot = (0.70 * L, 0.80 * H), (0.72 * L, 0.68 * H)
    tube = 0.045
    for c in (rear, front):
        p.circle(c[0], c[1], r, _TYRE, width=0.05)
        p.circle(c[0], c[1], r * 0.9, (150, 150, 155), width=0.015)
        if r * p.s > 10:
            for a in (0.0, 0.785, 1.571, 2.356):
                dx, dy = 0.85 * r * math.cos(a), 0.85 * r * math.sin(a)
                p.line((c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy), 0.008, (170, 170, 175))
        p.circle(c[0], c[1], 0.03, (80, 80, 85))
    p.line(rear, bb, tube, frame)
    p.line(rear, seat, tube, frame)
    p.line(bb, seat, tube * 1.1, frame)
    p.line(seat, head_top, tube * 1.1, frame)
    p.line(bb, head_bot, tube * 1.2, frame)
    p.line(head_bot, head_top, tube * 1.3, frame)
    p.line(head_bot, front, tube * 0.9, _shade(frame, 0.8))
    post_top = (0.38 * L, 0.87 * H)
    p.line(seat, post_top, 0.03, (90, 90, 95))
    p.line((0.32 * L, 0.885 * H), (0.45 * L, 0.885 * H), 0.055, (30, 30, 32))  # saddle
    bar = (0.68 * L, 0.96 * H)
    p.line(head_top, bar, 0.035, (60, 60, 64))
    p.line(bar, (0.76 * L, 0.97 * H), 0.035, (30, 30, 32))
    p.line((0.76 * L, 0.97 * H), (0.78 * L, 0.91 * H), 0.035, (30, 30, 32))
    p.circle(bb[0], bb[1], 0.09, (60, 60, 64), width=0.03)
    p.line((bb[0] - 0.1, bb[1] - 0.12), (bb[0] + 0.1, bb[1] + 0.12), 0.03, (40, 40, 44))


def _motorbike(p: _Painter, q: dict) -> None:
    L, H, body = q["L"], q["H"], q["body"]
    p.ox = -L / 2
    r = 0.27 * H
    rear, front = (0.16 * L, r), (0.84 * L, r)
    metal, dark = (175, 175, 182), (45, 45, 50)

    def sc(x, y):
        return (x * L, y * H)

    for c in (rear, front):  # open wheels: tyre, rim, spokes, hub
        p.circle(c[0], c[1], r - 0.045, _TYRE, width=0.09)
        p.circle(c[0], c[1], r * 0.68, metal, width=0.025)
        for a in (0.0, 1.047, 2.094):
            dx, dy = 0.68 * r * math.cos(a), 0.68 * r * math.sin(a)
            p.line((c[0] - dx, c[1] - dy), (c[0] + dx, c[1] + dy), 0.025, metal)
        p.circle(c[0], c[1], r * 0.2, (90, 90, 96))
    p.line(rear, sc(0.42, 0.45), 0.07, dark)  # swing arm
    p.line(sc(0.3, 0.48), sc(0.26, 0.72), 0.05, (200, 160, 40))  # rear shock
    p.line(sc(0.46, 0.22), sc(0.12, 0.36), 0.075, metal)  # exhaust
    p.line(sc(0.74, 0.84), sc(0.45, 0.35), 0.06, dark)  # frame down tube
    p.poly([sc(0.37, 0.2), sc(0.6, 0.2), sc(0.64, 0.45), sc(0.4, 0.5)], (62, 62, 68))  # engine
    for i in range(3):
        y = 0.27 + 0.07 * i
        p.line(sc(0.42, y), sc(0.6, y + 0.02), 0.02, (120, 120, 126))  # cooling fins
    p.poly([sc(0.03, 0.72), sc(0.3, 0.66), sc(0.36, 0.74), sc(0.06, 0.8)], body)  # tail
    p.poly([sc(0.2, 0.72), sc(0.5, 0.7), sc(0.5, 0.78), sc(0.24, 0.8)], (28, 28, 30))  # seat
    p.poly([sc(0.46, 0.68), sc(0.68, 0.66), sc(0.74, 0.82), sc(0.6, 0.88), sc(0.48, 0.84)], body)  # tank
    p.line(sc(0.74, 0.88), front, 0.06, metal)  # fork
    p.poly([sc(0.72, 0.6), sc(0.86, 0.6), sc(0.95, 0.55), sc(0.84, 0.64)], body)  # front fender
    p.line(sc(0.74, 0.9), sc(0.67, 1.0), 0.04, dark)  # handlebar
    p.line(sc(0.67, 1.0), sc(0.62, 0.99), 0.045, (30, 30, 32))
    p.circle(0.8 * L, 0.8 * H, 0.075, (250, 245, 210))  # headlight
    p.rect(0.0, 0.73 * H, 0.035 * L, 0.79 * H, (205, 25, 25))  # tail light


def _person(p: _Painter, q: dict) -> None:
    Hp = q["H"]
    skin, hair, shirt, pants = q["skin"], q["hair"], q["shirt"], q["pants"]
    shoe = (35, 30, 28)
    if q["side"]:
        a = q["stride"]
        hip = (0.0, 0.5 * Hp)
        back, front = _shade(pants, 0.75), pants
        p.path([hip, (-0.4 * a, 0.27 * Hp), (-a, 0.04 * Hp)], 0.13, back)
        p.ellipse(-a + 0.03, 0.025 * Hp, 0.09, 0.035, shoe)
        p.line((0.0, 0.8 * Hp), (-0.6 * a, 0.5 * Hp), 0.08, _shade(shirt, 0.75))
        if q["bag"]:
            p.rect(-0.2, 0.6 * Hp, -0.08, 0.79 * Hp, _shade(q["bag_col"], 1.0))
        p.poly([(-0.1, 0.82 * Hp), (0.11, 0.82 * Hp), (0.095, 0.48 * Hp), (-0.1, 0.48 * Hp)], shirt)
        p.path([hip, (0.5 * a, 0.27 * Hp), (a, 0.04 * Hp)], 0.13, front)
        p.ellipse(a + 0.04, 0.025 * Hp, 0.09, 0.035, shoe)
        p.line((0.0, 0.8 * Hp), (0.6 * a, 0.5 * Hp), 0.08, shirt)
        p.circle(0.6 * a, 0.49 * Hp, 0.04, skin)
        p.rect(-0.035, 0.82 * Hp, 0.035, 0.87 * Hp, skin)
        p.circle(0.01, 0.925 * Hp, 0.063 * Hp, skin)
        p.ellipse(-0.02, 0.945 * Hp, 0.062 * Hp, 0.045 * Hp, hair)
    else:
        if q["skirt"]:
            p.line((-0.07, 0.4 * Hp), (-0.08, 0.04 * Hp), 0.09, skin)
            p.line((0.07, 0.4 * Hp), (0.08, 0.04 * Hp), 0.09, skin)
            p.poly([(-0.16, 0.5 * Hp), (0.16, 0.5 * Hp), (0.22, 0.3 * Hp), (-0.22, 0.3 * Hp)], pants)
        else:
            p.line((-0.085, 0.5 * Hp), (-0.1, 0.04 * Hp), 0.13, pants)
            p.line((0.085, 0.5 * Hp), (0.1, 0.04 * Hp), 0.13, pants)
        p.ellipse(-0.11, 0.025 * Hp, 0.07, 0.035, shoe)
        p.ellipse(0.11, 0.025 * Hp, 0.07, 0.035, shoe)
        p.poly([(-0.2, 0.82 * Hp), (0.2, 0.82 * Hp), (0.165, 0.48 * Hp), (-0.165, 0.48 * Hp)], shirt)
        arm = _shade(shirt, 0.88)
        p.line((-0.2, 0.8 * Hp), (-0.25, 0.48 * Hp), 0.085, arm)
        p.line((0.2, 0.8 * Hp), (0.25, 0.48 * Hp), 0.085, arm)
        p.circle(-0.25, 0.47 * Hp, 0.045, skin)
        p.circle(0.25, 0.47 * Hp, 0.045, skin)
        p.rect(-0.04, 0.81 * Hp, 0.04, 0.87 * Hp, skin)
        p.circle(0.0, 0.935 * Hp, 0.064 * Hp, hair)
        p.circle(0.0, 0.922 * Hp, 0.058 * Hp, skin)


# --------------------------------------------------------------------------------------
# Distractor drawings


def _lamp(p: _Painter, q: dict) -> None:
    h, col, arm = q["h"], q["col"], q["arm"]
    p.poly([(-0.09, 0.0), (0.09, 0.0), (0.055, h), (-0.055, h)], col)
    p.rect(-0.14, 0.0, 0.14, 0.6, _shade(col, 0.85))
    p.path([(0.0, h - 0.3), (0.2, h + 0.15), (arm, h + 0.25)], 0.07, col)
    p.ellipse(arm, h + 0.2, 0.32, 0.1, _shade(col, 0.8))
    p.ellipse(arm, h + 0.12, 0.22, 0.05, (255, 248, 215))


def _traffic_light(p: _Painter, q: dict) -> None:
    h = q["h"]
    p.rect(-0.07, 0.0, 0.07, h - 0.5, (70, 72, 75))
    p.rect(-0.19, h - 1.05, 0.19, h, (28, 28, 30))
    on = q["on"]
    cols = [(230, 40, 30), (240, 180, 30), (40, 210, 90)]
    for i, c in enumerate(cols):
        y = h - 0.18 - 0.34 * i
        p.circle(0.0, y, 0.12, c if i == on else _shade(c, 0.3))


def _sign(p: _Painter, q: dict) -> None:
    h, size, kind = q["h"], q["size"], q["kind"]
    p.rect(-0.035, 0.0, 0.035, h, (150, 152, 155))
    cy = h + size / 2 - 0.05
    r = size / 2
    if kind == "round":
        p.circle(0.0, cy, r, (210, 30, 30))
        p.circle(0.0, cy, r * 0.72, (245, 245, 240))
        if q["bar"]:
            p.rect(-r * 0.45, cy - r * 0.12, r * 0.45, cy + r * 0.12, (30, 30, 30))
    elif kind == "blue":
        p.circle(0.0, cy, r, (30, 80, 180))
        p.line((-r * 0.4, cy - r * 0.4), (r * 0.4, cy + r * 0.4), 0.06, (245, 245, 245))
    elif kind == "triangle":
        pts = [(-r, cy - r * 0.8), (r, cy - r * 0.8), (0.0, cy + r * 0.95)]
        p.poly(pts, (210, 30, 30))
        inner = [(-r * 0.6, cy - r * 0.55), (r * 0.6, cy - r * 0.55), (0.0, cy + r * 0.5)]
        p.poly(inner, (245, 245, 240))
    elif kind == "stop":
        ang = np.arange(8) * (np.pi / 4) + np.pi / 8
        p.poly(np.stack([r * np.cos(ang), cy + r * np.sin(ang)], 1), (200, 25, 25))
        p.rect(-r * 0.6, cy - r * 0.12, r * 0.6, cy + r * 0.12, (245, 245, 245))
    else:  # rectangular direction sign
        col = q["plate"]
        p.rect(-r * 1.3, cy - r * 0.6, r * 1.3, cy + r * 0.6, (240, 240, 240))
        p.rect(-r * 1.2, cy - r * 0.5, r * 1.2, cy + r * 0.5, col)
        p.rect(-r * 0.8, cy - r * 0.06, r * 0.8, cy + r * 0.06, (240, 240, 240))


def _tree(p: _Painter, q: dict) -> None:
    th, tw = q["trunk_h"], q["trunk_w"]
    p.poly([(-tw * 0.6, 0.0), (tw * 0.6, 0.0), (tw * 0.4, th + 0.5), (-tw * 0.4, th + 0.5)], q["bark"])
    if q["conifer"]:
        for x0, y0, w, h, c in q["tiers"]:
            p.poly([(x0 - w, y0), (x0 + w, y0), (x0, y0 + h)], c)
        return
    for x, y, r, c in q["blobs"]:
        p.circle(x, y, r, c)
    for x, y, r, c in q["speckles"]:
        p.circle(x, y, r, c)


def _bush(p: _Painter, q: dict) -> None:
    for x, y, r, c in q["blobs"]:
        p.ellipse(x, y, r, r * 0.75, c)


def _building(p: _Painter, q: dict) -> None:
    w, h, col = q["w"], q["h"], q["col"]
    p.rect(-w / 2, 0.0, w / 2, h, col)
    if q["roof"] == "gable":
        p.poly([(-w / 2 - 0.4, h), (w / 2 + 0.4, h), (0.0, h + q["roof_h"])], q["roof_col"])
    else:
        p.rect(-w / 2, h - 0.5, w / 2, h, _shade(col, 0.75))
    top = h - (1.0 if q["roof"] != "gable" else 0.4)
    p.cells(-w / 2 + 0.6, q["ground"], w / 2 - 0.6, top, q["nx"], q["ny"], q["fx"], q["fy"], q["windows"])
    if q["shop"]:
        p.rect(-w / 2 + 0.5, 0.0, w / 2 - 0.5, min(3.0, q["ground"] - 0.3), (50, 58, 66))
        p.rect(-w / 2, min(3.0, q["ground"] - 0.3), w / 2, min(3.6, q["ground"]), q["awning"])
    else:
        p.rect(-0.6, 0.0, 0.6, 2.2, _shade(col, 0.45))


def _fence(p: _Painter, q: dict) -> None:
    L, h, col = q["L"], q["h"], q["col"]
    n = max(int(L / 1.6), 1)
    for i in range(n + 1):
        x = -L / 2 + i * L / n
        p.rect(x - 0.05, 0.0, x + 0.05, h, col)
    for y in (0.35 * h, 0.85 * h):
        p.rect(-L / 2, y - 0.04, L / 2, y + 0.04, col)


def _bench(p: _Painter, q: dict) -> None:
    L, wood, metal = q["L"], q["wood"], (50, 52, 55)
    for x in (-L / 2 + 0.15, L / 2 - 0.15):
        p.rect(x - 0.04, 0.0, x + 0.04, 0.8, metal)
    p.rect(-L / 2, 0.42, L / 2, 0.5, wood)
    p.rect(-L / 2, 0.6, L / 2, 0.68, wood)
    p.rect(-L / 2, 0.72, L / 2, 0.8, wood)


def _bin(p: _Painter, q: dict) -> None:
    col = q["col"]
    p.rect(-0.25, 0.0, 0.25, 0.85, col)
    p.rect(-0.28, 0.85, 0.28, 0.95, _shade(col, 0.7))
    p.rect(-0.25, 0.55, 0.25, 0.6, _shade(col, 0.8))


def _cone(p: _Painter, q: dict) -> None:
    p.rect(-0.2, 0.0, 0.2, 0.05, (40, 40, 40))
    p.poly([(-0.15, 0.05), (0.15, 0.05), (0.03, 0.7), (-0.03, 0.7)], (240, 110, 30))
    p.poly([(-0.1, 0.3), (0.1, 0.3), (0.08, 0.42), (-0.08, 0.42)], (245, 245, 245))


def _bollard(p: _Painter, q: dict) -> None:
    col = q["col"]
    p.rect(-0.07, 0.0, 0.07, 0.9, col)
    p.rect(-0.07, 0.7, 0.07, 0.78, (235, 200, 40))


_DRAW: dict[str, Callable[[_Painter, dict], None]] = {
    "car_side": _car_side,
    "car_end": _car_end,
    "bus_side": _bus_side,
    "bus_end": _bus_end,
    "bicycle": _bicycle,
    "motorbike": _motorbike,
    "person": _person,
    "lamp": _lamp,
    "traffic_light": _traffic_light,
    "sign": _sign,
    "tree": _tree,
    "bush": _bush,
    "building": _building,
    "fence": _fence,
    "bench": _bench,
    "bin": _bin,
    "cone": _cone,
    "bollard": _bollard,
}


# --------------------------------------------------------------------------------------
# Objects: parameters and placement


@dataclass
class _Obj:
    kind: str
    z: float  # depth, m
    xa: float  # anchor column (internal px)
    ya: float  # anchor row = ground row at depth z
    s: float  # px per metre
    half_w: float  # horizontal extent either side of the anchor, m
    top: float  # height above the ground, m
    flip: bool
    q: dict
    cls: int = -1  # target class, -1 for a distractor
    shadow: float = 0.0  # ground footprint depth for the contact shadow, m (0: none)
    outline: bool = True

    def box(self) -> tuple[float, float, float, float]:
        return (
            self.xa - self.half_w * self.s,
            self.ya - self.top * self.s,
            self.xa + self.half_w * self.s,
            self.ya,
        )


def _too_close(a, b) -> bool:
    """IoU over MAX_TARGET_IOU, or one box mostly (> 50 %) inside the other."""
    iou, ios = _iou_ios(a, b)
    return iou > MAX_TARGET_IOU or ios > 0.5


def _iou_ios(a, b) -> tuple[float, float]:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0, 0.0
    inter = iw * ih
    aa = (a[2] - a[0]) * (a[3] - a[1])
    ab = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (aa + ab - inter), inter / max(min(aa, ab), 1e-9)


# Nominal world sizes (w, h) in metres used to choose a distance for a wanted pixel size.
_NOMINAL = {
    BICYCLE: (1.7, 1.1),
    BUS: (11.0, 3.2),
    CAR: (4.2, 1.5),
    MOTORBIKE: (2.0, 1.2),
    PERSON: (0.5, 1.75),
}


def _target_params(cls: int, rng: np.random.Generator) -> tuple[str, dict, float, float, float]:
    """(kind, params, half width m, height m, shadow depth m) of one target."""
    k = rng.uniform(0.88, 1.12)
    rim = _jit(rng, (175, 175, 180), 15)
    if cls == CAR:
        style = ["sedan", "hatch", "suv"][int(rng.integers(3))]
        H = 1.5 * k * (1.12 if style == "suv" else 1.0)
        body = _jit(rng, _pick(rng, _CAR_COLOURS), 14)
        if rng.random() < 0.65:
            L = 4.2 * k * rng.uniform(0.95, 1.05)
            q = dict(L=L, H=H, body=body, style=style, glass=_glass(rng), rim=rim)
            return "car_side", q, L / 2, H, 1.8
        W = 1.8 * k
        q = dict(L=W, H=H, body=body, style=style, glass=_glass(rng), rear=bool(rng.random() < 0.6))
        return "car_end", q, W * 0.56, H, 4.0
    if cls == BUS:
        H = 3.2 * k
        body = _jit(rng, _pick(rng, _BUS_COLOURS), 12)
        accent = _jit(rng, _pick(rng, _BUS_COLOURS), 12)
        if rng.random() < 0.7:
            L = 11.0 * k * rng.uniform(0.92, 1.08)
            q = dict(
                L=L,
                H=H,
                body=body,
                accent=accent,
                glass=_glass(rng),
                rim=rim,
                mid_door=bool(rng.random() < 0.6),
                tandem=bool(rng.random() < 0.3),
            )
            return "bus_side", q, L / 2, H, 2.5
        W = 2.55 * k
        q = dict(L=W, H=H, body=body, accent=accent, glass=_glass(rng), rear=bool(rng.random() < 0.5))
        return "bus_end", q, W / 2, H, 10.0
    if cls == BICYCLE:
        L, H = 1.7 * k, 1.1 * k
        frame = _jit(rng, _pick(rng, _CLOTHES), 20)
        return "bicycle", dict(L=L, H=H, frame=frame), L / 2, H, 0.5
    if cls == MOTORBIKE:
        L, H = 2.0 * k, 1.2 * k
        body = _jit(rng, _pick(rng, _CAR_COLOURS + _CLOTHES), 15)
        return "motorbike", dict(L=L, H=H, body=body), L / 2, H, 0.7
    # person
    H = 1.75 * k * rng.uniform(0.92, 1.06)
    side = bool(rng.random() < 0.55)
    q = dict(
        H=H,
        side=side,
        stride=float(rng.uniform(0.12, 0.3)),
        skin=_jit(rng, _pick(rng, _SKIN), 8),
        hair=_jit(rng, _pick(rng, _HAIR), 8),
        shirt=_jit(rng, _pick(rng, _CLOTHES), 18),
        pants=_jit(rng, _pick(rng, _PANTS), 12),
        skirt=bool(rng.random() < 0.15),
        bag=bool(rng.random() < 0.3),
        bag_col=_jit(rng, _pick(rng, _CLOTHES), 10),
    )
    half = (q["stride"] + 0.14) if side else 0.3
    return "person", q, half, H, 0.5


def _place_target(cls: int, spec: SceneSpec, cam: _Camera, lay: _Layout, rng: np.random.Generator) -> _Obj:
    kind, q, half_w, top, shadow = _target_params(cls, rng)
    ss = cam.w / spec.width
    f_out = cam.f / ss
    nw, nh = _NOMINAL[cls]
    if kind in ("car_end", "bus_end"):
        nw = q["L"]
    # Wanted apparent size (geometric mean of the box sides, output px): log-uniform.
    lo = max(1.5 * spec.min_box, 10.0)
    hi = max(0.42 * spec.height, lo * 1.5)
    size = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    z = f_out * math.sqrt(nw * nh) / size
    # The base must be inside the frame (objects stand on visible ground).
    z_min = cam.f * cam.h / max(cam.H - 2 - cam.yh, 1.0)
    z = min(max(z, z_min * 1.02), 150.0)
    s = cam.f / z
    hr = lay.half_road
    for _ in range(4):
        if kind in ("car_end", "bus_end"):
            lane = int(rng.integers(lay.lanes))
            u = -hr + (lane + 0.5) * lay.lane_w + rng.normal(0, 0.25)
        elif kind in ("car_side", "bus_side", "motorbike"):
            u = rng.uniform(-hr + 1.0, hr - 1.0) if rng.random() < 0.85 else rng.uniform(-hr - 3, hr + 3)
        elif kind == "bicycle":
            u = (hr - rng.uniform(0.5, 1.5)) * (1 if rng.random() < 0.5 else -1)
            if rng.random() < 0.35:
                u = (hr + 0.25 + rng.uniform(0.3, lay.sidewalk)) * (1 if rng.random() < 0.5 else -1)
        else:
            if rng.random() < 0.7:
                u = (hr + 0.25 + rng.uniform(0.2, lay.sidewalk)) * (1 if rng.random() < 0.5 else -1)
            else:
                u = rng.uniform(-hr, hr)
        xa = cam.cx + lay.world_x(u, z) * s
        x1, x2 = xa - half_w * s, xa + half_w * s
        inside = (min(x2, cam.w) - max(x1, 0)) / max(x2 - x1, 1e-6)
        if inside >= 0.75:
            break
    else:
        width = 2 * half_w * s
        if width < cam.w:
            xa = rng.uniform(half_w * s, cam.w - half_w * s)
        else:
            xa = cam.w / 2
    ya = cam.yh + cam.h * s
    flip = bool(rng.random() < 0.5)
    return _Obj(kind, z, xa, ya, s, half_w, top, flip, q, cls=cls, shadow=shadow)


def _tree_params(rng: np.random.Generator) -> tuple[dict, float, float]:
    h = rng.uniform(4.0, 11.0)
    conifer = bool(rng.random() < 0.25)
    th = h * rng.uniform(0.25, 0.4)
    green = np.array(_jit(rng, _pick(rng, [(55, 100, 45), (70, 115, 50), (45, 85, 45), (90, 120, 55)]), 12))
    q: dict = dict(
        trunk_h=th, trunk_w=rng.uniform(0.25, 0.45), bark=_jit(rng, (95, 70, 50), 12), conifer=conifer
    )
    if conifer:
        tiers = []
        n = int(rng.integers(3, 5))
        y = th * 0.6
        width = h * 0.28
        step = (h - y) / n
        for i in range(n):
            c = _c(green * rng.uniform(0.75, 1.0))
            tiers.append((0.0, y + i * step * 0.8, width * (1 - 0.18 * i), step * 1.5, c))
        q["tiers"] = tiers
        return q, h * 0.3, h
    R = (h - th) / 2
    cy = th + R
    blobs = []
    for _ in range(int(rng.integers(4, 8))):
        r = R * rng.uniform(0.45, 0.75)
        blobs.append(
            (
                rng.uniform(-0.55, 0.55) * R,
                cy + rng.uniform(-0.4, 0.4) * R,
                r,
                _c(green * rng.uniform(0.75, 1.15)),
            )
        )
    speck = []
    for _ in range(int(rng.integers(8, 18))):
        x, y = rng.uniform(-0.8, 0.8) * R, cy + rng.uniform(-0.7, 0.7) * R
        speck.append((x, y, R * rng.uniform(0.06, 0.14), _c(green * rng.uniform(0.6, 1.3))))
    q["blobs"], q["speckles"] = blobs, speck
    return q, R * 1.35, cy + R * 1.15


def _building_params(rng: np.random.Generator, urban: bool) -> tuple[dict, float, float]:
    if urban:
        w = rng.uniform(8, 28)
        h = rng.uniform(7, 40)
        roof = "flat"
    else:
        w = rng.uniform(7, 14)
        h = rng.uniform(3.5, 7)
        roof = "gable" if rng.random() < 0.7 else "flat"
    col = _jit(
        rng,
        _pick(
            rng,
            [
                (205, 195, 175),
                (170, 170, 172),
                (165, 90, 70),
                (225, 220, 210),
                (140, 120, 100),
                (190, 170, 130),
                (120, 135, 150),
            ],
        ),
        14,
    )
    storey = rng.uniform(2.8, 3.5)
    ground = storey * (1.3 if urban else 1.0)
    ny = max(int((h - ground - 0.5) / storey), 1)
    nx = max(int(w / rng.uniform(2.2, 3.5)), 1)
    lit = rng.random((ny, nx))
    dark_glass = np.array(_jit(rng, (60, 70, 85), 12), np.float64)
    lit_col = np.array((235, 215, 150), np.float64)
    win = np.where((lit < 0.12)[:, :, None], lit_col, dark_glass) * rng.uniform(0.85, 1.15, (ny, nx, 1))
    q = dict(
        w=w,
        h=h,
        col=col,
        roof=roof,
        roof_h=rng.uniform(1.5, 3.5),
        roof_col=_jit(rng, (120, 60, 50), 20),
        ground=ground,
        nx=nx,
        ny=ny,
        fx=rng.uniform(0.45, 0.7),
        fy=rng.uniform(0.45, 0.65),
        windows=np.clip(win, 0, 255).astype(np.uint8),
        shop=bool(urban and rng.random() < 0.5),
        awning=_jit(rng, _pick(rng, _CLOTHES), 10),
    )
    return q, w / 2 + 0.5, h + (q["roof_h"] if roof == "gable" else 0.0)


_URBAN_KINDS = {
    "building": 0.24,
    "lamp": 0.2,
    "sign": 0.14,
    "traffic_light": 0.08,
    "tree": 0.12,
    "bin": 0.05,
    "bollard": 0.06,
    "bench": 0.04,
    "cone": 0.03,
    "fence": 0.02,
    "bush": 0.02,
}
_RURAL_KINDS = {
    "tree": 0.36,
    "bush": 0.14,
    "sign": 0.12,
    "lamp": 0.1,
    "fence": 0.12,
    "building": 0.08,
    "bench": 0.02,
    "bin": 0.02,
    "cone": 0.02,
    "bollard": 0.02,
}


def _place_distractor(kind: str, cam: _Camera, lay: _Layout, rng: np.random.Generator) -> _Obj:
    hr, sw = lay.half_road, lay.sidewalk
    side = 1 if rng.random() < 0.5 else -1
    z = math.exp(rng.uniform(math.log(5.0), math.log(90.0)))
    u = side * (hr + 0.25 + rng.uniform(0.2, sw))  # on the sidewalk
    flip = bool(rng.random() < 0.5)
    outline = True
    if kind == "lamp":
        h = rng.uniform(5.5, 9.0)
        arm = rng.uniform(1.0, 2.0)
        q = dict(h=h, arm=arm, col=_jit(rng, _pick(rng, [(70, 72, 76), (45, 70, 55), (110, 112, 115)]), 8))
        u = side * (hr + rng.uniform(0.4, 0.9))
        flip = side > 0  # the arm reaches over the road
        half_w, top = arm + 0.4, h + 0.5
    elif kind == "traffic_light":
        h = rng.uniform(3.2, 4.2)
        q = dict(h=h, on=int(rng.integers(3)))
        u = side * (hr + rng.uniform(0.4, 0.9))
        half_w, top = 0.25, h + 0.05
    elif kind == "sign":
        size = rng.uniform(0.55, 0.9)
        kinds = ["round", "blue", "triangle", "stop", "rect"]
        plate = _jit(rng, _pick(rng, [(30, 80, 180), (30, 120, 60)]), 10)
        kind_s = kinds[int(rng.integers(len(kinds)))]
        q = dict(h=rng.uniform(1.9, 2.5), size=size, kind=kind_s, bar=bool(rng.random() < 0.5), plate=plate)
        half_w, top = size * 0.7, q["h"] + size
    elif kind == "tree":
        q, half_w, top = _tree_params(rng)
        z = math.exp(rng.uniform(math.log(6.0), math.log(120.0)))
        u = side * (hr + 0.25 + sw + rng.uniform(-0.5, 12.0))
    elif kind == "bush":
        n = int(rng.integers(2, 5))
        width = rng.uniform(0.8, 2.5)
        green = np.array(_jit(rng, (65, 110, 50), 14))
        blobs = []
        for _ in range(n):
            x, y = rng.uniform(-0.5, 0.5) * width, rng.uniform(0.35, 0.6)
            r = rng.uniform(0.35, 0.6) * width / 1.5 + 0.2
            blobs.append((x, y, r, _c(green * rng.uniform(0.75, 1.15))))
        q = dict(blobs=blobs)
        z = math.exp(rng.uniform(math.log(4.0), math.log(60.0)))
        u = side * (hr + 0.25 + sw + rng.uniform(0.0, 6.0))
        half_w, top = width * 0.95 + 0.4, 1.6
    elif kind == "building":
        q, half_w, top = _building_params(rng, lay.urban)
        z = math.exp(rng.uniform(math.log(35.0), math.log(220.0)))
        if rng.random() < 0.7:
            u = side * (hr + sw + half_w + rng.uniform(1.0, 25.0))
        else:
            u = rng.uniform(-40, 40)
            z = rng.uniform(120.0, 250.0)
        outline = False
    elif kind == "fence":
        L = rng.uniform(3.0, 9.0)
        q = dict(
            L=L,
            h=rng.uniform(0.9, 1.4),
            col=_jit(rng, _pick(rng, [(235, 235, 230), (120, 85, 55), (90, 95, 100)]), 10),
        )
        u = side * (hr + 0.25 + sw + rng.uniform(0.0, 4.0))
        z = math.exp(rng.uniform(math.log(4.0), math.log(50.0)))
        half_w, top = L / 2 + 0.1, q["h"] + 0.05
    elif kind == "bench":
        L = rng.uniform(1.4, 2.0)
        q = dict(L=L, wood=_jit(rng, _pick(rng, [(130, 90, 55), (50, 100, 60)]), 12))
        half_w, top = L / 2, 0.8
        z = math.exp(rng.uniform(math.log(4.0), math.log(40.0)))
    elif kind == "bin":
        q = dict(col=_jit(rng, _pick(rng, [(50, 110, 60), (90, 92, 95), (40, 60, 120)]), 10))
        half_w, top = 0.3, 0.95
        z = math.exp(rng.uniform(math.log(4.0), math.log(35.0)))
    elif kind == "cone":
        q = {}
        u = side * (hr - rng.uniform(0.2, 1.5))
        half_w, top = 0.2, 0.7
        z = math.exp(rng.uniform(math.log(4.0), math.log(30.0)))
    else:  # bollard
        q = dict(col=_jit(rng, _pick(rng, [(40, 40, 42), (120, 122, 125)]), 8))
        u = side * (hr + 0.35)
        half_w, top = 0.1, 0.9
        z = math.exp(rng.uniform(math.log(4.0), math.log(35.0)))
    s = cam.f / z
    xa = cam.cx + lay.world_x(u, z) * s
    ya = cam.yh + cam.h * s
    shadow = 0.6 if kind in ("bench", "bin", "bush", "tree", "cone") else 0.0
    return _Obj(kind, z, xa, ya, s, half_w, top, flip, q, shadow=shadow, outline=outline)


def _visible_in_frame(o: _Obj, cam: _Camera) -> bool:
    x1, y1, x2, y2 = o.box()
    iw = min(x2, cam.w) - max(x1, 0)
    ih = min(y2, cam.H) - max(y1, 0)
    return iw > 1 and ih > 2


# --------------------------------------------------------------------------------------
# Rendering


def _shadow(img: np.ndarray, o: _Obj, cam: _Camera, k: float) -> None:
    ay = max(o.shadow * o.s * cam.h / o.z * 0.5, 0.8)
    _tint_ellipse(img, o.xa, o.ya, o.half_w * o.s * 1.05, ay, k)


def _paint(
    o: _Obj, img: np.ndarray, depth: np.ndarray, inst: np.ndarray, ident: int, cam: _Camera
) -> tuple[int, tuple[int, int, int, int]]:
    """Paint one object; return (painted area incl. outside the frame, frame region)."""
    if o.shadow > 0:
        _shadow(img, o, cam, 0.62)
    target = o.cls >= 0
    p = _Painter(o.xa, o.ya, o.s, o.half_w, o.top, o.flip, None if target else (cam.w, cam.H))
    if p.w == 0 or p.h == 0:
        return 0, (0, 0, 0, 0)
    _DRAW[o.kind](p, o.q)
    area = int(np.count_nonzero(p.mask))
    if area == 0:
        return 0, (0, 0, 0, 0)
    canvas = p.img
    if o.outline and o.top * o.s > 24:
        edge = p.mask & ~cv2.erode(p.mask, np.ones((3, 3), np.uint8))
        np.copyto(canvas, (canvas >> 1) + (canvas >> 3), where=edge.view(bool)[:, :, None])  # x 0.625
    if target or o.kind == "tree":
        # Soft vertical shading: a little brighter at the top, darker at the bottom.
        g = np.linspace(1.06, 0.86, p.h, dtype=np.float32)[:, None, None]
        canvas = cv2.convertScaleAbs(canvas * g)
    x0, y0 = max(p.x0, 0), max(p.y0, 0)
    x1, y1 = min(p.x0 + p.w, cam.w), min(p.y0 + p.h, cam.H)
    if x1 <= x0 or y1 <= y0:
        return area, (0, 0, 0, 0)
    sl = (slice(y0 - p.y0, y1 - p.y0), slice(x0 - p.x0, x1 - p.x0))
    m = p.mask[sl].view(bool)
    np.copyto(img[y0:y1, x0:x1], canvas[sl], where=m[:, :, None])
    np.copyto(depth[y0:y1, x0:x1], np.float32(o.z), where=m)
    np.copyto(inst[y0:y1, x0:x1], np.int16(ident), where=m)
    return area, (x0, y0, x1, y1)


def _visible_box(
    inst: np.ndarray, ident: int, region: tuple[int, int, int, int], area: int, ss: int, min_box: float
) -> tuple[float, float, float, float] | None:
    """Output-pixel box (x1, y1, x2, y2) of the pixels of ``ident`` left visible in ``inst``
    (internal resolution, searched within ``region``), or None when fewer than MIN_VISIBLE of
    its ``area`` painted pixels are visible or the box is under the min_box rule."""
    x0, y0, x1, y1 = region
    if area <= 0 or x1 <= x0 or y1 <= y0:
        return None
    vis = inst[y0:y1, x0:x1] == ident
    if np.count_nonzero(vis) < MIN_VISIBLE * area:
        return None
    rows = np.flatnonzero(vis.any(axis=1))
    cols = np.flatnonzero(vis.any(axis=0))
    bx1, bx2 = (x0 + cols[0]) / ss, (x0 + cols[-1] + 1) / ss
    by1, by2 = (y0 + rows[0]) / ss, (y0 + rows[-1] + 1) / ss
    w, h = bx2 - bx1, by2 - by1
    if math.sqrt(w * h) < min_box or min(w, h) < min_box / 2:
        return None
    return float(bx1), float(by1), float(bx2), float(by2)


def _layout(rng: np.random.Generator, cam: _Camera) -> _Layout:
    urban = bool(rng.random() < 0.6)
    lanes = int(rng.choice([2, 2, 2, 3, 4]))
    lane_w = rng.uniform(3.0, 3.6)
    half = lanes * lane_w / 2
    # Camera somewhere over the road (driving) or over a sidewalk (walking).
    if rng.random() < 0.8:
        x0 = -rng.uniform(-half * 0.8, half * 0.8)
    else:
        x0 = (half + 1.5) * (1 if rng.random() < 0.5 else -1)
    tan_yaw = math.tan(math.radians(rng.uniform(-9, 9)))
    return _Layout(
        x0=float(x0), tan_yaw=tan_yaw, lanes=lanes, lane_w=lane_w, sidewalk=rng.uniform(2.0, 4.5), urban=urban
    )


def render_scene(spec: SceneSpec, rng: np.random.Generator) -> Scene:
    """Draw one road scene with its exact target boxes and per-pixel depth."""
    ss = SUPERSAMPLE
    W, H = spec.width * ss, spec.height * ss
    cam = _Camera(
        f=FOCAL_FRACTION * W,
        cx=W / 2,
        yh=H * rng.uniform(0.35, 0.5),
        h=rng.uniform(1.2, 1.8),
        w=W,
        H=H,
    )
    lay = _layout(rng, cam)
    img = np.zeros((H, W, 3), np.uint8)
    depth = np.full((H, W), np.float32(SKY_DEPTH), np.float32)
    _sky(img, cam, rng)
    _horizon_band(img, depth, cam, rng, lay.urban)
    _ground(img, depth, cam, lay, rng)
    _ground_clutter(img, cam, rng)

    # Targets first (they get the space), then distractors that do not hide them.
    targets: list[_Obj] = []
    for _ in range(int(rng.integers(spec.targets[0], spec.targets[1] + 1))):
        cls = int(rng.integers(len(EMBEDDED_CLASSES)))
        for _attempt in range(10):
            o = _place_target(cls, spec, cam, lay, rng)
            if any(_too_close(o.box(), t.box()) for t in targets):
                continue
            targets.append(o)
            break
    kinds = _URBAN_KINDS if lay.urban else _RURAL_KINDS
    names, probs = list(kinds), np.array(list(kinds.values()))
    probs = probs / probs.sum()
    distractors: list[_Obj] = []
    n_d = int(rng.integers(spec.distractors[0], spec.distractors[1] + 1))
    tries = 0
    while len(distractors) < n_d and tries < 12 * n_d + 20:
        tries += 1
        kind = names[int(rng.choice(len(names), p=probs))]
        o = _place_distractor(kind, cam, lay, rng)
        if not _visible_in_frame(o, cam):
            continue
        b = o.box()
        hides = False
        for t in targets:
            if o.z < t.z:
                tb = t.box()
                iw = min(b[2], tb[2]) - max(b[0], tb[0])
                ih = min(b[3], tb[3]) - max(b[1], tb[1])
                if iw > 0 and ih > 0 and iw * ih > 0.3 * (tb[2] - tb[0]) * (tb[3] - tb[1]):
                    hides = True
                    break
        if not hides:
            distractors.append(o)

    objs = targets + distractors
    order = sorted(range(len(objs)), key=lambda i: (-objs[i].z, i))
    inst = np.full((H, W), -1, np.int16)
    painted: dict[int, tuple[int, tuple[int, int, int, int]]] = {}
    for i in order:
        area, region = _paint(objs[i], img, depth, inst, i if i < len(targets) else -1, cam)
        if i < len(targets):
            painted[i] = (area, region)

    # Boxes from the pixels still visible.
    boxes: list[Box] = []
    dists: list[float] = []
    remap = np.full(len(targets) + 1, -1, np.int16)  # index -1 -> -1 (last entry)
    for i, t in enumerate(targets):
        area, region = painted[i]
        box = _visible_box(inst, i, region, area, ss, spec.min_box)
        if box is None:
            continue
        remap[i] = len(boxes)
        boxes.append(Box(t.cls, *box))
        dists.append(float(np.float32(t.z)))

    out = cv2.resize(img, (spec.width, spec.height), interpolation=cv2.INTER_AREA)
    out = _finish(out, rng)
    c = ss // 2
    depth_out = np.ascontiguousarray(depth[c::ss, c::ss])
    inst_out = remap[inst[c::ss, c::ss]]
    return Scene(
        image=out,
        depth=depth_out,
        boxes=boxes,
        distances=dists,
        instance=inst_out,
        n_distractors=len(distractors),
        n_unboxed=len(targets) - len(boxes),
    )


def _finish(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per-image illumination and colour variation plus mild sensor noise."""
    gain = rng.uniform(0.85, 1.12)
    gamma = rng.uniform(0.85, 1.15)
    tint = rng.uniform(0.93, 1.07, 3)
    x = np.arange(256, dtype=np.float64) / 255.0
    lut = np.stack([np.clip((x**gamma) * gain * t * 255.0, 0, 255) for t in tint], axis=1)
    out = cv2.LUT(img, np.round(lut).astype(np.uint8)[None, :, :])
    sigma = rng.uniform(1.0, 3.5)
    noise = rng.standard_normal(img.shape[:2], dtype=np.float32) * np.float32(sigma)
    noisy = out.astype(np.float32)
    noisy += noise[:, :, None]
    return cv2.convertScaleAbs(cv2.max(noisy, 0.0))  # rounds and saturates at 255


def crop_objects(scene: Scene, size: int, margin: float = 0.15) -> list[tuple[np.ndarray, int]]:
    """Square crops around each target (with context margin, edge-padded at the borders),
    resized to ``size`` x ``size`` uint8 RGB, with their class index. Targets whose long side
    is under ``size / 4`` px are skipped."""
    out: list[tuple[np.ndarray, int]] = []
    img = scene.image
    H, W = img.shape[:2]
    for b in scene.boxes:
        w, h = b.x2 - b.x1, b.y2 - b.y1
        if max(w, h) < size / 4:
            continue
        side = max(w, h) * (1 + 2 * margin)
        cx, cy = (b.x1 + b.x2) / 2, (b.y1 + b.y2) / 2
        x0 = int(math.floor(cx - side / 2))
        y0 = int(math.floor(cy - side / 2))
        n = max(int(math.ceil(side)), 1)
        pad = max(0, -x0, -y0, x0 + n - W, y0 + n - H)
        src = img if pad == 0 else cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        crop = src[y0 + pad : y0 + pad + n, x0 + pad : x0 + pad + n]
        interp = cv2.INTER_AREA if n > size else cv2.INTER_LINEAR
        out.append((np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=interp)), b.cls))
    return out
