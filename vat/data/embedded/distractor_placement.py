"""Distractors: how often each kind appears (urban or rural), what each one looks like and
where it stands, and choosing a scene's distractors so that none hides a farther target."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vat.data.embedded.camera import _Camera, _Layout
from vat.data.embedded.colours import _CLOTHES, _c, _jit, _pick
from vat.data.embedded.objects import _Obj
from vat.data.embedded.scene import SceneSpec

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

_FACADES = [
    (205, 195, 175),
    (170, 170, 172),
    (165, 90, 70),
    (225, 220, 210),
    (140, 120, 100),
    (190, 170, 130),
    (120, 135, 150),
]


def _choose_distractors(
    spec: SceneSpec, cam: _Camera, lay: _Layout, rng: np.random.Generator, targets: list[_Obj]
) -> list[_Obj]:
    """A scene's distractors: a random count of kinds drawn by the urban or rural weights, each
    kept when it is in frame and does not hide a farther target (a bounded number of tries)."""
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
        if not _hides_a_target(o, targets):
            distractors.append(o)
    return distractors


def _hides_a_target(o: _Obj, targets: list[_Obj]) -> bool:
    """Whether ``o`` is nearer than some target and covers over 30 % of that target's box."""
    b = o.box()
    for t in targets:
        if o.z < t.z:
            tb = t.box()
            iw = min(b[2], tb[2]) - max(b[0], tb[0])
            ih = min(b[3], tb[3]) - max(b[1], tb[1])
            if iw > 0 and ih > 0 and iw * ih > 0.3 * (tb[2] - tb[0]) * (tb[3] - tb[1]):
                return True
    return False


def _visible_in_frame(o: _Obj, cam: _Camera) -> bool:
    x1, y1, x2, y2 = o.box()
    iw = min(x2, cam.w) - max(x1, 0)
    ih = min(y2, cam.H) - max(y1, 0)
    return iw > 1 and ih > 2


@dataclass
class _Spot:
    """Where a distractor stands and how it is drawn. Drawn the same way for every kind first
    (a side of the road, a depth, a place on the sidewalk, a facing); some kinds then move it."""

    side: int  # +1 right of the road, -1 left
    z: float  # depth, m
    u: float  # metres right of the road centre
    flip: bool
    outline: bool = True


def _place_distractor(kind: str, cam: _Camera, lay: _Layout, rng: np.random.Generator) -> _Obj:
    """One distractor of ``kind``: its look and its place beside the road."""
    hr, sw = lay.half_road, lay.sidewalk
    side = 1 if rng.random() < 0.5 else -1
    z = math.exp(rng.uniform(math.log(5.0), math.log(90.0)))
    u = side * (hr + 0.25 + rng.uniform(0.2, sw))  # on the sidewalk
    flip = bool(rng.random() < 0.5)
    spot = _Spot(side, z, u, flip)
    q, half_w, top = _PARAMS[kind](spot, lay, rng)
    s = cam.f / spot.z
    xa = cam.cx + lay.world_x(spot.u, spot.z) * s
    ya = cam.yh + cam.h * s
    shadow = 0.6 if kind in ("bench", "bin", "bush", "tree", "cone") else 0.0
    return _Obj(kind, spot.z, xa, ya, s, half_w, top, spot.flip, q, shadow=shadow, outline=spot.outline)


# Each kind's parameters: (spot, layout, rng) -> (drawing params, half width m, top m); may move the spot.


def _lamp_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    h = rng.uniform(5.5, 9.0)
    arm = rng.uniform(1.0, 2.0)
    q = dict(h=h, arm=arm, col=_jit(rng, _pick(rng, [(70, 72, 76), (45, 70, 55), (110, 112, 115)]), 8))
    spot.u = spot.side * (lay.half_road + rng.uniform(0.4, 0.9))
    spot.flip = spot.side > 0  # the arm reaches over the road
    return q, arm + 0.4, h + 0.5


def _traffic_light_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    h = rng.uniform(3.2, 4.2)
    q = dict(h=h, on=int(rng.integers(3)))
    spot.u = spot.side * (lay.half_road + rng.uniform(0.4, 0.9))
    return q, 0.25, h + 0.05


def _sign_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    size = rng.uniform(0.55, 0.9)
    kinds = ["round", "blue", "triangle", "stop", "rect"]
    plate = _jit(rng, _pick(rng, [(30, 80, 180), (30, 120, 60)]), 10)
    kind_s = kinds[int(rng.integers(len(kinds)))]
    q = dict(h=rng.uniform(1.9, 2.5), size=size, kind=kind_s, bar=bool(rng.random() < 0.5), plate=plate)
    return q, size * 0.7, q["h"] + size


