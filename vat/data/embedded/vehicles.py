"""Drawings of the vehicle targets (car and bus from the side or an end, bicycle, motorbike),
in metres on a :class:`_Painter`. Canonical pose: facing +x; side views span x in 0..L via
``p.ox = -L / 2``."""

from __future__ import annotations

import math

import numpy as np

from vat.data.embedded.colours import _TYRE, _shade
from vat.data.embedded.painter import _Painter


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
