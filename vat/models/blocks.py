"""The translator's building blocks: Restormer's transformer block (Zamir et al., CVPR 2022).

**Transformer block** = x + MDTA(LN(x)), then x + GDFN(LN(x)), all convs bias-free as in
Restormer. MDTA: 1x1 conv -> 3x3 depthwise conv gives q, k, v; q and k are L2-normalised
along the pixels and attention is (C/heads) x (C/heads) per head, scaled by a learnable
per-head temperature -- memory is O(C^2), never O((HW)^2), so 512 px images are fine. It is
plain matmul: ``F.scaled_dot_product_attention`` takes one scalar scale (not a per-head
learnable temperature) and its fused kernels cap the head dim far below HW, so it would
fall back to the same matmuls. The softmax runs in float32. GDFN: 1x1 conv to
``2 * int(C * ffn_expansion)``, 3x3 depthwise, GELU(x1) * x2, 1x1 conv back to C.

**LayerNorm over channels** = Restormer's WithBias LayerNorm (biased variance, eps 1e-5),
computed as ``F.layer_norm`` on the (B, H, W, C) permutation. For channels_last tensors
that permutation is a free view; the output is channels_last-strided either way. With few
channels (C <= 8, the small widths' full-resolution levels) in float32 on a CPU, rows of C
values are too short for ``layer_norm``'s kernels, so the same arithmetic runs as reductions
over dim 1 instead (2.4-3.6x faster forward + backward at C = 8 and 4 on a 2-core CPU, the
same values to float32 rounding; ``reports/bench/profile-cpu.md``).

**On a CPU in float32** MDTA computes its attention from one Gram matrix of the channels_last
q and k (:meth:`MDTA._gram`) and GDFN convolves its two halves apart (:meth:`GDFN._halves`):
the same functions, written so that no tensor is copied out of the channels_last layout;
GPUs and bf16 keep Restormer's form (their speed there is unmeasured).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint as _checkpoint

SHORT_ROWS = 8  # ChannelLayerNorm: at most this many channels take the dim-1 reductions on a CPU


def _cpu_float(x: Tensor) -> bool:
    """The CPU's float32 paths (the reductions, the Gram attention, GDFN's halves) apply."""
    return x.device.type == "cpu" and x.dtype == torch.float32 and not torch.is_autocast_enabled("cpu")


class ChannelLayerNorm(nn.Module):
    """LayerNorm over C of (B, C, H, W): Restormer's WithBias LayerNorm via ``F.layer_norm``."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] <= SHORT_ROWS and _cpu_float(x):
            mu = x.mean(1, keepdim=True)
            d = x - mu
            var = (d * d).mean(1, keepdim=True)  # biased, as layer_norm
            return d * torch.rsqrt(var + self.eps) * self.weight[:, None, None] + self.bias[:, None, None]
        y = x.permute(0, 2, 3, 1)  # (B, H, W, C): a view, contiguous when x is channels_last
        y = F.layer_norm(y, (y.shape[-1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)  # (B, C, H, W), channels_last strides


class MDTA(nn.Module):
    """Multi-Dconv head transposed attention: C x C attention per head, O(C^2) memory."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.temperature = nn.Parameter(torch.ones(heads, 1, 1))
        self.qkv = nn.Conv2d(channels, 3 * channels, 1, bias=False)
        self.qkv_dwconv = nn.Conv2d(3 * channels, 3 * channels, 3, padding=1, groups=3 * channels, bias=False)
        self.project_out = nn.Conv2d(channels, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if _cpu_float(x):
            return self._gram(x)
        return self._per_head(x)

    def _per_head(self, x: Tensor) -> Tensor:
        """Restormer's formulation: normalise q and k, then one (C/heads)^2 matmul per head."""
        b, c, h, w = x.shape
        qkv = self.qkv_dwconv(self.qkv(x))  # (B, 3C, H, W)
        q, k, v = qkv.reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)  # (B, heads, C/heads, HW)
        q = F.normalize(q, dim=-1)
        k = F.normalize(k, dim=-1)
        attn = (q @ k.transpose(-2, -1)) * self.temperature  # (B, heads, C/heads, C/heads)
        attn = torch.softmax(attn.float(), dim=-1).to(v.dtype)
        out = attn @ v  # (B, heads, C/heads, HW)
        return self.project_out(out.reshape(b, c, h, w))  # (B, C, H, W)

    def _gram(self, x: Tensor) -> Tensor:
        """The same attention from one Gram matrix, for channels_last float32 on a CPU.

        On a CPU the per-head form copies q, k, v out of the channels_last layout (3 copies
        of the block's largest tensor) and reduces the norms over a strided axis; here q and k
        stay views of the (B, HW, 3C) layout: one (2C x HW) @ (HW x 2C) matmul gives every
        q_i . k_j and, on its diagonal, the squared norms; the attention of each head is its
        diagonal block; the output is v @ (block-diagonal attention)^T, already channels_last.
        The same values to float32 rounding (the norms are summed by the matmul instead of a
        reduction); 3.5x faster forward and 1.5x forward + backward at full resolution.
        """
        b, c, h, w = x.shape
        heads, d = self.heads, c // self.heads
        qkv = self.qkv_dwconv(self.qkv(x))  # (B, 3C, H, W)
        t = qkv.permute(0, 2, 3, 1).reshape(b, h * w, 3 * c)  # (B, HW, 3C): a view when channels_last
        qk, v = t[..., : 2 * c], t[..., 2 * c :]
        gram = qk.transpose(1, 2) @ qk  # (B, 2C, 2C)
        # F.normalize's eps 1e-12 on the norm is 1e-24 on its square
        norm = gram.diagonal(dim1=1, dim2=2).clamp_min(1e-24).sqrt()  # (B, 2C)
        cos = gram[:, :c, c:] / (norm[:, :c, None] * norm[:, None, c:])  # (B, C, C): q_i . k_j / |q_i||k_j|
        # each head's (d x d) diagonal block: (B, d, d, heads)
        cos = cos.unflatten(1, (heads, d)).unflatten(3, (heads, d)).diagonal(dim1=1, dim2=3)
        attn = cos.permute(0, 3, 1, 2) * self.temperature  # (B, heads, d, d)
        attn = torch.softmax(attn.float(), dim=-1).to(v.dtype)
        block = torch.diag_embed(attn.permute(0, 2, 3, 1), dim1=1, dim2=3).reshape(b, c, c)  # block diagonal
        out = v @ block.transpose(1, 2)  # (B, HW, C)
        return self.project_out(out.view(b, h, w, c).permute(0, 3, 1, 2))  # (B, C, H, W), channels_last


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network: 1x1 expand, 3x3 depthwise, GELU gate, 1x1 project."""

    def __init__(self, channels: int, expansion: float) -> None:
        super().__init__()
        hidden = int(channels * expansion)
        self.project_in = nn.Conv2d(channels, 2 * hidden, 1, bias=False)
        self.dwconv = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden, bias=False)
        self.project_out = nn.Conv2d(hidden, channels, 1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        if _cpu_float(x):
            return self._halves(x)
        x1, x2 = self.dwconv(self.project_in(x)).chunk(2, dim=1)  # 2 x (B, hidden, H, W)
        if x1.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
            # half the channels of a channels_last tensor is strided; GELU's vectorised kernel
            # needs it dense: the copy is 3.8x faster forward + backward on a CPU (profile-cpu.md)
            x1 = x1.contiguous(memory_format=torch.channels_last)
        return self.project_out(F.gelu(x1) * x2)  # (B, C, H, W)

    def _halves(self, x: Tensor) -> Tensor:
        """The same GDFN with its two halves convolved apart (the weights' slices: same
        parameters), so each comes out dense for GELU and the product without a copy: on a CPU
        1.2-1.8x faster forward + backward, bit-equal forward."""
        hidden = self.project_out.in_channels
        w_in, w_dw = self.project_in.weight, self.dwconv.weight
        x1, x2 = (
            F.conv2d(F.conv2d(x, w_in[s]), w_dw[s], padding=1, groups=hidden)
            for s in (slice(0, hidden), slice(hidden, None))
        )
        return self.project_out(F.gelu(x1) * x2)  # (B, C, H, W)


class TransformerBlock(nn.Module):
    """Restormer block: x + MDTA(LN(x)), then x + GDFN(LN(x)); optional activation checkpointing."""

    def __init__(self, channels: int, heads: int, expansion: float) -> None:
        super().__init__()
        self.norm1 = ChannelLayerNorm(channels)
        self.attn = MDTA(channels, heads)
        self.norm2 = ChannelLayerNorm(channels)
        self.ffn = GDFN(channels, expansion)
        self.checkpoint = False  # set by VaT.set_checkpoint

    def _body(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))

    def forward(self, x: Tensor) -> Tensor:
        if self.checkpoint and torch.is_grad_enabled():
            return _checkpoint(self._body, x, use_reentrant=False)
        return self._body(x)


def _stage(channels: int, heads: int, count: int, expansion: float) -> nn.Sequential:
    return nn.Sequential(*(TransformerBlock(channels, heads, expansion) for _ in range(count)))


def _pad_to_multiple(x: Tensor, multiple: int) -> Tensor:
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph == 0 and pw == 0:
        return x
    # reflect needs the pad to be smaller than the side; tiny images fall back to replicate
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode)


@torch.no_grad()
def default_init(module: nn.Module, gen: torch.Generator) -> None:
    """PyTorch's default init of ``module``'s convolutions, U(+-1/sqrt(fan_in)), drawn from ``gen``;
    LayerNorms at (1, 0), attention temperatures at 1."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            bound = 1.0 / math.sqrt(m.weight[0].numel())  # 1 / sqrt(fan_in)
            for p in (m.weight, m.bias):
                if p is not None:
                    p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=gen))
        elif isinstance(m, ChannelLayerNorm):
            m.weight.fill_(1.0)
            m.bias.zero_()
        elif isinstance(m, MDTA):
            m.temperature.fill_(1.0)
