"""The embedded road-scene generator: determinism, geometry, exact boxes, depth, crops."""

from __future__ import annotations

import numpy as np
import pytest

from vat.data.classes import TASK_CLASSES
from vat.data.embedded import (
    EMBEDDED_CLASSES,
    MAX_GROUND_DEPTH,
    SKY_DEPTH,
    Scene,
    SceneSpec,
    _visible_box,
    crop_objects,
    render_scene,
)
from vat.data.manifest import Box
from vat.eval.viz import draw_boxes, grid, label_strip
from vat.seeding import item_rng

SPEC = SceneSpec()


def scene(i: int, spec: SceneSpec = SPEC, seed: int = 0) -> Scene:
    return render_scene(spec, item_rng(seed, "test-embedded", i))


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [scene(i) for i in range(40)]


def test_classes_follow_the_haze_task_order():
    assert EMBEDDED_CLASSES == TASK_CLASSES["haze"]


def test_same_seed_same_scene_other_seed_other_scene():
    a, b, c = scene(3), scene(3), scene(4)
    assert np.array_equal(a.image, b.image)
    assert np.array_equal(a.depth, b.depth)
    assert a.boxes == b.boxes and a.distances == b.distances
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.depth, c.depth)


def test_shapes_and_dtypes():
    for spec in (SPEC, SceneSpec(width=256, height=192), SceneSpec(width=128, height=96)):
        s = scene(0, spec)
        assert s.image.shape == (spec.height, spec.width, 3) and s.image.dtype == np.uint8
        assert s.depth.shape == (spec.height, spec.width) and s.depth.dtype == np.float32
        assert s.instance.shape == (spec.height, spec.width) and s.instance.dtype == np.int16
        assert np.isfinite(s.depth).all() and (s.depth > 0).all()
        assert len(s.distances) == len(s.boxes)


def test_boxes_inside_frame_with_valid_classes(scenes):
    n = 0
    for s in scenes:
        H, W = s.image.shape[:2]
        for b in s.boxes:
            assert isinstance(b, Box)
            assert 0 <= b.cls < len(EMBEDDED_CLASSES)
            assert 0 <= b.x1 < b.x2 <= W and 0 <= b.y1 < b.y2 <= H
            w, h = b.x2 - b.x1, b.y2 - b.y1
            assert np.sqrt(w * h) >= SPEC.min_box and min(w, h) >= SPEC.min_box / 2
            n += 1
    assert n >= len(scenes)  # about 3 per scene with targets (1, 5)


def test_boxes_are_tight_around_the_visible_pixels(scenes):
    """The pixels where a target is seen (instance map) fill its box edge to edge: their
    bounds match the box to within the pixel-centre sampling of the instance map."""
    devs = []
    for s in scenes:
        ids = set(np.unique(s.instance).tolist()) - {-1}
        assert ids == set(range(len(s.boxes)))  # every box is seen, nothing else is labelled
        for k, b in enumerate(s.boxes):
            m = s.instance == k
            rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
            devs.append(
                max(
                    abs(cols[0] - b.x1),
                    abs(cols[-1] + 1 - b.x2),
                    abs(rows[0] - b.y1),
                    abs(rows[-1] + 1 - b.y2),
                )
            )
    devs = np.array(devs)
    assert devs.max() <= 3.0
    assert np.percentile(devs, 90) <= 1.0


def test_target_pixels_differ_from_their_surroundings(scenes):
    """A box marks something painted: the image inside the instance mask is not just the
    background around it (mean colour differs from the ring of pixels just outside the box)."""
    diffs = []
    for s in scenes:
        img = s.image.astype(np.float32)
        H, W = img.shape[:2]
        for k, b in enumerate(s.boxes):
            m = s.instance == k
            x1, y1, x2, y2 = int(b.x1), int(b.y1), int(np.ceil(b.x2)), int(np.ceil(b.y2))
            ring = np.zeros((H, W), bool)
            ring[max(y1 - 3, 0) : min(y2 + 3, H), max(x1 - 3, 0) : min(x2 + 3, W)] = True
            ring[y1:y2, x1:x2] = False
            if ring.sum() < 10:
                continue
            diffs.append(np.abs(img[m].mean(0) - img[ring].mean(0)).max())
    assert np.median(diffs) > 15


