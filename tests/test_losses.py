"""VaT losses (Eqs. 6-8): cycle consistency, uncertainty-guided mixup, the switches of Table 4,
the released-code options, a frozen D, and zero-weight boxes staying removed through mixup."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import lively_detector
from torch import nn

from vat.errors import ParamsError
from vat.models.classifier import SmallCNN, TorchClassifier
from vat.models.detectors import FrozenDetector
from vat.train.loss_inputs import ClassificationPairs, DetectionPairs, LossConfig
from vat.train.losses import cycle_loss, vat_loss, vat_loss_classify
from vat.train.mixing import draw_lambda, has_boxes, mix, mix_images, mix_soft_labels

NC = 5
S = 64  # image side


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def _make_detector(seed: int = 0) -> FrozenDetector:
    """Random-weight YOLOv8n that reacts to its input (see conftest.lively_detector)."""
    return lively_detector("yolov8n.yaml", nc=NC, imgsz=S, seed=seed)


@pytest.fixture(scope="module")
def det() -> FrozenDetector:
    return _make_detector()


class Tiny(nn.Module):
    """A residual 3x3 conv: a stand-in translator (T_A or T_B)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + 0.3 * self.conv(x)


class Gate(nn.Module):
    """A one-parameter gated fusion: I_F = s * I_LQ + (1 - s) * I_R."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros(()))

    def forward(self, i_lq: torch.Tensor, i_r: torch.Tensor) -> torch.Tensor:
        s = torch.sigmoid(self.w)
        return s * i_lq + (1 - s) * i_r


class Spy:
    """Counts the detector's loss calls."""

    def __init__(self, det: FrozenDetector) -> None:
        self.det, self.calls = det, 0

    def parameters(self):
        return self.det.parameters()

    def loss(self, images, targets):
        self.calls += 1
        return self.det.loss(images, targets)


