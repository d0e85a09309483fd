"""Colour helpers (clamp, jitter, shade, pick from a palette) and the palettes the objects are
painted from."""

from __future__ import annotations

import numpy as np


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
