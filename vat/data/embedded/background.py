"""The background every object stands in front of: sky with clouds, a distant tree line or
hills on the horizon, the ground (road with lane markings, curbs, sidewalks, grass or gravel)
and ground clutter (stains, manhole covers)."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vat.data.embedded.camera import _Camera, _Layout
from vat.data.embedded.colours import _jit, _pick
from vat.data.embedded.painter import _tint_ellipse
from vat.data.embedded.scene import MAX_GROUND_DEPTH


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
    """Paint the ground below the horizon and write its depth (capped at MAX_GROUND_DEPTH)."""
    r0 = max(int(math.floor(cam.yh + 0.5)), 0)  # first row whose centre is below the horizon
    if r0 >= cam.H:
        return
    z, u = _ground_coords(cam, lay, r0)
    zc = z[:, None]
    mat = _materials(u, lay)

    # Material colours, jittered per image, with world-space texture.
    lut, amps = _material_colours(lay, rng)
    base = cv2.LUT(cv2.merge([mat, mat, mat]), lut)
    tex = _ground_texture(u, zc, rng)
    fac = np.take(amps, mat) * tex
    fac += 1.0
    col = base * fac[:, :, None]

    _sidewalk_tiles(col, mat, z, u, rng)
    _lane_markings(col, cam, lay, z, u, rng)
    img[r0:] = cv2.convertScaleAbs(col)
    depth[r0:] = zc


def _ground_coords(cam: _Camera, lay: _Layout, r0: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth z (R,) of the rows from r0 down, and u (R, W): metres right of the road centre."""
    dy = np.arange(r0, cam.H, dtype=np.float32) + np.float32(0.5 - cam.yh)
    z = np.minimum(np.float32(cam.f * cam.h) / dy, np.float32(MAX_GROUND_DEPTH))  # (R,)
    zc = z[:, None]
    xs = np.arange(cam.w, dtype=np.float32) + np.float32(0.5 - cam.cx)
    u = xs[None, :] * (zc / np.float32(cam.f)) - (np.float32(lay.x0) + np.float32(lay.tan_yaw) * zc)
    return z, u


def _materials(u: np.ndarray, lay: _Layout) -> np.ndarray:
    """Material index per ground pixel: 0 road, 1 curb, 2 sidewalk, 3 beyond (uint8)."""
    au = np.abs(u)
    hr = lay.half_road
    curb_out = hr + 0.25
    walk_out = curb_out + lay.sidewalk
    mat = (au >= hr).astype(np.uint8)  # 0 road, 1 curb, 2 sidewalk, 3 beyond
    mat += au >= curb_out
    mat += au >= walk_out
    return mat


def _material_colours(lay: _Layout, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A cv2 LUT from material index to colour, and each material's texture amplitude."""
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
    amps = np.array([0.07, 0.05, 0.08, beyond_amp], np.float32)
    return lut, amps


def _ground_texture(u: np.ndarray, zc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """World-space texture (perspective-correct, bilinear, wrapping): fine grain (a 64-cell
    tile of 0.2 m cells) plus large patches, in one 512 x 512 texture read by one remap."""
    fine, patches = _noise_tex(rng, 64, 0.8), _noise_tex(rng, 64, 2.5)
    tex_img = np.tile(fine, (8, 8))
    tex_img += 1.3 * cv2.resize(patches, (512, 512), interpolation=cv2.INTER_CUBIC)
    return cv2.remap(
        tex_img, u * 5.0, np.broadcast_to(zc * 5.0, u.shape), cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP
    )


def _sidewalk_tiles(
    col: np.ndarray, mat: np.ndarray, z: np.ndarray, u: np.ndarray, rng: np.random.Generator
) -> None:
    """Sidewalk tile joints, only near where they do not alias."""
    near = int(np.searchsorted(-z, -18.0))  # first row nearer than 18 m
    if near < z.size:
        tile = np.float32(rng.uniform(0.5, 0.9))
        un, zn = u[near:], z[near:, None]
        tiles = (mat[near:] == 2) & ((np.mod(un, tile) < 0.05) | (np.mod(zn, tile) < 0.05))
        col[near:][tiles] *= 0.8


def _lane_markings(
    col: np.ndarray, cam: _Camera, lay: _Layout, z: np.ndarray, u: np.ndarray, rng: np.random.Generator
) -> None:
    """Edge lines, lane lines (dashed, or a solid yellow centre line) and sometimes a zebra
    crossing, at least ~1.2 internal px wide so distant lines do not vanish."""
    zc = z[:, None]
    au = np.abs(u)
    hr = lay.half_road
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
