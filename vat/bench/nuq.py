"""Throughput and peak memory of NUQ (``vat.labels.uncertainty``) on random features.

``bench_nuq`` builds N reference and Q query feature vectors (standard normal, float32,
from ``seed``), fits a regression NUQ (cosine metric, "median" bandwidth, detector-
confidence-like targets in [0, 1): the authors' released configuration) and times
``predict`` on the queries. No printing; the caller formats the dict.

Memory, and how it is measured:
- CUDA: ``torch.cuda.max_memory_allocated`` during fit + predict minus what was
  allocated before (the generated data start on the CPU, so the stored reference copy
  on the GPU is included).
- CPU: the process's resident set size (psutil) sampled every 5 ms by a background
  thread during fit + predict, minus the RSS just before fit (after the random data are
  made). It includes the normalised reference copy fit keeps, the per-chunk distance
  blocks and the outputs; sampling can miss a peak shorter than 5 ms. ``ru_maxrss``
  (the process's lifetime peak, from ``resource.getrusage``) is reported alongside.
"""

from __future__ import annotations

import gc
import resource
import threading
import time

import psutil
import torch

from vat.labels.uncertainty import NUQ


class _RssSampler:
    def __init__(self, period_s: float = 0.005) -> None:
        self._proc = psutil.Process()
        self._period = period_s
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._proc.memory_info().rss)
            self._stop.wait(self._period)

    def __enter__(self) -> _RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# One measurement, setup to numbers, read top to bottom.
def bench_nuq(
    n_ref: int,
    n_query: int,
    dim: int,
    k: int = 20,
    device: str = "cpu",
    chunk: int = 4096,
    seed: int = 0,
) -> dict:
    """Fit NUQ on n_ref references, predict n_query queries; return timings and memory."""
    dev = torch.device(device)
    g = torch.Generator().manual_seed(seed)
    refs = torch.randn(n_ref, dim, generator=g)  # (N, D)
    conf = torch.rand(n_ref, generator=g)  # (N,)
    queries = torch.randn(n_query, dim, generator=g)  # (Q, D)
    nuq = NUQ(k=k, bandwidth="median", metric="cosine", chunk=chunk, device=dev, mode="regression")
    gc.collect()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
        t0 = time.perf_counter()
        nuq.fit(refs, conf)
        _sync(dev)
        t1 = time.perf_counter()
        res = nuq.predict(queries)
        _sync(dev)
        t2 = time.perf_counter()
        peak = torch.cuda.max_memory_allocated(dev) - base
        mem_method = "torch.cuda.max_memory_allocated minus allocated before fit"
    else:
        with _RssSampler() as sampler:
            base = sampler.peak
            t0 = time.perf_counter()
            nuq.fit(refs, conf)
            t1 = time.perf_counter()
            res = nuq.predict(queries)
            t2 = time.perf_counter()
        peak = sampler.peak - base
        mem_method = "psutil RSS sampled every 5 ms during fit+predict, minus RSS before fit"
    return {
        "n_ref": n_ref,
        "n_query": n_query,
        "dim": dim,
        "k": k,
        "device": str(dev),
        "chunk": chunk,
        "seed": seed,
        "threads": torch.get_num_threads(),
        "bandwidth": nuq.bandwidth_,
        "bandwidth_sample": nuq.bandwidth_sample,
        "fit_s": t1 - t0,
        "predict_s": t2 - t1,
        "queries_per_s": n_query / (t2 - t1) if t2 > t1 else float("inf"),
        "peak_mem_bytes": int(peak),
        "peak_mem_method": mem_method,
        "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "ref_store_bytes": nuq.refs_.numel() * nuq.refs_.element_size(),
        "block_bytes": chunk * nuq.ref_chunk * 4,
        "all_finite": bool(torch.isfinite(res.epistemic).all() and torch.isfinite(res.total).all()),
    }
