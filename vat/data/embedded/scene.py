"""What a scene is: the class list and rendering constants, :class:`SceneSpec` (what to draw)
and :class:`Scene` (what was drawn)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from vat.data.manifest import Box

EMBEDDED_CLASSES = ["bicycle", "bus", "car", "motorbike", "person"]
BICYCLE, BUS, CAR, MOTORBIKE, PERSON = range(5)

SKY_DEPTH = 1000.0  # metres, the depth map's value for sky pixels
MAX_GROUND_DEPTH = 400.0  # metres, cap of ground depth next to the horizon
SUPERSAMPLE = 2  # internal drawing scale (anti-aliasing)
FOCAL_FRACTION = 0.9  # focal length in px = FOCAL_FRACTION * width
MIN_VISIBLE = 0.4  # a target keeps its box when at least this fraction of it is visible
MAX_TARGET_IOU = 0.3  # target placements overlapping a placed one more than this are rejected


@dataclass(frozen=True)
class SceneSpec:
    """What to draw: image size in px, how many targets and distractors, smallest box."""

    width: int = 320
    height: int = 240
    targets: tuple[int, int] = (1, 5)  # target objects per image, inclusive range
    distractors: tuple[int, int] = (8, 20)  # non-target objects per image, inclusive range
    # A target keeps its box when sqrt(w * h) >= min_box and min(w, h) >= min_box / 2 (px),
    # so a distant pedestrian (narrow, tall) counts while a speck does not.
    min_box: int = 8

    def __post_init__(self) -> None:
        if self.width < 32 or self.height < 32:
            raise ValueError(f"SceneSpec: image must be at least 32x32 px, got {self.width}x{self.height}")
        for name in ("targets", "distractors"):
            lo, hi = getattr(self, name)
            if not 0 <= lo <= hi:
                raise ValueError(f"SceneSpec.{name} must be (lo, hi) with 0 <= lo <= hi, got {(lo, hi)}")
        if self.min_box < 1:
            raise ValueError("SceneSpec.min_box must be at least 1")


@dataclass
class Scene:
    """One rendered scene."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32, metres from the camera; sky = SKY_DEPTH
    boxes: list[Box]  # visible extent of each target, px x1 y1 x2 y2; cls indexes EMBEDDED_CLASSES
    distances: list[float] = field(default_factory=list)  # per box: the target's depth, metres
    # (H, W) int16: index into ``boxes`` of the boxed target seen at each pixel, -1 elsewhere;
    # like ``depth``, sampled at one internal (supersampled) pixel per output pixel.
    instance: np.ndarray | None = None
    n_distractors: int = 0  # non-target objects placed in view
    n_unboxed: int = 0  # targets drawn but left without a box (hidden, cut or too small)
