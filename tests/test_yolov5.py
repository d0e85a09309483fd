"""YOLOv5Detector: the original anchor-based YOLOv5 (v7.0) as the frozen D.

Cross-checked against the reference code (PyPI ``yolov5`` 7.0.14, imported with stand-ins by
:mod:`vat.bench.yolov5_reference`; those tests skip, saying why, when it cannot be imported):
same raw outputs, same loss as ``ComputeLoss`` with unit weights, same boxes as
``non_max_suppression``. Then per-box weights and the frozen contract. The files and
:func:`load_detector`: ``test_yolov5_files.py`` (which shares this module's helpers).
"""

from __future__ import annotations

import os
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from conftest import f32_close
from torch import nn

from vat.bench.yolov5_reference import import_reference
from vat.errors import DataError
from vat.models.detectors import Targets, YOLOv5Detector, save_detector
from vat.models.detectors.yolov5_net import YOLOv5Model, load_yolov5_yaml

NC = 5
REF = import_reference()
needs_reference = pytest.mark.skipif(isinstance(REF, str), reason=str(REF))


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny convolutions on a shared 2-core machine: one intra-op thread (see test_detector.py)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _lively(
    imgsz: int = 96, seed: int = 0, nc: int = NC, yaml: str | Path = "yolov5:yolov5n.yaml"
) -> YOLOv5Detector:
    """A random-weight yolov5n that reacts to its input (as conftest.lively_detector): BatchNorm
    statistics from one batch of 16 random images (with 4, a new image's deepest features come
    out 10-30 times larger than the batch's), head biases 0 and head weights scaled so that its
    logits have standard deviation 1 on that batch (varied scores and boxes)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        det = YOLOv5Detector(yaml, nc=nc, imgsz=imgsz)
        with torch.no_grad():
            for m in det.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.reset_running_stats()
                    m.momentum = None
            batch = torch.rand(16, 3, imgsz, imgsz)
            nn.Module.train(det.model, True)  # bypass the wrapper's guard, on purpose, to calibrate
            det.model(batch)
            det.model.eval()
            for conv, f in zip(det.head.m, det.model.features(batch), strict=True):
                conv.bias.zero_()
                conv.weight.mul_(1.0 / conv(f).std())
    return det


@pytest.fixture(scope="module")
def det() -> YOLOv5Detector:
    return _lively()


def _reference_yaml(name: str) -> Path:
    """A model yaml of the reference package (its files, not its code), else skip."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("yolov5")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("the yolov5 package (YOLOv5 v7.0 reference) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "models" / name


def _reference_model(d: YOLOv5Detector):
    ref = REF.Model(deepcopy(d.model.yaml))
    ref.load_state_dict(d.model.state_dict())
    return ref.eval().requires_grad_(False)


