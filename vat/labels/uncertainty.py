"""NUQ: nonparametric uncertainty from a Nadaraya-Watson estimate over k nearest references.

Reference: N. Kotelevskii et al., "Nonparametric Uncertainty Quantification for Single
Deterministic Neural Network", NeurIPS 2022 (NUQ). VaT (Wu & Jin, ECCV 2024) uses it to
filter pseudo-labels (keep a box iff its uncertainty is below epsilon) and to weight them.

Setting. A reference set of N feature vectors x_i in R^D with targets y_i (the frozen
detector's predictions on clean, in-domain images): one-hot labels or soft labels
(N, C) in ``mode="classification"``, a scalar such as the detector confidence in
``mode="regression"`` (what the authors' released code does). For a query x:

- Distance. ``metric="euclidean"``: d(x, x_i) = ||x - x_i||. ``metric="cosine"``: the
  features are L2-normalised first, so d^2 = 2 (1 - cos(x, x_i)) (the chordal distance:
  neighbours are ranked exactly by cosine similarity, and d is a true metric).
- Neighbours. The k nearest references N_k(x) (k = 20 as the authors use), exact: query
  chunks against reference chunks with matrix products and a running ``torch.topk``
  merge, so memory is O(chunk * ref_chunk + Q * k) and a (Q, N) matrix never exists.
  Ties at the k-th distance are broken arbitrarily (but deterministically).
- Kernel. RBF, log K_i = -d_i^2 / (2 h^2), on the k neighbours only. Everything is done in
  log space (log-sum-exp), so nothing is NaN or infinite even when every K_i underflows.
- Nadaraya-Watson weights w_i = K_i / sum_j K_j = softmax(log K)_i over N_k(x). (When all
  K_i underflow the weights tend to the nearest neighbour's, which is NW's limit.)
- ``prediction``: classification p_hat(c|x) = sum_i w_i y_ic, shape (Q, C);
  regression m(x) = sum_i w_i y_i, shape (Q,).
- ``aleatoric``: classification 1 - max_c p_hat(c|x), the Bayes risk of the plug-in
  classifier (in the binary case this is exactly min(p, 1 - p)); regression the NW
  variance s^2(x) = sum_i w_i (y_i - m(x))^2.
- Label variance sigma^2(x) used by the epistemic term: classification
  max_c p_hat_c (1 - p_hat_c) (NUQ's reference implementation); regression s^2(x).
- ``density``: the LOG of the kernel density estimate truncated to the k neighbours,
  log f_hat(x) = log sum_{i in N_k} K_i - log N - D log h - (D / 2) log(2 pi)
  (a Gaussian-kernel KDE; the truncation is a lower bound on the full sum and is what
  the authors' approximate-neighbour code computes too). In high dimension f_hat itself
  underflows, hence the log.
- ``epistemic``: NUQ's asymptotic variance of the NW estimate is
  tau^2(x) = sigma^2(x) ||K||_2^2 / (N h^D f_hat(x)), and N h^D f_hat(x) = sum_i K_i up to
  a constant, so we report the constant-free log-space form ("log-variance minus
  log-density", as in the authors' released code)
      epistemic(x) = log(sigma^2(x) + var_floor) - log sum_{i in N_k(x)} K_i.
  It is what the pseudo-label filter thresholds. ``var_floor`` (default 1e-4) keeps it
  finite and monotone where the neighbours agree (sigma^2 = 0): then it grows like
  d_min^2 / (2 h^2), large far from all data. NUQ's own score, the mean of a half-normal
  with variance tau^2, is 0.5 * epistemic + const: a monotone map, so thresholds by
  quantile select the same boxes.
- ``total``: log of the sum of the aleatoric part and the epistemic standard error,
      total(x) = log(a(x) + exp(epistemic(x) / 2)),
  computed with ``logaddexp`` (always finite); a(x) is the aleatoric value in
  classification and s(x) = sqrt(s^2(x)) in regression, so both terms are on the
  scale of a standard deviation. The reference implementation likewise combines the
  two parts with a log-sum-exp.

Bandwidth (``bandwidth=``):
- ``"median"`` (default): h = median over reference points x_j of the distance from x_j
  to its k-th nearest OTHER reference (leave-one-out; midpoint of the two middle values
  for an even count). For N > ``bandwidth_sample`` the median runs over that many
  evenly spaced reference points (deterministic), each against the full reference set.
- ``"scott"``: h = sigma_bar * N^(-1 / (D + 4)); ``"silverman"``:
  h = (4 / (D + 2))^(1 / (D + 4)) * sigma_bar * N^(-1 / (D + 4)), where
  sigma_bar^2 = mean over dimensions of the per-dimension variance (unbiased) of the
  (normalised, for cosine) reference features. These are the one-bandwidth forms of the
  classical rules; in high dimension they are about sigma_bar.
- a float: used as is (the authors' release uses a fixed bandwidth).

Pseudo-label helpers: ``epsilon_from_quantile`` (the filter threshold as a quantile of
the query scores, or of the reference set's own leave-one-out scores) and
``loss_weights`` (linear map of uncertainty to a loss weight; see there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vat.labels.knn import _check_features, _knn_block_rows, _prepare

__all__ = ["NUQ", "NUQResult", "epsilon_from_quantile", "loss_weights"]


@dataclass
class NUQResult:
    aleatoric: Tensor  # (Q,) classification: 1 - max_c p_hat; regression: NW variance
    epistemic: Tensor  # (Q,) log(sigma^2 + var_floor) - log sum_k K_i (the filter score)
    total: Tensor  # (Q,) log(aleatoric-as-std + exp(epistemic / 2))
    prediction: Tensor  # (Q, C) class probabilities, or (Q,) regression mean
    density: Tensor  # (Q,) LOG kernel density estimate over the k neighbours

    def to(self, device: torch.device | str) -> NUQResult:
        return NUQResult(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})


class NUQ:
    """Nadaraya-Watson uncertainty over k exact nearest references (formulas: module docstring).

    Args:
        k: neighbours per query (the authors use 20).
        bandwidth: "median" | "scott" | "silverman" | a float (see module docstring).
        metric: "cosine" (features L2-normalised, d^2 = 2 (1 - cos)) or "euclidean".
        chunk: queries per block; ref_chunk: references per block (default chunk). The
            largest distance block is chunk * ref_chunk floats.
        device: where references live and distances are computed (default: the
            reference features' device). Queries are moved there chunk by chunk; results
            come back on the query features' device.
        mode: "classification" (targets: labels (N,) long or soft labels (N, C)) or
            "regression" (targets: (N,) float, e.g. detector confidence).
        var_floor: added to the label variance inside the epistemic log.
        bandwidth_sample: reference points the "median" rule looks at (all if None).
        dtype: compute dtype (float32 by default).
    """

    # Ten arguments: NUQ's hyperparameters, each documented in the class docstring.
    def __init__(
        self,
        k: int = 20,
        bandwidth: float | Literal["median", "scott", "silverman"] = "median",
        metric: Literal["cosine", "euclidean"] = "cosine",
        chunk: int = 4096,
        device: torch.device | str | None = None,
        mode: Literal["classification", "regression"] = "classification",
        *,
        ref_chunk: int | None = None,
        var_floor: float = 1e-4,
        bandwidth_sample: int | None = 8192,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        if metric not in ("cosine", "euclidean"):
            raise ValueError(f"unknown metric {metric!r}")
        if mode not in ("classification", "regression"):
            raise ValueError(f"unknown mode {mode!r}")
        if isinstance(bandwidth, str) and bandwidth not in ("median", "scott", "silverman"):
            raise ValueError(f"unknown bandwidth rule {bandwidth!r}")
        if not isinstance(bandwidth, str) and not bandwidth > 0:
            raise ValueError("a numeric bandwidth must be > 0")
        if chunk < 1 or (ref_chunk is not None and ref_chunk < 1):
            raise ValueError("chunk sizes must be >= 1")
        if var_floor <= 0:
            raise ValueError("var_floor must be > 0")
        self.k = k
        self.bandwidth = bandwidth
        self.metric = metric
        self.chunk = chunk
        self.ref_chunk = ref_chunk or chunk
        self.device = torch.device(device) if device is not None else None
        self.mode = mode
        self.var_floor = var_floor
        self.bandwidth_sample = bandwidth_sample
        self.dtype = dtype
        self.bandwidth_: float | None = None  # set by fit

    # ----------------------------------------------------------------- fitting
    def fit(self, features: Tensor, targets: Tensor, num_classes: int | None = None) -> NUQ:
        """Store the reference set and choose the bandwidth. features (N, D)."""
        _check_features(features, "features")
        n = features.shape[0]
        if n < 2:
            raise ValueError("NUQ needs at least two reference points")
        dev = self.device if self.device is not None else features.device
        self._dev = dev
        self.refs_ = _prepare(features, self.metric, dev, self.dtype)  # (N, D)
        self.refs_sq_ = (self.refs_ * self.refs_).sum(1)  # (N,)
        self.targets_ = self._prepare_targets(targets, n, num_classes).to(dev)  # (N, C) or (N,)
        self.bandwidth_ = self._choose_bandwidth()
        return self

    def _prepare_targets(self, targets: Tensor, n: int, num_classes: int | None) -> Tensor:
        if targets.shape[0] != n:
            raise ValueError(f"{targets.shape[0]} targets for {n} features")
        if self.mode == "regression":
            if targets.ndim != 1:
                raise ValueError("regression targets must be (N,)")
            y = targets.to(self.dtype)
        elif targets.ndim == 1:
            if targets.dtype.is_floating_point:
                raise ValueError("class labels must be integer; pass soft labels as (N, C)")
            if int(targets.min()) < 0:
                raise ValueError("class labels must be >= 0")
            c = num_classes if num_classes is not None else int(targets.max()) + 1
            y = F.one_hot(targets.long(), c).to(self.dtype)
        elif targets.ndim == 2:
            y = targets.to(self.dtype)
        else:
            raise ValueError("classification targets must be (N,) labels or (N, C) soft labels")
        if not bool(torch.isfinite(y).all()):
            raise ValueError("targets contain NaN or inf")
        return y

    def _choose_bandwidth(self) -> float:
        if not isinstance(self.bandwidth, str):
            return float(self.bandwidth)
        n, d = self.refs_.shape
        if self.bandwidth in ("scott", "silverman"):
            sigma = float(self.refs_.double().var(dim=0, unbiased=True).mean().sqrt())
            h = sigma * n ** (-1.0 / (d + 4))
            if self.bandwidth == "silverman":
                h *= (4.0 / (d + 2)) ** (1.0 / (d + 4))
        else:  # median distance to the k-th other reference
            k = min(self.k, n - 1)
            if self.bandwidth_sample is not None and n > self.bandwidth_sample:
                ids = torch.linspace(0, n - 1, self.bandwidth_sample, device=self._dev).round().long()
            else:
                ids = torch.arange(n, device=self._dev)
            kth = []
            for qs in range(0, ids.numel(), self.chunk):
                cid = ids[qs : qs + self.chunk]
                d2, _ = _knn_block_rows(self.refs_[cid], self.refs_, self.refs_sq_, k, self.ref_chunk, cid)
                kth.append(d2[:, -1])
            dist = torch.cat(kth).double().sqrt()
            h = float(torch.quantile(dist, 0.5))
            if h <= 0:  # many duplicates: fall back to the mean positive distance
                pos = dist[dist > 0]
                if pos.numel() == 0:
                    raise ValueError("all reference points coincide; pass a numeric bandwidth")
                h = float(pos.mean())
        if not (h > 0 and math.isfinite(h)):
            raise ValueError(f"bandwidth rule {self.bandwidth!r} gave {h}; pass a numeric bandwidth")
        return h

    # -------------------------------------------------------------- prediction
    def predict(self, features: Tensor) -> NUQResult:
        """Uncertainty for queries (Q, D); results on the queries' device."""
        return self._predict(features, loo=False)

    def predict_loo(self) -> NUQResult:
        """Leave-one-out scores of the reference set itself (each point not its own neighbour)."""
        self._check_fitted()
        return self._predict(self.refs_, loo=True)

    def _check_fitted(self) -> None:
        if self.bandwidth_ is None:
            raise RuntimeError("call fit() first")

    def _predict(self, features: Tensor, loo: bool) -> NUQResult:
        self._check_fitted()
        _check_features(features, "features")
        n, d = self.refs_.shape
        if features.shape[1] != d:
            raise ValueError(f"features have dimension {features.shape[1]}, references {d}")
        q_total = features.shape[0]
        k = min(self.k, n - 1 if loo else n)
        h = self.bandwidth_
        inv_2h2 = 1.0 / (2.0 * h * h)
        log_norm = math.log(n) + d * math.log(h) + 0.5 * d * math.log(2.0 * math.pi)
        parts: dict[str, list[Tensor]] = {f.name: [] for f in fields(NUQResult)}
        for qs in range(0, q_total, self.chunk):
            if loo:
                q = self.refs_[qs : qs + self.chunk]
                ex = torch.arange(qs, qs + q.shape[0], device=self._dev)
            else:
                q = _prepare(features[qs : qs + self.chunk], self.metric, self._dev, self.dtype)
                ex = None
            d2, idx = _knn_block_rows(q, self.refs_, self.refs_sq_, k, self.ref_chunk, ex)  # (a, k)
            for name, value in self._nw(d2, idx, inv_2h2, log_norm).items():
                parts[name].append(value)
        out_dev = self._dev if loo else features.device
        res = {}
        for name, vals in parts.items():
            if vals:
                res[name] = torch.cat(vals).to(out_dev)
            else:
                shape = (
                    (0, self.targets_.shape[1]) if name == "prediction" and self.targets_.ndim == 2 else (0,)
                )
                res[name] = torch.empty(shape, dtype=self.dtype, device=out_dev)
        return NUQResult(**res)

    def _nw(self, d2: Tensor, idx: Tensor, inv_2h2: float, log_norm: float) -> dict[str, Tensor]:
        """NW estimates from the k neighbours' squared distances d2 (a, k) and indices."""
        # (a, k) log kernel; the clamp only guards against overflow to -inf for absurd distances
        log_k = (-d2 * inv_2h2).clamp_min(-1e30)
        lse = torch.logsumexp(log_k, dim=1)  # (a,) log sum_i K_i, finite
        w = torch.softmax(log_k, dim=1)  # (a, k) NW weights
        y = self.targets_[idx]  # (a, k, C) or (a, k)
        if self.mode == "classification":
            p = torch.einsum("ak,akc->ac", w, y)  # (a, C)
            aleatoric = 1.0 - p.max(dim=1).values
            sigma2 = (p * (1.0 - p)).max(dim=1).values.clamp_min(0.0)
            spread = aleatoric.clamp_min(0.0)
        else:
            p = (w * y).sum(1)  # (a,)
            aleatoric = (w * (y - p.unsqueeze(1)) ** 2).sum(1)
            sigma2 = aleatoric
            spread = aleatoric.sqrt()
        epistemic = torch.log(sigma2 + self.var_floor) - lse
        total = torch.logaddexp(torch.log(spread), 0.5 * epistemic)  # log(spread + exp(e / 2))
        return {
            "aleatoric": aleatoric,
            "epistemic": epistemic,
            "total": total,
            "prediction": p,
            "density": lse - log_norm,
        }


# ----------------------------------------------------------- pseudo-label helpers
def epsilon_from_quantile(
    scores: Tensor | None,
    q: float,
    *,
    reference: NUQ | None = None,
    field: Literal["epistemic", "aleatoric", "total"] = "epistemic",
) -> float:
    """Filter threshold epsilon as the q-quantile (linear interpolation, numpy's default).

    Two ways, pass exactly one:
    - ``scores`` (the query scores, e.g. the epistemic values of all candidate boxes):
      keeping ``score < epsilon`` keeps about the fraction q of the candidates.
    - ``reference=`` a fitted NUQ: the quantile of the reference set's own leave-one-out
      ``field`` scores (each clean in-domain point scored without itself). A box is then
      kept iff it is no more uncertain than the fraction q of in-domain points, whatever
      the share of bad boxes in the query batch. Costs one N x N neighbour search.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError("q must be in [0, 1]")
    if (scores is None) == (reference is None):
        raise ValueError("pass exactly one of scores and reference=")
    if reference is not None:
        scores = getattr(reference.predict_loo(), field)
    s = scores.detach().double().cpu().numpy().ravel()
    if s.size == 0:
        raise ValueError("no scores")
    if not np.isfinite(s).all():
        raise ValueError("scores contain NaN or inf")
    return float(np.quantile(s, q))


def loss_weights(
    uncertainty: Tensor,
    lo: float = 0.5,
    hi: float = 1.0,
    eps: float | None = None,
    *,
    floor: float | None = None,
    increasing: bool = False,
    drop: bool = True,
) -> Tensor:
    """Per-box loss weights from an uncertainty score, mapped linearly into [lo, hi].

    t = clamp((u - floor) / (eps - floor), 0, 1), with floor = min(u) and eps = max(u)
    unless given. Boxes with u > eps (when eps is given) are dropped: weight 0, and the
    caller should remove them. The rule is inclusive, as the filter's (it keeps U <= epsilon;
    the paper writes U < epsilon, which differs only for a box exactly at the threshold, and
    epsilon is a quantile of the scores, so such a box exists: the inclusive rule keeps it,
    at weight ``lo`` or ``hi``). ``drop=False`` keeps every box: those beyond epsilon get the
    weight at epsilon (Y_HQ's U_HQ weights, which Algorithm 1 does not filter).

    - default (the paper: low uncertainty -> trusted more): weight = hi - (hi - lo) t,
      from hi for the most certain box down towards lo at the threshold;
    - ``increasing=True`` (the authors' released code): weight = lo + (hi - lo) t, in
      [lo, hi): the weight grows with the uncertainty, and a box at the top of the range
      is dropped.
    """
    if not lo <= hi:
        raise ValueError("need lo <= hi")
    u = uncertainty.detach().to(torch.float32)
    if u.numel() == 0:
        return u.clone()
    if not bool(torch.isfinite(u).all()):
        raise ValueError("uncertainty contains NaN or inf")
    f = float(u.min()) if floor is None else float(floor)
    top = float(u.max()) if eps is None else float(eps)
    span = top - f
    t = ((u - f) / span).clamp(0.0, 1.0) if span > 0 else torch.zeros_like(u)
    w = lo + (hi - lo) * t if increasing else hi - (hi - lo) * t
    if eps is not None and drop:
        w = torch.where(u > eps, torch.zeros_like(w), w)
    return w
