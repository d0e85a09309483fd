"""FrozenDetector: frozen for good, ultralytics' own loss with per-box weights, predictions
in the input frame with per-anchor features, and checkpoints that load weights-only."""

from __future__ import annotations

from copy import deepcopy

import pytest
import torch
from conftest import f32_close, lively_detector
from torch import nn
from ultralytics.utils.loss import v8DetectionLoss
from ultralytics.utils.ops import xywh2xyxy

from vat.errors import DataError
from vat.models.detectors import FrozenDetector, Targets, save_detector

NC = 5


def _make(yaml: str = "yolov8n.yaml", imgsz: int = 96, seed: int = 0) -> FrozenDetector:
    return lively_detector(yaml, nc=NC, imgsz=imgsz, seed=seed)


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def det() -> FrozenDetector:
    return _make()


def _images(b: int = 2, h: int = 70, w: int = 90, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed))


# Two nearly identical boxes of one class in image 0 compete for the same anchors.
BOX_A = [10.0, 8.0, 50.0, 56.0]
BOX_B = [12.0, 10.0, 52.0, 58.0]


def _targets(w_b: float | None = 1.0, w_c: float = 1.0) -> list[dict]:
    """Image 0: box A and box B (weight ``w_b``, None = absent) compete; image 1: box C alone."""
    first = {"boxes": torch.tensor([BOX_A]), "classes": torch.tensor([2]), "weights": torch.tensor([1.0])}
    if w_b is not None:
        first = {
            "boxes": torch.tensor([BOX_A, BOX_B]),
            "classes": torch.tensor([2, 2]),
            "weights": torch.tensor([1.0, w_b]),
        }
    second = {"boxes": torch.tensor([[40.0, 5.0, 88.0, 60.0]]), "classes": torch.tensor([4])}
    if w_c != 1.0:
        second["weights"] = torch.tensor([w_c])
    return [first, second]


def _loss_and_grad(det, x, targets, **kw):
    x = x.clone().requires_grad_(True)
    total, parts = det.loss(x, targets, **kw)
    total.backward()
    return total.detach(), parts, x.grad


def _bn_buffers(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in module.state_dict().items() if "running" in k or "num_batches" in k}


