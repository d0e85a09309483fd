"""Drawings of the distractors (street furniture, trees, bushes, buildings, fences), in metres
on a :class:`_Painter`."""

from __future__ import annotations

import numpy as np

from vat.data.embedded.colours import _shade
from vat.data.embedded.painter import _Painter


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
