"""NUQ on toy data where the answer is known, against brute force, and memory-bounded."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import vat.labels.knn as knn
from vat.labels.knn import chunked_knn
from vat.labels.uncertainty import NUQ, epsilon_from_quantile, loss_weights


def two_blobs(n_per: int = 300, std: float = 1.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    x = torch.cat([centres[c] + std * torch.randn(n_per, 2, generator=g) for c in (0, 1)])  # (2n, 2)
    y = torch.cat([torch.full((n_per,), c, dtype=torch.long) for c in (0, 1)])  # (2n,)
    return x, y


@pytest.fixture(scope="module")
def blob_nuq() -> NUQ:
    x, y = two_blobs()
    return NUQ(k=20, metric="euclidean", chunk=128).fit(x, y)


def test_epistemic_high_far_from_data_and_finite(blob_nuq: NUQ) -> None:
    q = torch.tensor([[-2.0, 0.0], [2.0, 0.0], [0.0, 20.0], [50.0, 50.0], [1e4, -1e4]])
    r = blob_nuq.predict(q)
    for t in (r.epistemic, r.total, r.density, r.aleatoric, r.prediction):
        assert torch.isfinite(t).all()
    inside = r.epistemic[:2].max()
    assert r.epistemic[2] > inside + 10
    assert r.epistemic[3] > r.epistemic[2]  # grows further out
    assert r.epistemic[4] > r.epistemic[3]  # all kernels underflow here, still finite and ordered
    assert r.total[2] > r.total[:2].max()
    assert r.density[2] < r.density[:2].min()


def test_epistemic_monotone_along_a_ray(blob_nuq: NUQ) -> None:
    q = torch.stack([torch.tensor([2.0, 0.0]) + t * torch.tensor([0.0, 1.0]) for t in (4, 6, 10, 20, 40)])
    e = blob_nuq.predict(q).epistemic
    assert (e[1:] > e[:-1]).all()


def test_aleatoric_high_on_boundary_low_inside(blob_nuq: NUQ) -> None:
    q = torch.tensor([[0.0, 0.0], [0.0, 0.5], [-2.5, 0.0], [2.5, 0.3]])
    r = blob_nuq.predict(q)
    assert (r.aleatoric[:2] > 0.3).all()
    assert (r.aleatoric[2:] < 0.05).all()
    # inside a class: both parts low, and the prediction is that class
    assert r.prediction.shape == (4, 2)
    assert r.prediction[2:].argmax(1).tolist() == [0, 1]
    assert torch.allclose(r.prediction.sum(1), torch.ones(4), atol=1e-5)
    far = blob_nuq.predict(torch.tensor([[0.0, 20.0]]))
    assert (r.epistemic[2:] < far.epistemic - 10).all()
    assert (r.epistemic[2:] < r.epistemic[:2].min()).all()


def test_soft_labels_match_hard_labels() -> None:
    x, y = two_blobs(50)
    q = torch.tensor([[0.1, 0.2], [-1.0, 1.0]])
    a = NUQ(k=7, metric="euclidean").fit(x, y).predict(q)
    b = NUQ(k=7, metric="euclidean").fit(x, torch.nn.functional.one_hot(y, 2).float()).predict(q)
    for f in ("aleatoric", "epistemic", "total", "prediction", "density"):
        assert torch.allclose(getattr(a, f), getattr(b, f))


def brute_force_regression(x, y, q, k, h, var_floor):
    """Independent float64 numpy computation of the module docstring's formulas."""
    x, y, q = (t.double().numpy() for t in (x, y, q))
    n, d = x.shape
    out = []
    for qi in q:
        d2 = ((x - qi) ** 2).sum(1)
        nn = np.argsort(d2)[:k]
        kern = np.exp(-d2[nn] / (2 * h * h))
        w = kern / kern.sum()
        m = (w * y[nn]).sum()
        v = (w * (y[nn] - m) ** 2).sum()
        e = math.log(v + var_floor) - math.log(kern.sum())
        dens = math.log(kern.sum() / (n * h**d * (2 * math.pi) ** (d / 2)))
        out.append((m, v, e, dens, math.log(math.sqrt(v) + math.exp(e / 2))))
    return np.array(out)