def _tree_distractor(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    q, half_w, top = _tree_params(rng)
    spot.z = math.exp(rng.uniform(math.log(6.0), math.log(120.0)))
    spot.u = spot.side * (lay.half_road + 0.25 + lay.sidewalk + rng.uniform(-0.5, 12.0))
    return q, half_w, top


def _bush_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    n = int(rng.integers(2, 5))
    width = rng.uniform(0.8, 2.5)
    green = np.array(_jit(rng, (65, 110, 50), 14))
    blobs = []
    for _ in range(n):
        x, y = rng.uniform(-0.5, 0.5) * width, rng.uniform(0.35, 0.6)
        r = rng.uniform(0.35, 0.6) * width / 1.5 + 0.2
        blobs.append((x, y, r, _c(green * rng.uniform(0.75, 1.15))))
    q = dict(blobs=blobs)
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(60.0)))
    spot.u = spot.side * (lay.half_road + 0.25 + lay.sidewalk + rng.uniform(0.0, 6.0))
    return q, width * 0.95 + 0.4, 1.6


def _building_distractor(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    q, half_w, top = _building_params(rng, lay.urban)
    spot.z = math.exp(rng.uniform(math.log(35.0), math.log(220.0)))
    if rng.random() < 0.7:
        spot.u = spot.side * (lay.half_road + lay.sidewalk + half_w + rng.uniform(1.0, 25.0))
    else:
        spot.u = rng.uniform(-40, 40)
        spot.z = rng.uniform(120.0, 250.0)
    spot.outline = False
    return q, half_w, top


def _fence_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    L = rng.uniform(3.0, 9.0)
    q = dict(
        L=L,
        h=rng.uniform(0.9, 1.4),
        col=_jit(rng, _pick(rng, [(235, 235, 230), (120, 85, 55), (90, 95, 100)]), 10),
    )
    spot.u = spot.side * (lay.half_road + 0.25 + lay.sidewalk + rng.uniform(0.0, 4.0))
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(50.0)))
    return q, L / 2 + 0.1, q["h"] + 0.05


def _bench_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    L = rng.uniform(1.4, 2.0)
    q = dict(L=L, wood=_jit(rng, _pick(rng, [(130, 90, 55), (50, 100, 60)]), 12))
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(40.0)))
    return q, L / 2, 0.8


def _bin_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    q = dict(col=_jit(rng, _pick(rng, [(50, 110, 60), (90, 92, 95), (40, 60, 120)]), 10))
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(35.0)))
    return q, 0.3, 0.95


def _cone_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    spot.u = spot.side * (lay.half_road - rng.uniform(0.2, 1.5))
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(30.0)))
    return {}, 0.2, 0.7


def _bollard_params(spot: _Spot, lay: _Layout, rng: np.random.Generator) -> tuple[dict, float, float]:
    q = dict(col=_jit(rng, _pick(rng, [(40, 40, 42), (120, 122, 125)]), 8))
    spot.u = spot.side * (lay.half_road + 0.35)
    spot.z = math.exp(rng.uniform(math.log(4.0), math.log(35.0)))
    return q, 0.1, 0.9


_PARAMS: dict[str, Callable[[_Spot, _Layout, np.random.Generator], tuple[dict, float, float]]] = {
    "lamp": _lamp_params,
    "traffic_light": _traffic_light_params,
    "sign": _sign_params,
    "tree": _tree_distractor,
    "bush": _bush_params,
    "building": _building_distractor,
    "fence": _fence_params,
    "bench": _bench_params,
    "bin": _bin_params,
    "cone": _cone_params,
    "bollard": _bollard_params,
}


def _tree_params(rng: np.random.Generator) -> tuple[dict, float, float]:
    """(params, half width m, top m) of a tree: a conifer (tiers) or a leafy crown (blobs)."""
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
    """(params, half width m, top m) of a building: tall and flat-roofed in town, else a house."""
    if urban:
        w = rng.uniform(8, 28)
        h = rng.uniform(7, 40)
        roof = "flat"
    else:
        w = rng.uniform(7, 14)
        h = rng.uniform(3.5, 7)
        roof = "gable" if rng.random() < 0.7 else "flat"
    col = _jit(rng, _pick(rng, _FACADES), 14)
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
