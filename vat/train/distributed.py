"""Small helpers around ``torch.distributed`` for training under ``torchrun`` (DDP).

One process per device; torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (and
``MASTER_ADDR`` / ``MASTER_PORT``). Without them everything here is the single-process
identity: world 1, rank 0, no process group, :func:`all_gather_cat` returns its input.

The global batch of ``B_g`` samples is split into ``world`` equal contiguous shards
(:func:`shard`); rank ``r`` holds samples ``[r * B_g / W, (r + 1) * B_g / W)``. The VaT loss
(:mod:`vat.train.losses`) uses :func:`all_gather_cat` to put the translated images of every shard
together, so its supervised terms are computed on the global batch exactly as one process
would, and gradients flow back to each rank's own slice (see :func:`all_gather_cat`).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor

__all__ = [
    "init_from_env",
    "is_distributed",
    "rank",
    "world",
    "local_rank",
    "is_main",
    "barrier",
    "cleanup",
    "all_gather_cat",
    "all_reduce_mean",
    "shard",
    "broadcast_object",
]


def init_from_env(device: torch.device | str = "cpu") -> tuple[int, int]:
    """Join the process group torchrun describes in the environment; ``(rank, world)``.

    Reads ``RANK`` / ``WORLD_SIZE`` / ``LOCAL_RANK``; when they are absent returns ``(0, 1)``
    and creates no process group. Backend: NCCL for a CUDA ``device`` (after making
    ``cuda:LOCAL_RANK`` the current device, so ``"cuda"`` means this process's GPU), Gloo
    otherwise. Calling it again once the group exists just returns ``(rank, world)``.
    """
    if is_distributed():
        return rank(), world()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return 0, 1
    r, w, lr = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), local_rank()
    if not dist.is_available():
        raise RuntimeError("torch.distributed is not available in this build of PyTorch")
    kwargs: dict[str, Any] = {}
    if torch.device(device).type == "cuda":
        backend = "nccl"
        torch.cuda.set_device(lr)
        kwargs["device_id"] = torch.device("cuda", lr)
    else:
        backend = "gloo"
    dist.init_process_group(backend, rank=r, world_size=w, **kwargs)
    return r, w


def is_distributed() -> bool:
    """A process group exists (this process was started by torchrun and joined it)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world() -> int:
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine (``LOCAL_RANK``; 0 outside torchrun)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def is_main() -> bool:
    """Rank 0: the process that logs, evaluates and writes checkpoints."""
    return rank() == 0


def _is_nccl() -> bool:
    return dist.get_backend() == dist.Backend.NCCL


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if not is_distributed():
        return
    if _is_nccl():
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


def cleanup() -> None:
    """Leave and destroy the process group, if any."""
    if is_distributed():
        dist.destroy_process_group()


class _AllGatherCat(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor along dim 0; backward: sum over ranks, own slice."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        x = x.contiguous()
        w, r = dist.get_world_size(), dist.get_rank()
        ctx.rank, ctx.world, ctx.n = r, w, x.shape[0]
        out = x.new_empty((w * x.shape[0], *x.shape[1:]))
        gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        gather(out, x)
        return out

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        # Every rank computed the loss on the whole gathered tensor, so the gradient of this
        # rank's rows is the sum of what every rank sends back for them.
        if _is_nccl():
            out = grad.new_empty((ctx.n, *grad.shape[1:]))
            scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
            scatter(out, grad.contiguous(), op=dist.ReduceOp.SUM)
            return out
        # Gloo and others: an all-reduce of the whole gradient, then this rank's rows (one
        # collective; torch.distributed.nn's all_gather emulates reduce-scatter with W scatters).
        total = grad.clone(memory_format=torch.contiguous_format)  # all_reduce works in place
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        return total[ctx.rank * ctx.n : (ctx.rank + 1) * ctx.n]


def all_gather_cat(x: Tensor) -> Tensor:
    """Every rank's ``x`` (same shape on all ranks) concatenated along dim 0, rank order, with autograd.

    Backward: the gradient of this rank's rows, *summed over the ranks* (each rank
    backpropagates its own copy of the result). When every rank computes the same loss ``L``
    on the gathered tensor, each rank's inputs thus receive ``W * dL/dx``, which DDP's
    gradient averaging turns back into ``dL/dx``. Identity without a process group.
    """
    if not is_distributed() or world() == 1:
        return x
    return _AllGatherCat.apply(x)


def all_reduce_mean(x: Tensor | float) -> Tensor:
    """The mean over ranks of ``x`` (detached; for logging). Identity (detached) in a world of 1."""
    t = torch.as_tensor(x).detach()
    dtype = t.dtype if t.is_floating_point() else torch.float64
    if not is_distributed() or world() == 1:
        return t.to(dtype, copy=True)
    comm = torch.device("cuda", torch.cuda.current_device()) if _is_nccl() else torch.device("cpu")
    total = t.to(comm, torch.float64, copy=True)
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return (total / world()).to(t.device, dtype)


def shard(global_batch_size: int) -> slice:
    """This rank's contiguous part ``[r * B / W, (r + 1) * B / W)`` of a global batch of ``B``."""
    b, w, r = int(global_batch_size), world(), rank()
    if b <= 0 or b % w:
        raise ValueError(f"a global batch of {global_batch_size} does not split into {w} equal shards")
    n = b // w
    return slice(r * n, (r + 1) * n)


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (any picklable object) on every rank; ``obj`` itself without a group."""
    if not is_distributed() or world() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]