def test_gradients_reach_the_input_only(det):
    x = _images().requires_grad_(True)
    total, parts = det.loss(x, _targets())
    assert total.ndim == 0 and parts.shape == (3,) and not parts.requires_grad
    assert torch.allclose(total, parts.sum() * x.shape[0])
    total.backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in det.parameters())


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolov3-tinyu.yaml"])
def test_checkpointed_forward_gives_the_same_loss_and_gradient_and_keeps_less(yaml):
    from vat.bench.train import SavedForBackward

    d = _make(yaml)
    x = _images()
    total, parts, grad = _loss_and_grad(d, x, _targets())
    calls = []
    first = d.model.model[0]
    # a pre-hook: recomputation stops as soon as it has what backward needs, before any post-hook
    hook = first.register_forward_pre_hook(lambda *_: calls.append(1))
    d.checkpoint = True
    try:
        xc = x.clone().requires_grad_(True)
        with SavedForBackward() as kept:
            total_c, parts_c = d.loss(xc, _targets())
        assert len(calls) == 1
        total_c.backward()
        assert len(calls) == 2  # the layer ran again in backward
        with torch.no_grad():
            d.predict(x)  # prediction records no graph: nothing to recompute
    finally:
        d.checkpoint = False
        hook.remove()
    with SavedForBackward() as plain:
        d.loss(x.clone().requires_grad_(True), _targets())
    assert torch.equal(total_c.detach(), total) and torch.equal(parts_c, parts)
    assert f32_close(xc.grad, grad, terms=grad[0].numel())  # the recomputed layer may sum in another order
    assert 0 < kept.nbytes < plain.nbytes / 2


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolov3-tinyu.yaml"])
def test_folded_batchnorm_gives_the_same_loss_gradient_and_boxes_and_keeps_less(yaml):
    from vat.bench.train import SavedForBackward

    d = _make(yaml)
    x = _images()
    convs = sum(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    total, parts, grad = _loss_and_grad(d, x, _targets())
    boxes = d.predict(x, conf=0.3)
    with SavedForBackward() as plain:
        d.loss(x.clone().requires_grad_(True), _targets())
    assert d.fold_batchnorm() == convs > 0
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    assert all(not p.requires_grad for p in d.parameters())  # still frozen
    total_f, parts_f, grad_f = _loss_and_grad(d, x, _targets())
    with SavedForBackward() as folded:
        d.loss(x.clone().requires_grad_(True), _targets())
    torch.testing.assert_close(total_f, total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(parts_f, parts, rtol=1e-5, atol=1e-6)
    assert float((grad_f - grad).norm()) < 1e-4 * float(grad.norm())  # float rounding, summed over the layers
    after = d.predict(x, conf=0.3)
    assert [len(b.boxes) for b in after] == [len(b.boxes) for b in boxes] and sum(len(b.boxes) for b in boxes)
    for a, b in zip(after, boxes, strict=True):
        torch.testing.assert_close(a.boxes, b.boxes, rtol=1e-4, atol=1e-3)
    assert folded.nbytes < 0.8 * plain.nbytes  # BatchNorm's inputs are no longer kept
    assert d.fold_batchnorm() == 0  # nothing left to fold


@pytest.mark.parametrize("yaml", ["yolov8n.yaml", "yolov3-tinyu.yaml"])
def test_losses_of_several_calls_run_one_forward_and_equal_separate_calls(yaml):
    d = _make(yaml)
    x1, x2 = _images(seed=1), _images(3, seed=2)
    empty = {"boxes": torch.zeros(0, 4), "classes": torch.zeros(0, dtype=torch.long)}
    t2 = [_targets(w_b=0.4)[0], _targets()[1], empty]
    bw = torch.tensor([0.5, 1.0, 0.25])  # box_weights of the first call (3 boxes)
    separate = [_loss_and_grad(d, x1, _targets(), box_weights=bw), _loss_and_grad(d, x2, t2)]
    calls = []
    hook = d.model.model[0].register_forward_pre_hook(lambda _m, inp: calls.append(inp[0].shape[0]))
    try:
        a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
        (l1, p1), (l2, p2) = d.losses([(a, _targets(), bw), (b, t2)])
    finally:
        hook.remove()
    assert calls == [5]  # one forward over both calls' images
    (l1 + l2).backward()
    for (total, parts, grad), (lo, pa, x) in zip(separate, [(l1, p1, a), (l2, p2, b)], strict=True):
        torch.testing.assert_close(lo.detach(), total, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(pa, parts, rtol=1e-5, atol=1e-6)
        assert float((x.grad - grad).norm()) < 1e-4 * float(grad.norm())
    # each call is normalised on its own: not the loss of the five images as one batch
    joint, _ = d.loss(torch.cat([x1, x2]), _targets() + t2)
    assert not torch.allclose(joint, separate[0][0] + separate[1][0], rtol=1e-3)
    with pytest.raises(ValueError, match="2 targets for a batch of 3"):
        d.losses([(x1, _targets()), (x2, _targets())])


def test_batchnorm_statistics_never_move(det):
    before = _bn_buffers(det)
    assert before  # the model has BatchNorm layers to watch
    det.loss(_images(), _targets())
    parent = nn.Sequential(nn.Conv2d(3, 3, 1), det)
    parent.train()  # what a training loop does to the translator that holds D
    det.train(True)
    assert parent[0].training and not any(m.training for m in det.modules())
    nn.Module.train(det.model, True)  # even a stray train() on the inner model is undone
    det.loss(_images(seed=3), _targets())
    det.predict(_images(seed=4))
    after = _bn_buffers(det)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_weight_zero_is_removing_the_box(det):
    x = _images()
    t0, p0, g0 = _loss_and_grad(det, x, _targets(0.0))
    tr, pr, gr = _loss_and_grad(det, x, _targets(None))
    t1, p1, _ = _loss_and_grad(det, x, _targets(1.0))
    assert torch.allclose(p0, pr, rtol=1e-5, atol=1e-6) and torch.allclose(t0, tr, rtol=1e-5, atol=1e-6)
    assert torch.allclose(g0, gr, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(p1, pr, atol=1e-4)  # the box matters, so the check above is not vacuous
    # Continuous at 0: a tiny weight loses the anchors the two boxes compete for.
    _, ptiny, _ = _loss_and_grad(det, x, _targets(1e-7))
    assert torch.allclose(ptiny, pr, atol=1e-4, rtol=1e-5)


def test_box_weights_argument_multiplies_the_targets_weights(det):
    x = _images()
    _, p, _ = _loss_and_grad(
        det, x, _targets(1.0), box_weights=[torch.tensor([1.0, 0.0]), torch.tensor([1.0])]
    )
    _, pr, _ = _loss_and_grad(det, x, _targets(None))
    assert torch.allclose(p, pr, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("box", ["contested", "alone"])
def test_half_weight_lies_between_removal_and_full(det, box):
    x = _images()
    totals = [
        _loss_and_grad(det, x, _targets(w) if box == "contested" else _targets(None, w_c=w))[0]
        for w in (0.0, 0.5, 1.0)
    ]
    t0, th, t1 = totals
    assert min(t0, t1) < th < max(t0, t1)


def _by_hand(boxes_xyxy: torch.Tensor, sx: float, sy: float, hp: int, wp: int) -> torch.Tensor:
    b = boxes_xyxy * torch.tensor([sx, sy, sx, sy])
    return torch.stack(
        [
            (b[:, 0] + b[:, 2]) / 2 / wp,
            (b[:, 1] + b[:, 3]) / 2 / hp,
            (b[:, 2] - b[:, 0]) / wp,
            (b[:, 3] - b[:, 1]) / hp,
        ],
        1,
    )


@pytest.mark.parametrize("shape", [(64, 96), (70, 90)])  # already letterboxed; resized and padded
def test_weight_one_is_ultralytics_own_loss(det, shape):
    x = _images(h=shape[0], w=shape[1])
    targets = _targets(1.0)
    total, parts = det.loss(x, targets)
    xl, (sx, sy) = det.letterbox(x)
    hp, wp = xl.shape[-2:]
    assert hp % det.stride == 0 and wp % det.stride == 0 and max(hp, wp) == 96
    flat = Targets.from_list(targets)
    batch = {
        "batch_idx": flat.batch_idx.float(),
        "cls": flat.classes.float(),
        "bboxes": _by_hand(flat.boxes, sx, sy, hp, wp),
    }
    ref, items = v8DetectionLoss(det.model)(det.model(xl), batch)
    assert torch.allclose(total, ref.sum(), rtol=1e-6, atol=1e-6)
    assert torch.allclose(parts, torch.stack(list(items.values())), rtol=1e-6, atol=1e-6)


def test_predict_in_input_frame_with_anchor_features(det):
    x = _images(h=70, w=90).requires_grad_(True)
    with torch.no_grad():
        dets = det.predict(x, conf=0.3, iou=0.5)
    assert len(dets) == 2 and all(len(d) > 0 for d in dets)
    xl, (sx, sy) = det.letterbox(x.detach())
    y, preds = det.model(xl)
    sizes = [f.shape[-2] * f.shape[-1] for f in preds["feats"]]
    starts = torch.tensor([0, *sizes]).cumsum(0)
    for b, d in enumerate(dets):
        n = len(d)
        assert d.boxes.shape == (n, 4) and d.scores.shape == (n,) and d.classes.dtype == torch.int64
        assert d.features.shape == (n, det.feature_dim)
        for t in (d.boxes, d.scores, d.features):
            assert not t.requires_grad and t.grad_fn is None
        assert (d.boxes >= 0).all() and (d.boxes[:, [0, 2]] <= 90).all() and (d.boxes[:, [1, 3]] <= 70).all()
        assert (d.boxes[:, 2:] >= d.boxes[:, :2]).all() and (d.scores > 0.3).all()
        # Each box is its anchor's decoded box, mapped back to the input frame ...
        expect = xywh2xyxy(y[b, :4, d.anchors].T) / torch.tensor([sx, sy, sx, sy])
        expect = torch.minimum(expect.clamp(min=0), torch.tensor([90.0, 70, 90, 70]))
        assert torch.allclose(d.boxes, expect, atol=1e-4)
        # ... and its feature, through the class branch's last 1x1 conv, gives its score and class.
        for i in range(n):
            level = int((d.anchors[i] >= starts[1:]).sum())
            conv = det.head.cv3[level][-1]
            logits = conv(d.features[i].view(1, -1, 1, 1)).flatten()
            assert torch.isclose(logits.sigmoid().max(), d.scores[i], atol=1e-5)
            assert int(logits.argmax()) == int(d.classes[i])


@pytest.mark.parametrize("yaml", ["yolov5n.yaml", "yolo11n.yaml", "yolov3-tiny.yaml"])
def test_other_families(yaml):
    d = _make(yaml, imgsz=64)
    x = _images(h=50, w=64)
    _, parts, grad = _loss_and_grad(
        d, x, [{"boxes": torch.tensor([[5.0, 5.0, 40.0, 45.0]]), "classes": [1]}] * 2
    )
    assert torch.isfinite(parts).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in d.parameters())
    dets = d.predict(x, conf=0.2)
    assert {tuple(e.features.shape[1:]) for e in dets} == {(d.feature_dim,)}


def test_checkpoint_round_trip_is_exact(det, tmp_path):
    path = tmp_path / "d" / "det.pt"
    save_detector(det, path)
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == "yolo" and raw["names"] == det.names
    back = FrozenDetector(path)
    assert back.names == det.names and back.imgsz == det.imgsz and back.stride == det.stride
    x = _images(seed=7)
    a, b = det.predict(x, conf=0.3), back.predict(x, conf=0.3)
    for da, db in zip(a, b, strict=True):
        assert torch.equal(da.boxes, db.boxes) and torch.equal(da.features, db.features)
    assert torch.equal(det.loss(x, _targets())[0], back.loss(x, _targets())[0])
    assert not any(p.requires_grad for p in back.parameters()) and not back.training


def test_ultralytics_checkpoint_loads_offline(det, tmp_path):
    path = tmp_path / "best.pt"
    torch.save({"model": deepcopy(det.model), "train_args": {"imgsz": 64, "box": 5.0}}, path)
    back = FrozenDetector(path)
    assert back.imgsz == 64 and back.model.args.box == 5.0 and back.model.args.cls == det.model.args.cls
    x = _images(seed=8)
    assert torch.equal(det.model(det.letterbox(x)[0])[0], back.model(det.letterbox(x)[0])[0])


def test_bad_files_raise_data_error_naming_the_file(det, tmp_path):
    good = tmp_path / "good.pt"
    save_detector(det, good)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 64)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    mismatched = tmp_path / "mismatched.pt"
    ckpt = torch.load(good, weights_only=True)
    ckpt["state_dict"] = {k: v for k, v in list(ckpt["state_dict"].items())[:-3]}
    torch.save(ckpt, mismatched)
    for path in (garbage, truncated, other, mismatched, tmp_path / "missing.pt"):
        with pytest.raises(DataError, match=path.name):
            FrozenDetector(path)
    with pytest.raises(DataError, match="nc=5"):
        FrozenDetector(good, nc=3)
    with pytest.raises(DataError, match="no-such-model.yaml"):
        FrozenDetector("no-such-model.yaml")


def test_end_to_end_heads_are_refused():
    with pytest.raises(DataError, match="end-to-end"):
        FrozenDetector("yolov10n.yaml", nc=NC)


def test_bad_targets_are_refused(det):
    x = _images()
    ok = _targets(None)[1]
    with pytest.raises(ValueError, match="weights"):
        det.loss(x, [ok, dict(ok, weights=torch.tensor([1.5]))])
    with pytest.raises(ValueError, match="class index"):
        det.loss(x, [ok, dict(ok, classes=torch.tensor([NC]))])
    with pytest.raises(ValueError, match="unknown keys"):
        det.loss(x, [ok, dict(ok, weight=torch.tensor([1.0]))])


def test_ultralytics_checkpoint_with_other_objects_is_refused(det, tmp_path):
    import argparse

    path = tmp_path / "tampered.pt"
    torch.save({"model": deepcopy(det.model), "extra": argparse.Namespace(a=1)}, path)
    with pytest.raises(DataError, match="refusing to unpickle 'argparse.Namespace'"):
        FrozenDetector(path)


def test_ultralytics_caching_bars_are_off_while_it_trains():
    """Its image-caching bar ignores YOLO_VERBOSE and writes colour codes into logs."""
    import ultralytics.data.base as base

    from vat.models.training import _quiet_bars

    with _quiet_bars():
        assert base.TQDM(range(3), disable=False).disable
    assert not base.TQDM(range(3), disable=False).disable  # put back afterwards