def test_depth_geometry():
    """Empty scene: sky at SKY_DEPTH above the horizon; ground depth falls row by row towards
    the camera (grows towards the horizon) and never exceeds the cap."""
    s = scene(7, SceneSpec(targets=(0, 0), distractors=(0, 0)))
    assert s.boxes == [] and s.n_distractors == 0
    assert (s.depth[0] == SKY_DEPTH).all()
    col = s.depth[:, s.depth.shape[1] // 2]
    ground = col[col < MAX_GROUND_DEPTH]  # below the rows capped next to the horizon
    assert ground.size > 0.3 * col.size
    assert (np.diff(ground) < 0).all()  # nearer rows (lower in the image) are closer
    first_ground = int(np.argmax(col < MAX_GROUND_DEPTH))
    assert (col[first_ground:] < MAX_GROUND_DEPTH).all()
    assert (col[:first_ground] >= MAX_GROUND_DEPTH).all()  # sky / horizon band above the ground
    assert (s.depth[-1] < 10).all()  # the bottom row is a few metres away
    assert (s.depth[-1] == s.depth[-1, 0]).all()  # flat ground: depth depends on the row only


def test_sky_is_farther_than_the_ground(scenes):
    for s in scenes:
        assert (s.depth == SKY_DEPTH).any()
        assert np.median(s.depth[0]) > np.median(s.depth[-1])


def test_target_depth_equals_its_distance(scenes):
    for s in scenes:
        for k, z in enumerate(s.distances):
            d = s.depth[s.instance == k]
            assert d.size > 0
            assert (d == np.float32(z)).all()
            assert 1.0 < z < MAX_GROUND_DEPTH


def test_distractors_far_outnumber_targets(scenes):
    sub = scenes[:20]
    n_targets = np.mean([len(s.boxes) + s.n_unboxed for s in sub])
    n_distractors = np.mean([s.n_distractors for s in sub])
    assert n_distractors > 2.5 * n_targets
    for s in sub:
        assert SPEC.distractors[0] <= s.n_distractors <= SPEC.distractors[1]
        assert len(s.boxes) + s.n_unboxed <= SPEC.targets[1]


def test_all_classes_appear(scenes):
    counts = np.bincount([b.cls for s in scenes for b in s.boxes], minlength=len(EMBEDDED_CLASSES))
    assert (counts >= 5).all(), counts


def test_boxes_shrink_with_distance(scenes):
    h = np.array([b.y2 - b.y1 for s in scenes for b in s.boxes])
    inv_z = np.array([1.0 / z for s in scenes for z in s.distances])
    assert np.corrcoef(h, inv_z)[0, 1] > 0.6


def test_box_sizes_suit_a_small_detector(scenes):
    boxes = [b for s in scenes for b in s.boxes]
    long_side = np.array([max(b.x2 - b.x1, b.y2 - b.y1) for b in boxes])
    assert np.mean(long_side >= 12) > 0.9
    assert np.percentile(long_side, 90) > 0.25 * SPEC.height  # some large, near objects too


def test_visible_box_drops_hidden_and_tiny_targets():
    inst = np.full((40, 40), -1, np.int16)
    inst[10:30, 5:25] = 3  # 400 visible internal px, box (5, 10)-(25, 30) at ss = 1
    region = (0, 0, 40, 40)
    assert _visible_box(inst, 3, region, 400, 1, 8) == (5.0, 10.0, 25.0, 30.0)
    assert _visible_box(inst, 3, region, 400, 2, 8) == (2.5, 5.0, 12.5, 15.0)
    assert _visible_box(inst, 3, region, 1000, 1, 8) is not None  # 40 % visible: kept
    assert _visible_box(inst, 3, region, 1001, 1, 8) is None  # under 40 % visible: dropped
    assert _visible_box(inst, 3, region, 400, 1, 21) is None  # sqrt(area) 20 < min_box
    assert _visible_box(inst, 7, region, 400, 1, 8) is None  # nothing of it visible


def test_crop_objects(scenes):
    size = 48
    n = 0
    for s in scenes[:15]:
        crops = crop_objects(s, size)
        big = [b for b in s.boxes if max(b.x2 - b.x1, b.y2 - b.y1) >= size / 4]
        assert [c for _, c in crops] == [b.cls for b in big]
        for img, c in crops:
            assert img.shape == (size, size, 3) and img.dtype == np.uint8
            assert 0 <= c < len(EMBEDDED_CLASSES)
            n += 1
    assert n > 0


def test_crop_at_the_border_is_padded():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :10] = 200
    s = Scene(image=img, depth=np.ones((40, 60), np.float32), boxes=[Box(2, 0.0, 5.0, 20.0, 25.0)])
    ((crop, cls),) = crop_objects(s, 32)
    assert crop.shape == (32, 32, 3) and cls == 2
    assert crop[:, 0].mean() > 150  # replicated border, not black


def test_spec_validation():
    with pytest.raises(ValueError):
        SceneSpec(targets=(3, 1))
    with pytest.raises(ValueError):
        SceneSpec(width=16)
    with pytest.raises(ValueError):
        SceneSpec(distractors=(-1, 2))


def test_viz_draw_boxes_and_grid(scenes):
    s = next(s for s in scenes if s.boxes)
    before = s.image.copy()
    out = draw_boxes(s.image, s.boxes, EMBEDDED_CLASSES, scores=[0.5] * len(s.boxes))
    assert np.array_equal(s.image, before)  # input untouched
    assert out.shape == s.image.shape and out.dtype == np.uint8
    b = s.boxes[0]
    y = int(round((b.y1 + b.y2) / 2))
    assert (out[y, int(round(b.x1))] != s.image[y, int(round(b.x1))]).any()  # left edge drawn
    g = grid([s.image, s.image[:50, :70], label_strip(s.image, "car")], ncols=2, pad=2)
    H, W = s.image.shape[:2]
    assert g.shape == (2 * H + 3 * 2, 2 * W + 3 * 2, 3)
    assert label_strip(s.image, "car").shape[0] > H