def _images(b: int = 2, h: int = 70, w: int = 90, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


BOX_A = [10.0, 8.0, 50.0, 56.0]  # A and B: nearly the same box, one class: they share cells
BOX_B = [12.0, 10.0, 52.0, 58.0]


def _targets(w_b: float | None = 1.0, w_c: float = 1.0) -> list[dict]:
    """Image 0: boxes A, B (weight ``w_b``; None = absent) and a small one; image 1: box C alone."""
    boxes, classes, weights = [BOX_A, [60.0, 40.0, 75.0, 52.0]], [2, 1], [1.0, 1.0]
    if w_b is not None:
        boxes, classes, weights = [*boxes, BOX_B], [*classes, 2], [*weights, w_b]
    first = {"boxes": torch.tensor(boxes), "classes": torch.tensor(classes), "weights": torch.tensor(weights)}
    second = {"boxes": torch.tensor([[40.0, 5.0, 88.0, 60.0]]), "classes": torch.tensor([4])}
    second["weights"] = torch.tensor([w_c])
    return [first, second]


def _loss_and_grad(d, x, targets, **kw):
    x = x.clone().requires_grad_(True)
    total, parts = d.loss(x, targets, **kw)
    total.backward()
    return total.detach(), parts, x.grad


def _table(d: YOLOv5Detector, x: torch.Tensor, targets) -> torch.Tensor:
    """The targets as YOLOv5's (M, 6) table in the letterboxed frame."""
    xl, scale, pad = d.letterbox(x)
    t = Targets.from_list(targets)
    return d.yolo_targets(t, tuple(x.shape[-2:]), tuple(xl.shape[-2:]), scale, pad)[:, :6]


# -- the network and its outputs ----------------------------------------------------------------


def test_yaml_is_the_repository_architecture():
    ours = YOLOv5Model(load_yolov5_yaml("yolov5n.yaml"))
    assert ours.stride.tolist() == [8, 16, 32] and ours.model[0].conv.out_channels == 16
    assert YOLOv5Model(load_yolov5_yaml("yolov5:yolov5s.yaml")).model[0].conv.out_channels == 32
    theirs = YOLOv5Model(load_yolov5_yaml(_reference_yaml("yolov5n.yaml")))
    shapes = {k: v.shape for k, v in theirs.state_dict().items()}
    assert shapes == {k: v.shape for k, v in ours.state_dict().items()}
    assert all(m.eps == 1e-3 for m in ours.modules() if isinstance(m, nn.BatchNorm2d))


def test_bad_yamls_are_refused(tmp_path):
    with pytest.raises(DataError, match="no anchors"):
        YOLOv5Detector(str(Path(__import__("ultralytics").__file__).parent / "cfg/models/v5/yolov5.yaml"))
    bad = load_yolov5_yaml("yolov5n.yaml")
    bad["backbone"][2][2] = "BottleneckCSP"
    with pytest.raises(DataError, match="BottleneckCSP"):
        YOLOv5Detector(bad)
    with pytest.raises(DataError, match="no-such.yaml"):
        YOLOv5Detector("yolov5:no-such.yaml")


@needs_reference
def test_raw_outputs_are_the_references(det):
    ref = _reference_model(det)
    xl, _, _ = det.letterbox(_images())
    with torch.no_grad():
        z, raw = ref(xl)
        ours = det._raw(xl)
        decoded = det.head.decode(ours)
    for a, b in zip(ours, raw, strict=True):
        assert a.shape == b.shape and float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    assert float((decoded - z).abs().max()) <= 1e-5 * float(z.abs().max())
    assert float(z[..., 4].std()) > 0.01  # calibrated: objectness depends on the input


LOSS_HYPS = {
    "train.py": {},
    "smoothing, pos_weight, focal": {"label_smoothing": 0.1, "cls_pw": 2.0, "obj_pw": 0.5, "fl_gamma": 1.5},
}


@needs_reference
@pytest.mark.parametrize("shape", [(64, 96), (70, 90)])  # already letterboxed; resized and padded
@pytest.mark.parametrize("hyp", list(LOSS_HYPS))
def test_unit_weight_loss_is_compute_loss(shape, hyp):
    d = _lively()
    d.hyp = {**d.hyp, **LOSS_HYPS[hyp]}
    ref = _reference_model(d)
    ref.hyp = dict(d.hyp)
    x = _images(h=shape[0], w=shape[1])
    total, parts, grad = _loss_and_grad(d, x, _targets(1.0))
    xr = x.clone().requires_grad_(True)
    ref_total, ref_parts = REF.ComputeLoss(ref)(ref(d.letterbox(xr)[0])[1], _table(d, x, _targets(1.0)))
    ref_total.sum().backward()
    torch.testing.assert_close(total, ref_total.detach().reshape(()), rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(parts, ref_parts, rtol=1e-5, atol=1e-7)
    assert float((grad - xr.grad).norm()) <= 1e-4 * float(xr.grad.norm())
    assert parts.min() > 0


@needs_reference
@pytest.mark.parametrize(("name", "imgsz"), [("hub/yolov5n6.yaml", 128), ("hub/yolov3-tiny.yaml", 64)])
def test_other_repository_yamls_give_the_references_outputs_and_loss(name, imgsz):
    """P6 (four levels, stride 64) and YOLOv3-tiny (two levels, max-pools): the yaml rules, the
    head and the per-level objectness balance of other level counts."""
    d = _lively(imgsz=imgsz, yaml=_reference_yaml(name))
    assert d.head.nl == {"hub/yolov5n6.yaml": 4, "hub/yolov3-tiny.yaml": 2}[name]
    ref = _reference_model(d)
    ref.hyp = dict(d.hyp)
    x = _images(h=imgsz, w=imgsz)
    with torch.no_grad():
        for a, b in zip(d._raw(x), ref(x)[1], strict=True):
            assert float((a - b).abs().max()) <= 1e-5 * float(b.abs().max())
    targets = [
        {"boxes": torch.tensor([[5.0, 6.0, 40.0, 50.0], [20.0, 8.0, 60.0, 30.0]]), "classes": [1, 3]}
    ] * 2
    total, parts = d.loss(x, targets)
    ref_total, ref_parts = REF.ComputeLoss(ref)(ref(x)[1], _table(d, x, targets))
    torch.testing.assert_close(parts, ref_parts, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(total, ref_total.reshape(()), rtol=1e-5, atol=1e-7)


@needs_reference
def test_boxes_are_the_references_nms(det):
    x = _images(h=96, w=96, seed=5)  # no letterboxing: the two frames are the same
    conf, iou = 0.2, 0.5
    ours = det.predict(x, conf=conf, iou=iou, max_det=50)
    with torch.no_grad():
        theirs = REF.non_max_suppression(_reference_model(det)(x)[0], conf, iou, max_det=50)
    assert sum(len(o) for o in ours) > 5
    for o, t in zip(ours, theirs, strict=True):
        assert len(o) == len(t)
        torch.testing.assert_close(o.boxes, t[:, :4].clamp(0, 96), rtol=0, atol=1e-4)
        torch.testing.assert_close(o.scores, t[:, 4], rtol=1e-6, atol=1e-6)
        assert torch.equal(o.classes, t[:, 5].long())


def test_predict_in_input_frame_with_features_at_the_anchor(det):
    x = _images(h=70, w=90)
    dets = det.predict(x, conf=0.2, iou=0.5)
    assert all(len(d) > 0 for d in dets)
    xl, (sx, sy), (dx, dy) = det.letterbox(x)
    with torch.no_grad():
        y = det.head.decode(det._raw(xl))
    widths = [m.in_channels for m in det.head.m]
    sizes = [det.head.na * f.shape[2] * f.shape[3] for f in det._raw(xl)]
    starts = torch.tensor([0, *sizes]).cumsum(0)
    for b, d in enumerate(dets):
        assert det.feature_dim == sum(widths)
        assert d.features.shape == (len(d), sum(widths)) and not d.features.requires_grad
        assert (d.boxes >= 0).all() and (d.boxes[:, [0, 2]] <= 90).all() and (d.boxes[:, [1, 3]] <= 70).all()
        xywh = y[b, d.anchors, :4]
        expect = torch.cat((xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2), 1)
        expect = (expect - torch.tensor([dx, dy, dx, dy])) / torch.tensor([sx, sy, sx, sy])
        assert torch.allclose(
            d.boxes, torch.minimum(expect.clamp(min=0), torch.tensor([90.0, 70, 90, 70])), atol=1e-4
        )
        for i in range(len(d)):  # its level's block, through the level's 1x1 conv, gives its score
            level = int((d.anchors[i] >= starts[1:]).sum())
            lo = sum(widths[:level])
            block = d.features[i, lo : lo + widths[level]]
            assert d.features[i].count_nonzero() <= widths[level]
            a = int((d.anchors[i] - starts[level]) // (sizes[level] // det.head.na))
            out = det.head.m[level](block.view(1, -1, 1, 1)).view(det.head.na, -1)[a].sigmoid()
            assert torch.isclose((out[5:] * out[4]).max(), d.scores[i], atol=1e-5)
            assert int(out[5:].argmax()) == int(d.classes[i])


def test_letterbox_pads_centred_and_is_differentiable(det):
    x = _images(h=70, w=90).requires_grad_(True)
    xl, (sx, sy), (dx, dy) = det.letterbox(x)
    assert xl.shape[-2:] == (96, 96) and (sx, sy) == (96 / 90, 75 / 70)
    assert (dx, dy) == (0, round(21 / 2 - 0.1))  # YOLOv5's split of the 21 rows: 10 above, 11 below
    assert torch.all(xl[:, :, :10] == 114 / 255) and torch.all(xl[:, :, -11:] == 114 / 255)
    xl.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


# -- per-box weights and the frozen contract ----------------------------------------------------


def test_weight_zero_is_removing_the_box(det):
    x = _images()
    t0, p0, g0 = _loss_and_grad(det, x, _targets(0.0))
    tr, pr, gr = _loss_and_grad(det, x, _targets(None))
    _, p1, _ = _loss_and_grad(det, x, _targets(1.0))
    assert torch.allclose(p0, pr, atol=1e-7, rtol=0) and torch.allclose(t0, tr, atol=1e-7, rtol=0)
    assert f32_close(g0, gr, terms=gr[0].numel(), rtol=1e-6)
    assert not torch.allclose(p1, pr, atol=1e-4)  # the box matters: the check above is not vacuous
    _, ptiny, _ = _loss_and_grad(det, x, _targets(1e-7))  # continuous at 0
    assert torch.allclose(ptiny, pr, atol=1e-5, rtol=1e-5)
    _, pb, _ = _loss_and_grad(
        det, x, _targets(1.0), box_weights=[torch.tensor([1.0, 1.0, 0.0]), torch.tensor([1.0])]
    )
    assert torch.allclose(pb, pr, atol=1e-7, rtol=0)


def test_weights_scale_the_objectness_target_and_interpolate(det):
    x = _images()
    parts = {w: _loss_and_grad(det, x, _targets(1.0, w_c=w))[1] for w in (0.0, 0.25, 1.0)}
    # box C alone in its image: BCE is linear in the objectness target w * IoU
    torch.testing.assert_close(
        parts[0.25][1], 0.75 * parts[0.0][1] + 0.25 * parts[1.0][1], rtol=1e-5, atol=1e-7
    )
    totals = [_loss_and_grad(det, x, _targets(w))[0] for w in (0.0, 0.5, 1.0)]
    assert min(totals[0], totals[2]) < totals[1] < max(totals[0], totals[2])


def test_gradients_reach_the_input_only_and_batchnorm_never_moves(det):
    before = {k: v.clone() for k, v in det.state_dict().items()}
    parent = nn.Sequential(nn.Conv2d(3, 3, 1), det)
    parent.train()
    nn.Module.train(det.model, True)  # even a stray train() on the inner model is undone
    x = _images().requires_grad_(True)
    total, parts = det.loss(x, _targets())
    assert total.ndim == 0 and parts.shape == (3,) and not parts.requires_grad
    assert torch.allclose(total, parts.sum() * x.shape[0])
    total.backward()
    det.predict(_images(seed=4))
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in det.parameters())
    assert parent[0].training and not any(m.training for m in det.modules())
    assert all(torch.equal(before[k], v) for k, v in det.state_dict().items())


def test_losses_of_several_calls_run_one_forward_and_equal_separate_calls(det):
    x1, x2 = _images(seed=1), _images(3, seed=2)
    empty = {"boxes": torch.zeros(0, 4), "classes": torch.zeros(0, dtype=torch.long)}
    t2 = [_targets(w_b=0.4)[0], _targets()[1], empty]
    bw = torch.tensor([0.5, 1.0, 0.25, 1.0])
    separate = [_loss_and_grad(det, x1, _targets(), box_weights=bw), _loss_and_grad(det, x2, t2)]
    calls = []
    hook = det.model.model[0].register_forward_pre_hook(lambda _m, inp: calls.append(inp[0].shape[0]))
    try:
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        (l1, p1), (l2, p2) = det.losses([(a, _targets(), bw), (b, t2)])
    finally:
        hook.remove()
    assert calls == [5]
    (l1 + l2).backward()
    for (total, parts, grad), (lo, pa, xg) in zip(separate, [(l1, p1, a), (l2, p2, b)], strict=True):
        torch.testing.assert_close(lo.detach(), total, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pa, parts, rtol=1e-5, atol=1e-6)
        assert float((xg.grad - grad).norm()) < 1e-4 * float(grad.norm())


def test_checkpointing_and_folding_keep_the_loss_and_boxes():
    d = _lively()
    x = _images()
    total, parts, grad = _loss_and_grad(d, x, _targets())
    boxes = d.predict(x, conf=0.2)
    d.checkpoint = True
    total_c, parts_c, grad_c = _loss_and_grad(d, x, _targets())
    d.checkpoint = False
    assert torch.equal(total_c, total) and f32_close(grad_c, grad, terms=grad[0].numel())
    assert d.fold_batchnorm() == sum(isinstance(m, nn.BatchNorm2d) for m in _lively().modules()) > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    total_f, parts_f, grad_f = _loss_and_grad(d, x, _targets())
    torch.testing.assert_close(parts_f, parts, rtol=1e-4, atol=1e-6)
    assert float((grad_f - grad).norm()) < 1e-3 * float(grad.norm())
    after = d.predict(x, conf=0.2)
    assert [len(a) for a in after] == [len(b) for b in boxes]
    for a, b in zip(after, boxes, strict=True):
        torch.testing.assert_close(a.boxes, b.boxes, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="folded"):
        save_detector(d, Path(os.devnull))
    assert _lively().compile_layers() == len(d.model.model) - 1  # compiled lazily: not run here
