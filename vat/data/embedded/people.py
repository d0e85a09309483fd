"""Drawing of the person target, walking (side view) or standing (front view), in metres on a
:class:`_Painter`."""

from __future__ import annotations

from vat.data.embedded.colours import _shade
from vat.data.embedded.painter import _Painter


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
