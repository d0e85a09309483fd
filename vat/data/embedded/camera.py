"""The pinhole camera (:class:`_Camera`) and the road layout (:class:`_Layout`, drawn by
:func:`_layout`): where the road, its lanes and sidewalks are relative to the camera."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


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
