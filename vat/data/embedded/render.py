"""Rendering a scene: :func:`render_scene` (camera, background, targets and distractors painted
far to near, boxes from the pixels left visible, output finish) and :func:`crop_objects`."""

from __future__ import annotations

import math

import cv2
import numpy as np

from vat.data.embedded.background import _ground, _ground_clutter, _horizon_band, _sky
from vat.data.embedded.camera import _Camera, _layout
from vat.data.embedded.distractor_placement import _choose_distractors
from vat.data.embedded.objects import _DRAW, _Obj
from vat.data.embedded.painter import _Painter, _tint_ellipse
from vat.data.embedded.scene import (
    FOCAL_FRACTION,
    MIN_VISIBLE,
    SKY_DEPTH,
    SUPERSAMPLE,
    Scene,
    SceneSpec,
)
from vat.data.embedded.target_placement import _choose_targets
from vat.data.manifest import Box


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
    targets = _choose_targets(spec, cam, lay, rng)
    distractors = _choose_distractors(spec, cam, lay, rng, targets)
    inst, painted = _paint_all(targets, distractors, img, depth, cam)
    boxes, dists, remap = _target_boxes(targets, painted, inst, ss, spec.min_box)

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


def _paint_all(
    targets: list[_Obj], distractors: list[_Obj], img: np.ndarray, depth: np.ndarray, cam: _Camera
) -> tuple[np.ndarray, dict[int, tuple[int, tuple[int, int, int, int]]]]:
    """Paint every object far to near into ``img`` and ``depth``; return the instance map
    (target index per internal pixel, -1 elsewhere) and each target's (area, frame region)."""
    objs = targets + distractors
    order = sorted(range(len(objs)), key=lambda i: (-objs[i].z, i))
    inst = np.full((cam.H, cam.w), -1, np.int16)
    painted: dict[int, tuple[int, tuple[int, int, int, int]]] = {}
    for i in order:
        area, region = _paint(objs[i], img, depth, inst, i if i < len(targets) else -1, cam)
        if i < len(targets):
            painted[i] = (area, region)
    return inst, painted


def _target_boxes(
    targets: list[_Obj],
    painted: dict[int, tuple[int, tuple[int, int, int, int]]],
    inst: np.ndarray,
    ss: int,
    min_box: float,
) -> tuple[list[Box], list[float], np.ndarray]:
    """Boxes from the pixels still visible: (boxes, their targets' depths, a map from target
    index to box index with -1 for unboxed targets and, as the last entry, for index -1)."""
    boxes: list[Box] = []
    dists: list[float] = []
    remap = np.full(len(targets) + 1, -1, np.int16)  # index -1 -> -1 (last entry)
    for i, t in enumerate(targets):
        area, region = painted[i]
        box = _visible_box(inst, i, region, area, ss, min_box)
        if box is None:
            continue
        remap[i] = len(boxes)
        boxes.append(Box(t.cls, *box))
        dists.append(float(np.float32(t.z)))
    return boxes, dists, remap


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