def _images(b: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, 3, S, S, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


BOX_A = [8.0, 6.0, 36.0, 40.0]
BOX_B = [10.0, 8.0, 38.0, 42.0]  # overlaps A: they compete for anchors


def _lq(w_b: float | None = 0.0, w_a: float = 0.9, second: bool = True) -> list[dict]:
    """Degraded pseudo-boxes. Image 0: A, and B with weight ``w_b`` (None: absent); image 1:
    one box (``second``) or none."""
    boxes, classes, weights = [BOX_A], [2], [w_a]
    if w_b is not None:
        boxes, classes, weights = [BOX_A, BOX_B], [2, 2], [w_a, w_b]
    first = {"boxes": torch.tensor(boxes), "classes": torch.tensor(classes), "weights": torch.tensor(weights)}
    if second:
        other = {
            "boxes": torch.tensor([[30.0, 20.0, 60.0, 58.0]]),
            "classes": torch.tensor([4]),
            "weights": torch.tensor([0.7]),
        }
    else:
        other = {
            "boxes": torch.zeros(0, 4),
            "classes": torch.zeros(0, dtype=torch.long),
            "weights": torch.zeros(0),
        }
    return [first, other]


def _hq(w: float = 0.8, first: bool = True) -> list[dict]:
    one = {
        "boxes": torch.tensor([[4.0, 30.0, 28.0, 62.0]]),
        "classes": torch.tensor([0]),
        "weights": torch.tensor([w]),
    }
    two = {
        "boxes": torch.tensor([[20.0, 4.0, 50.0, 30.0], [40.0, 40.0, 62.0, 62.0]]),
        "classes": torch.tensor([1, 3]),
        "weights": torch.tensor([w, 1.0]),
    }
    empty = {"boxes": torch.zeros(0, 4), "classes": torch.zeros(0, dtype=torch.long)}
    return [one if first else empty, two]


def _unit(targets: list[dict]) -> list[dict]:
    return [{**t, "weights": (t.get("weights", torch.ones(len(t["boxes"]))) > 0).float()} for t in targets]


def _pairs(i_f=None, i_hq=None, lq=None, hq=None, **masks) -> DetectionPairs:
    i_f = _images(seed=1) if i_f is None else i_f
    i_hq = _images(seed=2) if i_hq is None else i_hq
    return DetectionPairs(i_f, i_hq, _lq() if lq is None else lq, _hq() if hq is None else hq, **masks)


def _run(det, cfg=None, seed=0, lq=None, hq=None, t_a=None, t_b=None, i_f=None, i_hq=None, masks=None, **kw):
    pairs = _pairs(i_f, i_hq, lq, hq, **(masks or {}))
    return vat_loss(t_a or Tiny(1), t_b or Tiny(2), pairs, det, cfg or LossConfig(), _gen(seed), **kw)


# -- pieces -------------------------------------------------------------------------------


def test_cycle_loss_is_zero_for_identities_and_the_l1_formula_otherwise():
    i_f, i_hq = _images(seed=1), _images(seed=2)
    assert cycle_loss(i_f, i_hq, nn.Identity(), lambda x: x).item() == 0.0
    t_a, t_b = Tiny(1), Tiny(2)
    got = cycle_loss(i_f, i_hq, t_a, t_b)
    expect = F.l1_loss(t_b(t_a(i_f)), i_f) + F.l1_loss(t_a(t_b(i_hq)), i_hq)
    assert got.item() > 0 and torch.allclose(got, expect, rtol=1e-6, atol=0)
    with pytest.raises(ValueError, match="shape"):
        cycle_loss(i_f, i_hq, t_a, lambda x: x[..., :-1])


def test_mix_images_and_union_of_boxes():
    i_f, i_hq = _images(seed=1), _images(seed=2)
    lam = torch.tensor([0.3, 0.8])
    i_mix, y = mix(i_f, i_hq, _lq(w_b=0.0), _hq(first=False), lam)
    assert torch.allclose(i_mix[0], 0.3 * i_f[0] + 0.7 * i_hq[0]) and torch.allclose(
        i_mix[1], 0.8 * i_f[1] + 0.2 * i_hq[1]
    )
    assert set(y[0]) == {"boxes", "classes", "weights"}
    # image 0: A (0.9), B (0) from I_F; no clean box. image 1: one degraded box, two clean ones.
    assert torch.allclose(y[0]["weights"], torch.tensor([0.3 * 0.9, 0.0]))
    assert torch.equal(y[0]["boxes"], torch.tensor([BOX_A, BOX_B]))
    assert torch.allclose(y[1]["weights"], torch.tensor([0.8 * 0.7, 0.2 * 0.8, 0.2 * 1.0]))
    assert torch.equal(y[1]["classes"], torch.tensor([4, 1, 3]))
    # A scalar lam, absent weights = 1, lam carries no gradient into the weights.
    lam_g = torch.tensor(0.25, requires_grad=True)
    i_mix, y = mix(
        i_f, i_hq, _hq(first=False), [{"boxes": t["boxes"], "classes": t["classes"]} for t in _lq()], lam_g
    )
    assert torch.allclose(i_mix, 0.25 * i_f + 0.75 * i_hq)
    assert torch.allclose(y[0]["weights"], torch.tensor([0.75, 0.75]))
    assert not y[1]["weights"].requires_grad
    with pytest.raises(ValueError, match="lam"):
        mix(i_f, i_hq, _lq(), _hq(), 1.5)
    with pytest.raises(ValueError, match="lam"):
        mix(i_f, i_hq, _lq(), _hq(), torch.rand(3))
    with pytest.raises(ValueError, match="targets"):
        mix(i_f, i_hq, _lq()[:1], _hq(), 0.5)
    with pytest.raises(ValueError, match="unknown keys"):
        mix(i_f, i_hq, [{**_lq()[0], "score": torch.ones(2)}, _lq()[1]], _hq(), 0.5)
    assert has_boxes(_lq(w_b=0.0, w_a=0.0, second=True)).tolist() == [False, True]


def test_draw_lambda_is_beta_from_the_generator_and_folds():
    a, b = draw_lambda(4000, 0.5, _gen(3)), draw_lambda(4000, 0.5, _gen(3))
    assert torch.equal(a, b) and a.dtype == torch.float32 and a.shape == (4000,)
    assert not torch.equal(a, draw_lambda(4000, 0.5, _gen(4)))
    assert bool(((a >= 0) & (a <= 1)).all())
    # Beta(1/2, 1/2) is the arcsine law: mean 1/2, P(1/4 < lam < 3/4) = 1/3.
    assert abs(a.mean().item() - 0.5) < 0.03
    assert abs(((a > 0.25) & (a < 0.75)).float().mean().item() - 1 / 3) < 0.03
    folded = draw_lambda(4000, 0.5, _gen(3), fold=True)
    assert bool((folded >= 0.5).all()) and torch.allclose(folded, torch.maximum(a, 1 - a))


def test_mix_soft_labels_is_linear_in_the_labels():
    y_lq = torch.tensor([[1.0, 0.0, 0.0], [0.2, 0.8, 0.0]])
    y_hq = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    y, mass = mix_soft_labels(
        y_lq, y_hq, torch.tensor([0.5, 0.0]), torch.tensor([1.0, 0.0]), torch.tensor([0.4, 0.5])
    )
    assert torch.allclose(mass, torch.tensor([0.4 * 0.5 + 0.6, 0.0]))
    assert torch.allclose(y[0] * mass[0], torch.tensor([0.2, 0.0, 0.6])) and torch.equal(y[1], torch.zeros(3))


def test_config_is_validated():
    for bad in (dict(mixup="umix"), dict(alpha=0.0), dict(alpha=float("nan")), dict(mle_weight=-1.0)):
        with pytest.raises(ParamsError):
            LossConfig(**bad)
    with pytest.raises(ParamsError, match="nothing to train"):
        LossConfig(use_cycle=False, use_mle=False)


# -- the full loss, detection ---------------------------------------------------------------


def test_zero_weight_box_through_mix_is_removing_it(det):
    i_f, i_hq = _images(seed=1), _images(seed=2)
    lam = torch.tensor([0.6, 0.35])

    def loss_and_grad(lq):
        x = i_f.clone().requires_grad_(True)
        i_mix, y = mix(x, i_hq, lq, _hq(), lam)
        total, parts = det.loss(i_mix, y)
        total.backward()
        return total.detach(), parts, x.grad

    t0, p0, g0 = loss_and_grad(_lq(w_b=0.0))
    tr, pr, gr = loss_and_grad(_lq(w_b=None))
    t1, p1, _ = loss_and_grad(_lq(w_b=1.0))
    assert torch.allclose(t0, tr, rtol=1e-5, atol=1e-6) and torch.allclose(p0, pr, rtol=1e-5, atol=1e-6)
    assert torch.allclose(g0, gr, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(p1, pr, atol=1e-4)  # the box matters: the check above is not vacuous
    # The same through the whole loss, in every mixup mode.
    for mode in ("uncertainty", "plain", "none"):
        cfg = LossConfig(mixup=mode)
        zero, removed = _run(det, cfg, lq=_lq(w_b=0.0)), _run(det, cfg, lq=_lq(w_b=None))
        assert torch.allclose(zero["total"], removed["total"], atol=1e-5, rtol=1e-6), mode


def test_same_generator_seed_same_lam_and_loss(det):
    a, b, c = _run(det, seed=5), _run(det, seed=5), _run(det, seed=6)
    assert torch.equal(a["lam"], b["lam"]) and torch.equal(a["total"], b["total"])
    assert a["lam"].shape == (2,) and not torch.equal(a["lam"], c["lam"])
    assert not torch.equal(a["mle_mix"], c["mle_mix"])
    assert torch.equal(a["mle_clean"], c["mle_clean"]) and torch.equal(a["cycle"], c["cycle"])


def test_terms_and_weights_add_up(det):
    out = _run(det, LossConfig(cycle_weight=2.0, mle_weight=0.5))
    assert out["cycle"] > 0 and out["mle_clean"] > 0 and out["mle_mix"] > 0 and out["mle_gate"] == 0
    assert torch.allclose(out["mle"], out["mle_clean"] + out["mle_mix"])
    assert torch.allclose(out["total"], 2.0 * out["cycle"] + 0.5 * out["mle"])
    # Each term is what Eqs. 6-8 say, by hand.
    t_a, t_b, i_f, i_hq = Tiny(1), Tiny(2), _images(seed=1), _images(seed=2)
    ref = _run(det, t_a=t_a, t_b=t_b, i_f=i_f, i_hq=i_hq, seed=9)
    i_mix, y_mix = mix(i_f, i_hq, _lq(), _hq(), ref["lam"])
    assert torch.allclose(ref["cycle"], cycle_loss(i_f, i_hq, t_a, t_b))
    assert torch.allclose(ref["mle_clean"], det.loss(t_a(i_hq), _unit(_hq()))[0], rtol=1e-5)
    assert torch.allclose(ref["mle_mix"], det.loss(t_a(i_mix), y_mix)[0], rtol=1e-5)


def test_detector_stays_frozen_translators_get_gradients(det):
    buffers = {k: v.clone() for k, v in det.state_dict().items() if "running" in k}
    t_a, t_b, gate = Tiny(1), Tiny(2), Gate()
    i_f = gate(_images(seed=1), _images(seed=3))
    out = _run(det, t_a=t_a, t_b=t_b, i_f=i_f)
    out["total"].backward()
    assert all(p.grad is None for p in det.parameters())
    assert all(torch.equal(v, det.state_dict()[k]) for k, v in buffers.items())
    for p in [*t_a.parameters(), *t_b.parameters(), gate.w]:
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0


def test_unfrozen_detector_and_missing_generator_are_refused(det):
    class Live:
        def parameters(self):
            return iter([nn.Parameter(torch.ones(1))])

        def loss(self, images, targets):
            raise AssertionError("not reached")

    with pytest.raises(ValueError, match="frozen"):
        _run(Live())
    with pytest.raises(ValueError, match="Generator"):
        vat_loss(Tiny(1), Tiny(2), _pairs(_images()), det, LossConfig(), None)


def test_without_cycle(det):
    t_b = Tiny(2)
    base, out = _run(det), _run(det, LossConfig(use_cycle=False), t_b=t_b)
    assert out["cycle"].item() == 0 and not out["cycle"].requires_grad
    for k in ("mle", "mle_clean", "mle_mix", "lam"):
        assert torch.equal(out[k], base[k]), k
    assert torch.allclose(out["total"], base["mle"])
    out["total"].backward()
    assert all(p.grad is None for p in t_b.parameters())  # T_B serves the cycle only


def test_without_mle(det):
    spy, g = Spy(det), _gen(0)
    state = g.get_state()
    base = _run(det)
    out = vat_loss(Tiny(1), Tiny(2), _pairs(), spy, LossConfig(use_mle=False), g)
    assert spy.calls == 0 and torch.equal(g.get_state(), state)
    for k in ("mle", "mle_clean", "mle_mix", "mle_gate"):
        assert out[k].item() == 0 and not out[k].requires_grad
    assert torch.equal(out["cycle"], base["cycle"]) and torch.allclose(out["total"], base["cycle"])
    assert torch.equal(out["lam"], torch.ones(2))


def test_mixup_none_draws_nothing_and_uses_the_fused_image(det):
    g = _gen(0)
    state = g.get_state()
    t_a, i_f = Tiny(1), _images(seed=1)
    out = vat_loss(t_a, Tiny(2), _pairs(i_f), det, LossConfig(mixup="none"), g)
    assert torch.equal(g.get_state(), state) and torch.equal(out["lam"], torch.ones(2))
    assert torch.allclose(out["mle_mix"], det.loss(t_a(i_f), _unit(_lq()))[0], rtol=1e-5)
    assert torch.equal(out["mle_clean"], _run(det)["mle_clean"]) and torch.equal(
        out["cycle"], _run(det)["cycle"]
    )
    # No generator needed at all.
    vat_loss(t_a, Tiny(2), _pairs(i_f), det, LossConfig(mixup="none"), None)


def test_plain_mixup_ignores_the_confidence_weights_only(det):
    plain, umix = _run(det, LossConfig(mixup="plain")), _run(det)
    assert torch.equal(plain["lam"], umix["lam"]) and torch.equal(plain["cycle"], umix["cycle"])
    assert torch.equal(plain["mle_clean"], umix["mle_clean"])
    assert not torch.allclose(plain["mle_mix"], umix["mle_mix"])
    t_a, i_f, i_hq = Tiny(1), _images(seed=1), _images(seed=2)
    i_mix, y = mix(i_f, i_hq, _unit(_lq()), _unit(_hq()), plain["lam"])
    assert torch.allclose(plain["mle_mix"], det.loss(t_a(i_mix), y)[0], rtol=1e-5)
    # With unit weights everywhere the two modes agree.
    ones_lq, ones_hq = _unit(_lq(w_b=None)), _unit(_hq())
    a = _run(det, LossConfig(mixup="plain"), lq=ones_lq, hq=ones_hq)
    b = _run(det, lq=ones_lq, hq=ones_hq)
    assert torch.allclose(a["total"], b["total"], rtol=1e-6, atol=0)


def test_clean_weights_option(det):
    base, weighted = _run(det), _run(det, LossConfig(clean_weights=True))
    assert not torch.allclose(base["mle_clean"], weighted["mle_clean"])
    assert torch.equal(base["mle_mix"], weighted["mle_mix"])
    assert torch.allclose(weighted["mle_clean"], det.loss(Tiny(1)(_images(seed=2)), _hq())[0], rtol=1e-5)


def test_fold_lambda(det):
    base, folded = _run(det, seed=11), _run(det, LossConfig(fold_lambda=True), seed=11)
    assert bool((folded["lam"] >= 0.5).all())
    assert torch.allclose(folded["lam"], torch.maximum(base["lam"], 1 - base["lam"]))
    assert torch.equal(folded["mle_clean"], base["mle_clean"]) and torch.equal(folded["cycle"], base["cycle"])


def test_gate_flow_feeds_the_mix_straight_into_d(det):
    base = _run(det)
    gate = Gate()
    i_f = gate(_images(seed=1), _images(seed=3))
    out = _run(det, LossConfig(gate_flow=True), i_f=i_f)
    i_mix, y = mix(i_f.detach(), _images(seed=2), _lq(), _hq(), out["lam"])
    assert torch.allclose(out["mle_gate"], det.loss(i_mix, y)[0], rtol=1e-5)
    assert torch.allclose(out["mle"], out["mle_clean"] + out["mle_mix"] + out["mle_gate"])
    gate_no_flow = _run(det, i_f=_images(seed=1) * 0.5 + _images(seed=3) * 0.5)
    for k in ("mle_clean", "mle_mix", "cycle", "lam"):
        assert torch.allclose(out[k], gate_no_flow[k], rtol=1e-6), k
    assert base["mle_gate"].item() == 0
    # The gate term alone reaches the gate.
    out["mle_gate"].backward()
    assert gate.w.grad is not None and gate.w.grad.abs() > 0


@pytest.mark.parametrize(
    "cfg",
    [
        LossConfig(),
        LossConfig(gate_flow=True),
        LossConfig(mixup="none"),
        LossConfig(use_cycle=False, mixup="plain"),
    ],
)
def test_one_detector_pass_gives_the_same_terms_and_gradients(det, cfg):
    forwards = []
    hook = det.model.model[0].register_forward_pre_hook(lambda *_: forwards.append(1))
    results = []
    try:
        for one_pass in (False, True):
            t_a, t_b = Tiny(1), Tiny(2)
            forwards.clear()
            out = _run(det, cfg, t_a=t_a, t_b=t_b, one_pass=one_pass)
            out["total"].backward()
            results.append((out, len(forwards), [p.grad for p in t_a.parameters()]))
    finally:
        hook.remove()
    (sep, n_sep, g_sep), (one, n_one, g_one) = results
    assert n_sep == 2 + cfg.gate_flow and n_one == 1  # clean, mix (and gate flow) terms: one D forward
    for k in ("total", "cycle", "mle_clean", "mle_mix", "mle_gate", "lam"):
        torch.testing.assert_close(one[k], sep[k], rtol=1e-5, atol=1e-6, msg=k)
    for a, b in zip(g_one, g_sep, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # one term left (no clean image with a pseudo-box): nothing to share, the plain call
    alone = _run(det, cfg, hq=[_hq(first=False)[0]] * 2, one_pass=True)
    assert alone["mle_clean"].item() == 0 and alone["mle_mix"].item() > 0


def test_images_without_pseudo_boxes_count_in_the_cycle_only(det):
    t_a, i_f, i_hq = Tiny(1), _images(seed=1), _images(seed=2)
    lq, hq = _lq(second=False), _hq(first=False)  # degraded image 1 and clean image 0 have no box
    out = _run(det, lq=lq, hq=hq, seed=4)
    full = _run(det, seed=4)
    assert torch.equal(out["lam"], full["lam"])  # one lam per pair, whoever is dropped
    assert torch.allclose(out["mle_clean"], det.loss(t_a(i_hq[1:]), _unit(hq[1:]))[0], rtol=1e-5)
    i_mix, y = mix(i_f[:1], i_hq[:1], lq[:1], hq[:1], out["lam"][:1])
    assert torch.allclose(out["mle_mix"], det.loss(t_a(i_mix), y)[0], rtol=1e-5)
    assert torch.equal(out["cycle"], full["cycle"])
    # has_boxes_lq overrides: no pair counts in the mix term.
    none = _run(det, masks={"has_boxes_lq": torch.tensor([False, False])})
    assert none["mle_mix"].item() == 0 and torch.equal(none["mle_clean"], full["mle_clean"])
    # A batch without any pseudo-box: L_mle = 0 with the graph intact (zero gradients).
    t_a, gate = Tiny(1), Gate()
    i_f = gate(_images(seed=1), _images(seed=3))
    empty = _run(
        det,
        LossConfig(use_cycle=False, gate_flow=True),
        t_a=t_a,
        i_f=i_f,
        lq=_lq(w_b=0.0, w_a=0.0, second=False),
        hq=[_hq(first=False)[0]] * 2,
    )
    assert empty["total"].item() == 0 and empty["total"].requires_grad
    empty["total"].backward()
    assert all(p.grad is not None and not p.grad.any() for p in t_a.parameters())
    assert gate.w.grad is not None and gate.w.grad.item() == 0


# -- classification -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clf() -> TorchClassifier:
    return TorchClassifier(SmallCNN(3, width=4, seed=0), ["a", "b", "c"])


def _ce(clf, images, y):
    return -(y * clf.logits(images).log_softmax(-1)).sum(-1)


def test_classification_loss(clf):
    t_a, t_b, i_f, i_hq = (
        Tiny(1),
        Tiny(2),
        _images(3, seed=1)[..., :32, :32],
        _images(3, seed=2)[..., :32, :32],
    )
    y_lq = torch.tensor([[0.7, 0.2, 0.1], [0.0, 1.0, 0.0], [0.1, 0.1, 0.8]])
    y_hq = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.2, 0.5, 0.3]])
    w_lq, w_hq = torch.tensor([0.6, 0.0, 1.0]), torch.tensor([0.9, 0.5, 0.0])
    pairs = ClassificationPairs(i_f, i_hq, y_lq, y_hq, w_lq, w_hq)
    out = vat_loss_classify(t_a, t_b, pairs, clf, LossConfig(), _gen(2))
    again = vat_loss_classify(t_a, t_b, pairs, clf, LossConfig(), _gen(2))
    assert torch.equal(out["total"], again["total"])
    lam = out["lam"]
    # Clean term: unit-weight mean CE over the clean images with a label (0, 1).
    assert torch.allclose(out["mle_clean"], _ce(clf, t_a(i_hq[:2]), y_hq[:2]).mean(), rtol=1e-5)
    # Mix term: pair 1's degraded label was filtered, so pairs 0 and 2; linear in the labels.
    keep = [0, 2]
    i_mix = mix_images(i_f[keep], i_hq[keep], lam[keep])
    per = lam[keep] * w_lq[keep] * _ce(clf, t_a(i_mix), y_lq[keep]) + (1 - lam[keep]) * w_hq[keep] * _ce(
        clf, t_a(i_mix), y_hq[keep]
    )
    assert torch.allclose(out["mle_mix"], per.mean(), rtol=1e-5)
    assert torch.allclose(out["total"], out["cycle"] + out["mle"])
    out["total"].backward()
    assert all(p.grad is None for p in clf.parameters())
    assert all(p.grad is not None for p in [*t_a.parameters(), *t_b.parameters()])
    # mixup none: CE(T_A(I_F), y_lq) on the kept degraded images, unit weights.
    none = vat_loss_classify(t_a, t_b, pairs, clf, LossConfig(mixup="none"), None)
    assert torch.allclose(none["mle_mix"], _ce(clf, t_a(i_f[keep]), y_lq[keep]).mean(), rtol=1e-5)
    with pytest.raises(ValueError, match="weights_lq"):
        vat_loss_classify(
            t_a, t_b, ClassificationPairs(i_f, i_hq, y_lq, y_hq, w_lq[:2]), clf, LossConfig(), _gen()
        )
    assert math.isfinite(out["cycle"].item())
