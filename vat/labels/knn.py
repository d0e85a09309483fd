"""Exact k nearest neighbours, chunked: memory O(chunk * ref_chunk + Q * k), never a (Q, N) matrix.

Query chunks against reference chunks with matrix products and a running ``torch.topk``
merge; ties at the k-th distance are broken arbitrarily (but deterministically). For
``metric="cosine"`` the features are L2-normalised first, so d^2 = 2 (1 - cos). NUQ
(:mod:`vat.labels.uncertainty`) finds its neighbours here.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def _sq_dist_block(q: Tensor, q_sq: Tensor, r: Tensor, r_sq: Tensor) -> Tensor:
    """Squared euclidean distances of one query block to one reference block.

    q (a, D), q_sq (a,), r (b, D), r_sq (b,) -> (a, b). The only place a distance matrix
    is made; its size is at most chunk * ref_chunk (tests check that).
    """
    d2 = torch.addmm(r_sq.unsqueeze(0), q, r.T, beta=1.0, alpha=-2.0)  # (a, b)
    d2.add_(q_sq.unsqueeze(1))
    return d2.clamp_min_(0.0)  # cancellation can make tiny distances slightly negative


def _knn_block_rows(
    q: Tensor,
    refs: Tensor,
    refs_sq: Tensor,
    k: int,
    ref_chunk: int,
    exclude: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest references of the query rows q (already on refs' device).

    Returns squared distances (a, k) sorted ascending and reference indices (a, k).
    ``exclude`` (a,) long: a reference index each row must not return (leave-one-out),
    or -1 for none.
    """
    a, n = q.shape[0], refs.shape[0]
    q_sq = (q * q).sum(1)  # (a,)
    best_d = torch.full((a, k), math.inf, dtype=q.dtype, device=q.device)  # (a, k)
    best_i = torch.full((a, k), -1, dtype=torch.long, device=q.device)  # (a, k)
    for rs in range(0, n, ref_chunk):
        re = min(rs + ref_chunk, n)
        d2 = _sq_dist_block(q, q_sq, refs[rs:re], refs_sq[rs:re])  # (a, b)
        if exclude is not None:
            cols = torch.arange(rs, re, device=q.device)
            d2.masked_fill_(exclude.unsqueeze(1) == cols.unsqueeze(0), math.inf)
        kk = min(k, re - rs)
        bd, bi = torch.topk(d2, kk, dim=1, largest=False, sorted=False)  # (a, kk)
        cat_d = torch.cat([best_d, bd], 1)  # (a, k + kk)
        cat_i = torch.cat([best_i, bi + rs], 1)
        best_d, pos = torch.topk(cat_d, k, dim=1, largest=False, sorted=False)  # (a, k)
        best_i = torch.gather(cat_i, 1, pos)
    best_d, order = torch.sort(best_d, dim=1)
    return best_d, torch.gather(best_i, 1, order)


def _prepare(x: Tensor, metric: str, device: torch.device, dtype: torch.dtype) -> Tensor:
    x = x.to(device=device, dtype=dtype, non_blocking=True)
    if metric == "cosine":
        x = F.normalize(x, dim=1)
    return x


def _check_features(x: Tensor, name: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be (n, D), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contain NaN or inf")


# Nine arguments: the queries, references, k and keyword-only search options.
def chunked_knn(
    queries: Tensor,
    refs: Tensor,
    k: int,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    chunk: int = 4096,
    ref_chunk: int | None = None,
    exclude: Tensor | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> tuple[Tensor, Tensor]:
    """Exact k nearest neighbours of ``queries`` (Q, D) among ``refs`` (N, D), chunked.

    Returns squared distances (Q, k) ascending (for cosine: 2 (1 - cos)) and indices
    (Q, k) into refs, on ``device`` (default: refs' device). ``exclude`` (Q,) long gives
    a reference index each query must skip (-1: none). k is capped at the number of
    candidates.
    """
    _check_features(queries, "queries")
    _check_features(refs, "refs")
    dev = torch.device(device) if device is not None else refs.device
    ref_chunk = ref_chunk or chunk
    r = _prepare(refs, metric, dev, dtype)
    r_sq = (r * r).sum(1)
    k = min(k, r.shape[0] - (1 if exclude is not None else 0))
    if k < 1:
        raise ValueError("not enough references for a neighbour")
    out_d, out_i = [], []
    for qs in range(0, queries.shape[0], chunk):
        q = _prepare(queries[qs : qs + chunk], metric, dev, dtype)
        ex = None if exclude is None else exclude[qs : qs + chunk].to(dev)
        d, i = _knn_block_rows(q, r, r_sq, k, ref_chunk, ex)
        out_d.append(d)
        out_i.append(i)
    if not out_d:
        return torch.empty(0, k, dtype=dtype, device=dev), torch.empty(0, k, dtype=torch.long, device=dev)
    return torch.cat(out_d), torch.cat(out_i)
