"""One placed object (:class:`_Obj`: kind, depth, anchor, size, drawing parameters) and the
drawing function of each kind (:data:`_DRAW`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from vat.data.embedded.painter import _Painter
from vat.data.embedded.people import _person
from vat.data.embedded.street import (
    _bench,
    _bin,
    _bollard,
    _building,
    _bush,
    _cone,
    _fence,
    _lamp,
    _sign,
    _traffic_light,
    _tree,
)
from vat.data.embedded.vehicles import _bicycle, _bus_end, _bus_side, _car_end, _car_side, _motorbike


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
