"""Targets: what each one looks like (class, view, size, colours), at what distance and where
across the road it stands, and choosing a scene's targets so that they do not overlap."""

from __future__ import annotations

import math

import numpy as np

from vat.data.embedded.camera import _Camera, _Layout
from vat.data.embedded.colours import (
    _BUS_COLOURS,
    _CAR_COLOURS,
    _CLOTHES,
    _HAIR,
    _PANTS,
    _SKIN,
    _glass,
    _jit,
    _pick,
)
from vat.data.embedded.objects import _Obj
from vat.data.embedded.scene import (
    BICYCLE,
    BUS,
    CAR,
    EMBEDDED_CLASSES,
    MAX_TARGET_IOU,
    MOTORBIKE,
    PERSON,
    SceneSpec,
)


def _choose_targets(spec: SceneSpec, cam: _Camera, lay: _Layout, rng: np.random.Generator) -> list[_Obj]:
    """A scene's targets: a random count of random classes, each redrawn (up to 10 times) while it
    is too close to one already placed, and dropped after that."""
    targets: list[_Obj] = []
    for _ in range(int(rng.integers(spec.targets[0], spec.targets[1] + 1))):
        cls = int(rng.integers(len(EMBEDDED_CLASSES)))
        for _attempt in range(10):
            o = _place_target(cls, spec, cam, lay, rng)
            if any(_too_close(o.box(), t.box()) for t in targets):
                continue
            targets.append(o)
            break
    return targets


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
        return _car_params(k, rim, rng)
    if cls == BUS:
        return _bus_params(k, rim, rng)
    if cls == BICYCLE:
        L, H = 1.7 * k, 1.1 * k
        frame = _jit(rng, _pick(rng, _CLOTHES), 20)
        return "bicycle", dict(L=L, H=H, frame=frame), L / 2, H, 0.5
    if cls == MOTORBIKE:
        L, H = 2.0 * k, 1.2 * k
        body = _jit(rng, _pick(rng, _CAR_COLOURS + _CLOTHES), 15)
        return "motorbike", dict(L=L, H=H, body=body), L / 2, H, 0.7
    return _person_params(k, rng)


def _car_params(k: float, rim, rng: np.random.Generator) -> tuple[str, dict, float, float, float]:
    """A car seen from the side (65 %) or from the back or front; k scales its size."""
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


def _bus_params(k: float, rim, rng: np.random.Generator) -> tuple[str, dict, float, float, float]:
    """A bus seen from the side (70 %) or from the back or front; k scales its size."""
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


def _person_params(k: float, rng: np.random.Generator) -> tuple[str, dict, float, float, float]:
    """A person walking (side view, 55 %) or standing (front view); k scales the height."""
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
    """One target of class ``cls``: its look, its distance and its place across the road."""
    kind, q, half_w, top, shadow = _target_params(cls, rng)
    z = _target_depth(cls, kind, q, spec, cam, rng)
    s = cam.f / z
    xa = _target_column(kind, half_w, z, cam, lay, rng)
    ya = cam.yh + cam.h * s
    flip = bool(rng.random() < 0.5)
    return _Obj(kind, z, xa, ya, s, half_w, top, flip, q, cls=cls, shadow=shadow)


def _target_depth(
    cls: int, kind: str, q: dict, spec: SceneSpec, cam: _Camera, rng: np.random.Generator
) -> float:
    """Distance (m) giving a log-uniform apparent size, near enough to keep the base in frame."""
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
    return min(max(z, z_min * 1.02), 150.0)


def _target_column(
    kind: str, half_w: float, z: float, cam: _Camera, lay: _Layout, rng: np.random.Generator
) -> float:
    """Anchor column (internal px): up to four lateral positions are tried for one with at least
    75 % of the width in frame; failing that, a random column that keeps it all in frame."""
    s = cam.f / z
    for _ in range(4):
        u = _target_lateral(kind, lay, rng)
        xa = cam.cx + lay.world_x(u, z) * s
        x1, x2 = xa - half_w * s, xa + half_w * s
        inside = (min(x2, cam.w) - max(x1, 0)) / max(x2 - x1, 1e-6)
        if inside >= 0.75:
            return xa
    width = 2 * half_w * s
    if width < cam.w:
        return rng.uniform(half_w * s, cam.w - half_w * s)
    return cam.w / 2


def _target_lateral(kind: str, lay: _Layout, rng: np.random.Generator) -> float:
    """Metres right of the road centre: vehicles in the lanes, bicycles at the road edge or on
    a sidewalk, people mostly on the sidewalks."""
    hr = lay.half_road
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
    return u
