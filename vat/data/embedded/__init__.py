"""The embedded default dataset: synthetic road scenes with exact boxes and per-pixel depth.

What a scene contains
---------------------
A road seen from a camera at human or dashcam height: sky (gradient and clouds) above a
horizon row, ground below it (asphalt road with lane markings and sometimes a zebra
crossing, curbs, paved sidewalks, grass or gravel beyond), a skyline of buildings or a
distant tree line on the horizon, and upright objects standing on the ground:

* **targets**, the five classes of :data:`EMBEDDED_CLASSES` (the order of
  ``vat.data.classes.TASK_CLASSES["haze"]``): bicycle, bus, car, motorbike, person. Cars and
  buses are drawn from the side or from the back/front, bicycles and motorbikes from the
  side, people walking (side) or standing (front), each facing left or right, with
  randomised colours and a +-12 % size variation around real sizes (car 4.2 x 1.5 m,
  bus 11 x 3.2 m, bicycle 1.7 x 1.1 m, motorbike 2.0 x 1.2 m, person 0.5 x 1.75 m).
* **distractors**, which far outnumber the targets (the paper's m << n argument): street
  lamps, traffic lights, signs, trees, bushes, buildings, fences, benches, bins, cones,
  bollards; plus ground clutter (stains, manhole covers) that is not counted.

Camera model and units
----------------------
A pinhole camera with square pixels, looking horizontally (no pitch or roll), at height
``cam_h`` (1.2-1.8 m) above a flat ground. Focal length ``f = 0.9 * width`` px (horizontal
field of view about 58 degrees), principal point at the image centre column and at the
horizon row ``y_h`` (35-50 % of the height from the top). A point on the ground at depth
``z`` metres lies on row ``y = y_h + f * cam_h / z``; an object of height ``h`` metres at
depth ``z`` is ``f * h / z`` px tall. The road runs at a small yaw, so its lane lines
converge to a vanishing point on the horizon that is not always the image centre.

Everything is painted far to near (painter's algorithm). Each object is flat and
upright at one depth, so the depth map holds, per pixel, that object's distance in metres;
ground pixels hold ``f * cam_h / (y - y_h)`` for the row ``y`` of the pixel's sample point,
capped at :data:`MAX_GROUND_DEPTH` (which the distant hills on the horizon also hold); the
sky holds :data:`SKY_DEPTH`. Depth and the instance map are sampled at one supersampled
point per output pixel; the image is the area average.

A target's distance is chosen so that its nominal box size (geometric mean of width and
height) is log-uniform between ``max(1.5 * min_box, 10)`` px and ``0.42 * height`` px (moved
farther if its base would fall below the frame), so boxes shrink with distance and most are
12 px or more on the long side. Targets stand on the road, its edge or the sidewalks
(depending on the class); a placement overlapping an earlier target (IoU > 0.3, or half
inside it) is redrawn, and distractors that would cover 30 % of a farther target's box are
not placed.

Scenes are drawn at :data:`SUPERSAMPLE` times the output size and area-averaged down
(anti-aliasing). A target's box is the bounds of its pixels that are still visible after
all nearer objects are painted, in output pixels at 1 / SUPERSAMPLE px precision; a target
that is less than 40 % visible (occluded or cut by the border) or smaller than
:attr:`SceneSpec.min_box` keeps its pixels but gets no box.

All randomness comes from the generator passed to :func:`render_scene`, so the same spec
and seed give identical arrays.

Modules
-------
* :mod:`~vat.data.embedded.scene`: the class list and constants, :class:`SceneSpec`, :class:`Scene`;
* :mod:`~vat.data.embedded.render`: :func:`render_scene` and :func:`crop_objects`;
* :mod:`~vat.data.embedded.camera`: the pinhole camera and the road layout;
* :mod:`~vat.data.embedded.background`: sky, horizon band, ground and ground clutter;
* :mod:`~vat.data.embedded.painter` and :mod:`~vat.data.embedded.colours`: drawing in metres,
  colour helpers and palettes;
* :mod:`~vat.data.embedded.vehicles`, :mod:`~vat.data.embedded.people`,
  :mod:`~vat.data.embedded.street`: the drawing of each object kind;
* :mod:`~vat.data.embedded.objects`: a placed object and the drawing function of each kind;
* :mod:`~vat.data.embedded.target_placement`, :mod:`~vat.data.embedded.distractor_placement`:
  what targets and distractors look like and where they stand.
"""

from __future__ import annotations

from vat.data.embedded.render import _visible_box, crop_objects, render_scene
from vat.data.embedded.scene import (
    BICYCLE,
    BUS,
    CAR,
    EMBEDDED_CLASSES,
    FOCAL_FRACTION,
    MAX_GROUND_DEPTH,
    MAX_TARGET_IOU,
    MIN_VISIBLE,
    MOTORBIKE,
    PERSON,
    SKY_DEPTH,
    SUPERSAMPLE,
    Scene,
    SceneSpec,
)

__all__ = [
    "BICYCLE",
    "BUS",
    "CAR",
    "EMBEDDED_CLASSES",
    "FOCAL_FRACTION",
    "MAX_GROUND_DEPTH",
    "MAX_TARGET_IOU",
    "MIN_VISIBLE",
    "MOTORBIKE",
    "PERSON",
    "SKY_DEPTH",
    "SUPERSAMPLE",
    "Scene",
    "SceneSpec",
    "_visible_box",  # for tests/test_embedded.py
    "crop_objects",
    "render_scene",
]