def test_regression_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(200, 3, generator=g)
    y = torch.sigmoid(x[:, 0] + 0.3 * torch.randn(200, generator=g))  # confidence-like
    q = torch.tensor([[0.0, 0.0, 0.0], [1.0, -0.5, 0.2], [-2.0, 1.0, 1.0], [0.3, 0.3, -1.5]])
    m = NUQ(k=9, bandwidth=0.7, metric="euclidean", mode="regression", chunk=3).fit(x, y)
    r = m.predict(q)
    ref = brute_force_regression(x, y, q, 9, 0.7, m.var_floor)
    got = torch.stack([r.prediction, r.aleatoric, r.epistemic, r.density, r.total], 1).double().numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("chunk,ref_chunk", [(1, 1), (3, 2), (7, 64), (50, 13), (1000, 1000), (16, 5)])
def test_chunked_topk_equals_brute_force(metric: str, chunk: int, ref_chunk: int) -> None:
    g = torch.Generator().manual_seed(2)
    refs = torch.randn(103, 6, generator=g)  # 103 is prime: no chunk size divides it
    qs = torch.randn(37, 6, generator=g)
    k = 8  # larger than some chunk sizes above
    d2, idx = chunked_knn(qs, refs, k, metric=metric, chunk=chunk, ref_chunk=ref_chunk)
    a, b = qs.double(), refs.double()
    if metric == "cosine":
        a, b = torch.nn.functional.normalize(a, dim=1), torch.nn.functional.normalize(b, dim=1)
    full = torch.cdist(a, b) ** 2  # (Q, N), brute force in float64
    bd, bi = torch.topk(full, k, dim=1, largest=False, sorted=True)
    assert torch.equal(idx, bi)
    torch.testing.assert_close(d2.double(), bd, rtol=1e-5, atol=1e-5)
    if metric == "cosine":  # neighbours ranked by cosine similarity
        cos = a @ b.T
        assert torch.equal(idx, torch.topk(cos, k, dim=1).indices)


def test_leave_one_out_excludes_only_self() -> None:
    g = torch.Generator().manual_seed(3)
    refs = torch.randn(41, 4, generator=g)
    d2, idx = chunked_knn(refs, refs, 5, chunk=6, ref_chunk=7, exclude=torch.arange(41))
    full = torch.cdist(refs.double(), refs.double()) ** 2
    full.fill_diagonal_(math.inf)
    assert torch.equal(idx, torch.topk(full, 5, dim=1, largest=False).indices)
    assert (idx != torch.arange(41)[:, None]).all()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_chunked_topk_cuda_matches_cpu() -> None:
    g = torch.Generator().manual_seed(4)
    refs, qs = torch.randn(500, 32, generator=g), torch.randn(77, 32, generator=g)
    dc, ic = chunked_knn(qs, refs, 20, chunk=16, ref_chunk=33)
    dg, ig = chunked_knn(qs, refs, 20, chunk=16, ref_chunk=33, device="cuda")
    assert torch.equal(ig.cpu(), ic)
    torch.testing.assert_close(dg.cpu(), dc, rtol=1e-4, atol=1e-4)
    x, y = two_blobs(100)
    q = torch.tensor([[0.0, 0.0], [0.0, 20.0]])
    rc = NUQ(k=20, metric="euclidean").fit(x, y).predict(q)
    rg = NUQ(k=20, metric="euclidean", device="cuda").fit(x, y).predict(q)
    assert rg.epistemic.device.type == "cpu"  # back on the queries' device
    torch.testing.assert_close(rg.epistemic, rc.epistemic, rtol=1e-4, atol=1e-4)


def test_median_bandwidth_rule() -> None:
    x = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [3.0, 3.0], [-1.0, 0.5], [4.0, 0.0]])
    k = 2
    xs = x.double().numpy()
    kth = []
    for i in range(len(xs)):
        others = [np.linalg.norm(xs[i] - xs[j]) for j in range(len(xs)) if j != i]
        kth.append(sorted(others)[k - 1])
    expected = float(np.median(kth))
    m = NUQ(k=k, metric="euclidean").fit(x, torch.tensor([0, 0, 1, 1, 0, 1]))
    assert m.bandwidth_ == pytest.approx(expected, rel=1e-6)
    # the deterministic subsample gives the same value when it covers every point
    m2 = NUQ(k=k, metric="euclidean", bandwidth_sample=6, chunk=4, ref_chunk=1).fit(x, torch.zeros(6).long())
    assert m2.bandwidth_ == pytest.approx(expected, rel=1e-6)


def test_scott_silverman_and_fixed_bandwidth() -> None:
    x, y = two_blobs(40)
    n, d = x.shape
    sigma = math.sqrt(float(x.double().var(0).mean()))
    scott = NUQ(bandwidth="scott", metric="euclidean").fit(x, y).bandwidth_
    assert scott == pytest.approx(sigma * n ** (-1 / (d + 4)), rel=1e-6)
    silver = NUQ(bandwidth="silverman", metric="euclidean").fit(x, y).bandwidth_
    assert silver == pytest.approx((4 / (d + 2)) ** (1 / (d + 4)) * sigma * n ** (-1 / (d + 4)), rel=1e-6)
    assert NUQ(bandwidth=0.25).fit(x, y).bandwidth_ == 0.25


def test_memory_bounded_no_query_by_reference_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    chunk = 64
    n, q_count = 5000, 3000
    seen: list[tuple[int, int]] = []
    orig = knn._sq_dist_block

    def spy(q, q_sq, r, r_sq):
        out = orig(q, q_sq, r, r_sq)
        seen.append(tuple(out.shape))
        return out

    def forbidden(*args, **kwargs):
        raise AssertionError("full distance matrix requested")

    monkeypatch.setattr(knn, "_sq_dist_block", spy)
    monkeypatch.setattr(torch, "cdist", forbidden)
    g = torch.Generator().manual_seed(5)
    refs = torch.randn(n, 4, generator=g)
    conf = torch.rand(n, generator=g)
    queries = torch.randn(q_count, 4, generator=g)
    m = NUQ(k=20, bandwidth=1.0, metric="euclidean", chunk=chunk, ref_chunk=1024, mode="regression")
    r = m.fit(refs, conf).predict(queries)
    assert r.epistemic.shape == (q_count,)
    assert torch.isfinite(r.epistemic).all()
    assert seen, "distance blocks were not computed through _sq_dist_block"
    assert max(a * b for a, b in seen) <= chunk * 1024
    assert max(a for a, _ in seen) <= chunk
    # every (query, reference) pair was visited exactly once
    assert sum(a * b for a, b in seen) == q_count * n


def test_deterministic_and_duplicates_are_finite() -> None:
    x, y = two_blobs(60)
    x = torch.cat([x, x[:10], x[:10]])  # exact duplicates
    y = torch.cat([y, y[:10], y[:10]])
    q = torch.cat([x[:5], torch.tensor([[0.0, 0.0], [30.0, 0.0]])])
    m = NUQ(k=5, metric="cosine", chunk=4)
    a = m.fit(x, y).predict(q)
    b = m.predict(q)
    for f in ("aleatoric", "epistemic", "total", "prediction", "density"):
        assert torch.equal(getattr(a, f), getattr(b, f))
        assert torch.isfinite(getattr(a, f)).all()


def test_epsilon_from_quantile_both_ways() -> None:
    s = torch.arange(101, dtype=torch.float32)
    assert epsilon_from_quantile(s, 0.9) == pytest.approx(90.0)
    x, y = two_blobs(50)
    m = NUQ(k=10, metric="euclidean").fit(x, y)
    loo = m.predict_loo()
    assert loo.epistemic.shape == (100,)
    eps = epsilon_from_quantile(None, 0.8, reference=m)
    assert eps == pytest.approx(float(np.quantile(loo.epistemic.double().numpy(), 0.8)))
    # a far query is filtered out by the in-domain threshold, an in-domain one kept
    r = m.predict(torch.tensor([[-2.0, 0.0], [0.0, 25.0]]))
    assert r.epistemic[0] < eps < r.epistemic[1]
    with pytest.raises(ValueError):
        epsilon_from_quantile(s, 0.5, reference=m)


def test_loss_weights_paper_and_release_variants() -> None:
    u = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    # epsilon is inclusive: the box at 3.0 is kept (weight lo), the one above it dropped
    w = loss_weights(u, eps=3.0)
    torch.testing.assert_close(w, torch.tensor([1.0, 5 / 6, 2 / 3, 0.5, 0.0]))
    w_inc = loss_weights(u, eps=3.0, increasing=True)
    torch.testing.assert_close(w_inc, torch.tensor([0.5, 2 / 3, 5 / 6, 1.0, 0.0]))
    # drop=False (Y_HQ): nothing dropped, a box beyond epsilon gets the weight at epsilon
    torch.testing.assert_close(
        loss_weights(u, eps=3.0, drop=False), torch.tensor([1.0, 5 / 6, 2 / 3, 0.5, 0.5])
    )
    # no threshold: the batch's own range, nothing dropped
    torch.testing.assert_close(loss_weights(u), torch.tensor([1.0, 0.875, 0.75, 0.625, 0.5]))
    torch.testing.assert_close(loss_weights(torch.ones(3)), torch.ones(3))
