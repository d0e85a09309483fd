"""The VaT translator: gated fusion G, then a U-shaped Restormer-style transformation T.

VaT (J. Wu, Z. Jin, "Unsupervised Variational Translator for Bridging Image Restoration and
High-Level Vision Tasks", ECCV 2024, Sec. 4.1, Figs. 2-3) inserts a small trainable network
between a frozen restorer R and a frozen high-level model D:

    I_F  = G(I_R, I_LQ) = w * I_LQ + (1 - w) * I_R,   w = sigmoid(conv1x1(TB(conv3x3([I_R, I_LQ]))))
    I_HQ = T_A(I_F)                                   what inference runs (G and T_A only)
    T_B : I_HQ -> I_F                                 same structure, only for the cycle loss (Eq. 6)

Architecture
------------
- **G** (:class:`GatedFusion`, paper Eq. 5): ``concat(I_R, I_LQ)`` (B, 6, H, W) -> 3x3 conv to
  ``width`` -> ``gate_blocks`` transformer blocks -> 1x1 conv to ONE channel -> sigmoid. One
  channel follows the paper ("a point convolutional layer with one output channel") and the
  design card; the authors' released code (github.com/Fire-friend/VaT, ``VaTrainer/network.py``)
  predicts three channels (a per-colour gate) instead. The sigmoid and the blend run in
  float32 even under autocast, so w = 1 gives I_LQ and w = 0 gives I_R bit-exactly.
- **T** (:class:`Transformation`): Restormer's U-net (S. W. Zamir, A. Arora, S. Khan, M. Hayat,
  F. S. Khan, M.-H. Yang, "Restormer: Efficient Transformer for High-Resolution Image
  Restoration", CVPR 2022): 3x3 conv embedding; per level ``l`` (channels ``width * 2**l``)
  ``blocks[l]`` transformer blocks; down = 3x3 conv to C/2 + PixelUnshuffle(2); up = 3x3 conv
  to 2C + PixelShuffle(2); skips concatenated and reduced by a 1x1 conv (at every level,
  including full resolution, where Restormer instead keeps 2C channels); decoder level ``l``
  mirrors ``blocks[l]``; ``refinement`` blocks at full resolution; 3x3 conv to RGB plus a
  global residual (output = input + body(input)). Inputs whose H, W are not multiples of
  ``2**(levels-1)`` are reflect-padded at the bottom/right (replicate when the image is
  smaller than the pad) and the output is cropped back.
- **Transformer block** (Restormer's MDTA + GDFN, channel LayerNorm): :mod:`vat.models.blocks`.

Parameter counts vs the paper (Sec. 5.3, Fig. 8 right)
------------------------------------------------------
The paper gives model sizes 0.21M / 0.74M / 1.57M / 2.75M / 6.10M for base dims
4 / 8 / 16 / 32 / 48. We read them as the deployed translator F_VaT^A = G_A + T_A
(Algorithm 1 outputs F_VaT^A alone; the paper calls it "translator model size"), i.e.
``params_inference`` in :func:`parameter_table`; T_B adds another T for training.
No fixed architecture reproduces all five: with depth fixed, parameters grow as width**2,
so 4 -> 48 must give x144, but the paper's list grows x29, and its step ratios (3.5, 2.1,
1.75, 2.2) are the squares of widths in ratio 1 : 2 : 3 : 4 : 6, not 1 : 2 : 4 : 8 : 12.
Indeed the authors' released network counts 0.19M / 0.73M / 1.63M / 2.88M / 6.44M (G_A + T_A)
at base widths 16 / 32 / 48 / 64 / 96, close to the paper's list, so the list may pair the
sizes with other widths than stated. We keep one depth for all widths (the paper varied only
the base dimension) and choose it so the two largest, mutually consistent, entries match:
three levels (C, 2C, 4C), ``blocks=(1, 6, 8)``, ``heads=(1, 2, 4)``, one refinement block, one
block in G, GDFN expansion 2.66. (A fourth level does not fit: one block per level already
gives 3.06M at width 32.) :func:`parameter_table` computes:

    name         width  G + T_A (ours)  paper   G + T_A + T_B
    vat-w4           4  0.060M          0.21M   0.119M
    vat-w8           8  0.201M          0.74M   0.401M
    vat-w16         16  0.729M          1.57M   1.454M
    vat-w32         32  2.763M          2.75M   5.509M
    vat-w48         48  6.100M          6.10M   12.166M
    vat-release     16  0.190M          -       0.375M
    vat-release-w8   8  0.051M          -       0.100M
    vat-release-w48 48  1.633M          -       3.232M

The three small widths are therefore 2.2-3.7x smaller than the paper says. ``vat-release`` keeps the
depth profile of the released code at width 16 (three levels, blocks only at 1/2 and 1/4
resolution, two heads, one block in G); it differs from that code in a 1-channel gate, a
global residual, a skip at full resolution and bias-free embedding/output convs.
``vat-release-w48`` is that depth at width 48. Per image at 512 px, one T pass costs 13.0 /
53.8 / 110 / 440 GFLOP (forward) for vat-release / vat-w16 / vat-release-w48 / vat-w48: our
depth does about 4x the release's work at the same width.

Determinism and memory
----------------------
Weights are drawn from ``torch.Generator``s seeded by ``seed`` (one per part: G, T_A, T_B),
never from the global RNG, with PyTorch's default conv scheme. ``checkpoint=True``
wraps every transformer block (G's too) in ``torch.utils.checkpoint`` (non-reentrant); there
is no dropout or other randomness, so outputs and gradients are unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from vat.errors import ParamsError
from vat.models.blocks import TransformerBlock, _pad_to_multiple, _stage, default_init

__all__ = [
    "PAPER_PARAMS",
    "TRANSLATORS",
    "GatedFusion",
    "Transformation",
    "TranslatorConfig",
    "VaT",
    "create_translator",
    "inference_state",
    "load_translator",
    "save_translator",
    "parameter_count",
    "parameter_table",
]


@dataclass(frozen=True)
class TranslatorConfig:
    """Architecture of :class:`VaT`; saved with every checkpoint (:meth:`to_dict`)."""

    width: int = 16  # base width: channels at full resolution; even, >= 2
    blocks: tuple[int, ...] = (1, 1, 2, 2)  # transformer blocks per level, full resolution first
    heads: tuple[int, ...] = (1, 2, 4, 8)  # attention heads per level; width * 2**l divisible by heads[l]
    refinement: int = 1  # transformer blocks after the decoder, at full resolution
    ffn_expansion: float = 2.66  # GDFN hidden channels = int(C * ffn_expansion) (Restormer: 2.66)
    gate_blocks: int = 1  # transformer blocks inside G (width channels, heads[0] heads)
    use_gate: bool = True  # False: Table 4 "no gated fusion" ablation, I_F = I_R and G is not built
    checkpoint: bool = False  # activation checkpointing of every transformer block; same results, less memory
    identity_init: bool = False  # start as the restorer: T_A, T_B the identity, gate w = gate_init everywhere
    gate_init: float = 0.018  # identity_init: G's starting w, sigmoid(-4) (mostly I_R); in (0, 1)

    def __post_init__(self) -> None:
        # YAML gives lists; the dataclass is frozen and hashable only with tuples
        object.__setattr__(self, "blocks", tuple(int(b) for b in self.blocks))
        object.__setattr__(self, "heads", tuple(int(h) for h in self.heads))
        if self.width < 2 or self.width % 2:
            raise ParamsError(f"translator width must be even and >= 2, got {self.width}")
        if not self.blocks or len(self.heads) != len(self.blocks):
            raise ParamsError(
                f"translator blocks {self.blocks} and heads {self.heads} need the same, non-zero length"
            )
        if min(self.blocks) < 0 or self.refinement < 0 or self.gate_blocks < 0:
            raise ParamsError("translator block counts must be >= 0")
        for level, h in enumerate(self.heads):
            channels = self.width * 2**level
            if h < 1 or channels % h:
                raise ParamsError(
                    f"translator level {level}: {channels} channels do not split into {h} heads"
                )
        if not 0 < self.gate_init < 1:
            raise ParamsError(f"translator gate_init must be in (0, 1), got {self.gate_init}")
        if self.ffn_expansion <= 0 or int(self.width * self.ffn_expansion) < 1:
            raise ParamsError(f"translator ffn_expansion {self.ffn_expansion} leaves no hidden channels")

    @property
    def levels(self) -> int:
        return len(self.blocks)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (lists, not tuples), for YAML and ``torch.load(weights_only=True)``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TranslatorConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ParamsError(f"unknown translator config keys: {', '.join(unknown)}")
        return cls(**data)


# One depth for every width: the paper's size study changes only the base dimension. This
# depth puts G + T_A at 2.76M / 6.10M for widths 32 / 48 (paper: 2.75M / 6.10M).
_DEPTH = {"blocks": (1, 6, 8), "heads": (1, 2, 4), "refinement": 1}

TRANSLATORS: dict[str, TranslatorConfig] = {
    "vat-w4": TranslatorConfig(width=4, **_DEPTH),
    "vat-w8": TranslatorConfig(width=8, **_DEPTH),
    "vat-w16": TranslatorConfig(width=16, **_DEPTH),
    "vat-w32": TranslatorConfig(width=32, **_DEPTH),
    "vat-w48": TranslatorConfig(width=48, **_DEPTH),
    # depth profile of the authors' released network (base_dim 16, 3 levels, 2 heads, blocks
    # only at 1/2 and 1/4 resolution, one block in G); kept for comparison with their code
    "vat-release": TranslatorConfig(width=16, blocks=(0, 1, 1), heads=(2, 2, 2), refinement=0),
    # that depth at width 8: the CPU default's width-study row
    "vat-release-w8": TranslatorConfig(width=8, blocks=(0, 1, 1), heads=(2, 2, 2), refinement=0),
    # the same depth at width 48: what the speed and memory targets' reference numbers for
    # "width 48" were taken on (reports/bench/README.md), a quarter of vat-w48's translator FLOPs
    "vat-release-w48": TranslatorConfig(width=48, blocks=(0, 1, 1), heads=(2, 2, 2), refinement=0),
}

# Sec. 5.3: base dimension -> "model size" (read as G_A + T_A, see the module docstring)
PAPER_PARAMS: dict[int, float] = {4: 0.21e6, 8: 0.74e6, 16: 1.57e6, 32: 2.75e6, 48: 6.10e6}


class GatedFusion(nn.Module):
    """G: (I_LQ, I_R) -> (I_F, w), I_F = w * I_LQ + (1 - w) * I_R, w in [0, 1] of shape (B, 1, H, W)."""

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__()
        c = config.width
        self.embed = nn.Conv2d(6, c, 3, padding=1)
        self.blocks = _stage(c, config.heads[0], config.gate_blocks, config.ffn_expansion)
        self.to_weight = nn.Conv2d(c, 1, 1)

    def weight(self, i_lq: Tensor, i_r: Tensor) -> Tensor:
        x = torch.cat([i_r, i_lq], dim=1)  # (B, 6, H, W), the order of the paper and its code
        logit = self.to_weight(self.blocks(self.embed(x)))  # (B, 1, H, W)
        # float32 sigmoid: saturates to exactly 0 / 1, so the blend below is exact at the ends
        return torch.sigmoid(logit.float())

    def forward(self, i_lq: Tensor, i_r: Tensor) -> tuple[Tensor, Tensor]:
        w = self.weight(i_lq, i_r)  # (B, 1, H, W), float32
        fused = w * i_lq + (1 - w) * i_r  # (B, 3, H, W)
        return fused, w


class Transformation(nn.Module):
    """T: (B, 3, H, W) -> (B, 3, H, W), a Restormer-style U-net with a global residual; any H, W."""

    def __init__(self, config: TranslatorConfig) -> None:
        super().__init__()
        c, levels, e = config.width, config.levels, config.ffn_expansion
        self.multiple = 2 ** (levels - 1)
        ch = [c * 2**level for level in range(levels)]
        self.embed = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.encoders = nn.ModuleList(
            _stage(ch[lv], config.heads[lv], config.blocks[lv], e) for lv in range(levels)
        )
        # down: C -> C/2 then PixelUnshuffle(2) -> 2C at half size; up: 2C -> 4C then PixelShuffle(2) -> C
        self.downs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[lv], ch[lv] // 2, 3, padding=1, bias=False), nn.PixelUnshuffle(2))
            for lv in range(levels - 1)
        )
        self.ups = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ch[lv + 1], 2 * ch[lv + 1], 3, padding=1, bias=False), nn.PixelShuffle(2))
            for lv in range(levels - 1)
        )
        self.reduces = nn.ModuleList(nn.Conv2d(2 * ch[lv], ch[lv], 1, bias=False) for lv in range(levels - 1))
        self.decoders = nn.ModuleList(
            _stage(ch[lv], config.heads[lv], config.blocks[lv], e) for lv in range(levels - 1)
        )
        self.refinement = _stage(c, config.heads[0], config.refinement, e)
        self.output = nn.Conv2d(c, 3, 3, padding=1, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        y = self.embed(_pad_to_multiple(x, self.multiple))  # (B, C, H', W'), H', W' multiples of 2**(L-1)
        skips = []
        for level, encoder in enumerate(self.encoders):
            y = encoder(y)  # (B, C * 2**level, H' / 2**level, W' / 2**level)
            if level < len(self.downs):
                skips.append(y)
                y = self.downs[level](y)
        for level in reversed(range(len(self.ups))):
            y = self.ups[level](y)  # (B, C * 2**level, ...)
            y = self.reduces[level](torch.cat([y, skips[level]], dim=1))
            y = self.decoders[level](y)
        y = self.output(self.refinement(y))  # (B, 3, H', W')
        return x + y[..., :h, :w]  # (B, 3, H, W)


def inference_state(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """``state_dict`` without T_B (``t_b.*``): what a VaT built with ``with_t_b=False`` loads."""
    return {k: v for k, v in state_dict.items() if not k.startswith("t_b.")}


class VaT(nn.Module):
    """The translator: gate G, T_A (inference) and T_B (training only, for the cycle loss).

    ``VaT(config, seed=0)`` is deterministic for a given seed. ``with_t_b=False`` builds the
    inference model (G and T_A get the same weights as with T_B: each part has its own generator), which
    loads :meth:`inference_state_dict` strictly. ``device="meta"`` builds shapes only (counting).
    """

    gate: GatedFusion | None
    t_a: Transformation
    t_b: Transformation | None

    def __init__(
        self,
        config: TranslatorConfig | None = None,
        *,
        seed: int = 0,
        with_t_b: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.config = config = config if config is not None else TranslatorConfig()
        # built on meta: PyTorch's own init would draw from (and advance) the global RNG
        with torch.device("meta"):
            self.gate = GatedFusion(config) if config.use_gate else None
            self.t_a = Transformation(config)
            self.t_b = Transformation(config) if with_t_b else None
        if torch.device(device or "cpu").type != "meta":
            self.to_empty(device="cpu")
            self.reset_parameters(seed)
            if device is not None:
                self.to(device)
        self.set_checkpoint(config.checkpoint)

    @torch.no_grad()
    def reset_parameters(self, seed: int = 0) -> None:
        """PyTorch's default conv init, U(+-1/sqrt(fan_in)). G, T_A and T_B each draw from their
        own generator (seeded by ``seed`` and the part's name), so a translator without G
        (``use_gate: false``) or without T_B starts T_A from the same weights as the full one."""
        from vat.seeding import item_seed

        for name in ("gate", "t_a", "t_b"):
            part = getattr(self, name)
            if part is not None:
                default_init(
                    part, torch.Generator(device="cpu").manual_seed(item_seed(seed, "translator", name))
                )
        if self.config.identity_init:  # VaT starts as the restorer: T(x) = x, w = gate_init
            for t in (self.t_a, self.t_b):
                if t is not None:
                    t.output.weight.zero_()  # the global residual then makes T the identity
            if self.gate is not None:
                p = self.config.gate_init
                self.gate.to_weight.weight.zero_()
                self.gate.to_weight.bias.fill_(math.log(p / (1 - p)))  # sigmoid(bias) = gate_init

    def set_checkpoint(self, enabled: bool) -> None:
        """Turn activation checkpointing of every transformer block on or off (results unchanged)."""
        for module in self.modules():
            if isinstance(module, TransformerBlock):
                module.checkpoint = bool(enabled)
        self.config = replace(self.config, checkpoint=bool(enabled))

    def compile_blocks(self, **kwargs: Any) -> None:
        """``torch.compile`` the body of every transformer block (G's too): the LayerNorms,
        attention, GELU and the elementwise work around them fuse into few kernels, while the
        convolutions between blocks stay eager (cuDNN). Blocks of the same width share compiled
        code, so compiling is quick; activation checkpointing still wraps the compiled body.
        Results are unchanged up to float rounding; ``state_dict`` keys are unchanged."""
        from vat.models.compiling import compile_static

        for module in self.modules():
            if isinstance(module, TransformerBlock):
                module._body = compile_static(module._body, **kwargs)

    def fuse(self, i_lq: Tensor, i_r: Tensor) -> tuple[Tensor, Tensor]:
        """(I_F, w): G(I_R, I_LQ) and its weight map (B, 1, H, W); without G, I_F = I_R and w = 0."""
        if self.gate is None:
            w = torch.zeros_like(i_r[:, :1], dtype=torch.float32)  # (B, 1, H, W)
            return i_r, w
        return self.gate(i_lq, i_r)

    def forward(self, i_lq: Tensor, i_r: Tensor) -> Tensor:
        """T_A(G(I_R, I_LQ)): the translated image (B, 3, H, W) that D sees at inference."""
        return self.t_a(self.fuse(i_lq, i_r)[0])

    def translate(self, i_lq: Tensor, i_r: Tensor) -> dict[str, Tensor]:
        """``{"fused": I_F, "gate": w, "out": T_A(I_F)}``."""
        fused, w = self.fuse(i_lq, i_r)
        return {"fused": fused, "gate": w, "out": self.t_a(fused)}

    def inference_state_dict(self) -> dict[str, Tensor]:
        """The state_dict without T_B, for exported checkpoints."""
        return inference_state(self.state_dict())


_CONSTRUCTOR_KEYS = ("seed", "with_t_b", "device")


def create_translator(name: str, **overrides: Any) -> VaT:
    """``TRANSLATORS[name]`` with config fields overridden, plus ``seed`` / ``with_t_b`` / ``device``."""
    if name not in TRANSLATORS:
        raise ParamsError(f"unknown translator {name!r}; known: {', '.join(TRANSLATORS)}")
    kwargs = {k: overrides.pop(k) for k in _CONSTRUCTOR_KEYS if k in overrides}
    known = {f.name for f in fields(TranslatorConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ParamsError(f"unknown translator option(s): {', '.join(unknown)}")
    return VaT(replace(TRANSLATORS[name], **overrides), **kwargs)


def parameter_count(module: nn.Module | None) -> int:
    """Number of parameter elements (shared ones once); 0 for ``None``."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def parameter_table() -> list[dict[str, Any]]:
    """One row per registered translator: sizes of the whole model and of its inference part.

    ``params_total`` = G + T_A + T_B, ``params_inference`` = G + T_A (what the paper's Fig. 8
    sizes are compared with, ``paper_params``; ``None`` where the paper has no entry).
    """
    rows = []
    for name, config in TRANSLATORS.items():
        model = VaT(config, device="meta")
        gate, t = parameter_count(model.gate), parameter_count(model.t_a)
        paper = PAPER_PARAMS.get(config.width) if name.startswith("vat-w") else None
        rows.append(
            {
                "name": name,
                "width": config.width,
                "params_total": parameter_count(model),
                "params_inference": gate + t,
                "params_gate": gate,
                "params_transformation": t,
                "paper_params": paper,
            }
        )
    return rows


TRANSLATOR_FORMAT = "vat-translator/1"


def save_translator(
    model: VaT, path: str | Path, meta: Mapping[str, Any] | None = None, with_t_b: bool = False
) -> Path:
    """Write ``{"format", "config", "state_dict", "meta"}`` atomically (T_B only with ``with_t_b``).

    ``meta``: plain types only (str, numbers, bools, lists, dicts), e.g. the epoch, the val
    score and the restorer the translator was trained behind; :func:`load_translator` reads it.
    """
    from vat.io import save_torch

    state = model.state_dict() if with_t_b else model.inference_state_dict()
    state = {k: v.detach().cpu().clone() for k, v in state.items()}
    config = replace(model.config, checkpoint=False).to_dict()
    path = Path(path)
    save_torch(
        {"format": TRANSLATOR_FORMAT, "config": config, "state_dict": state, "meta": dict(meta or {})}, path
    )
    return path


def load_translator(
    path: str | Path, device: torch.device | str = "cpu", with_t_b: bool = False
) -> tuple[VaT, dict[str, Any]]:
    """(model in eval mode, meta) from a :func:`save_translator` file, loaded with weights_only=True."""
    from vat.errors import DataError
    from vat.models.checkpoints import read_checkpoint

    path = Path(path)
    ckpt = read_checkpoint(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != TRANSLATOR_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise DataError(
            f"{path}: not a vat translator checkpoint (format {got!r}, expected {TRANSLATOR_FORMAT!r})"
        )
    try:
        config = TranslatorConfig.from_dict(ckpt["config"])
    except (ParamsError, TypeError, KeyError) as e:
        raise DataError(f"{path}: bad translator config: {e}") from e
    state = ckpt["state_dict"]
    has_t_b = any(k.startswith("t_b.") for k in state)
    if with_t_b and not has_t_b:
        raise DataError(f"{path}: holds no T_B (saved for inference only); it cannot resume training")
    model = VaT(config, with_t_b=with_t_b)
    if not with_t_b:
        state = inference_state(state)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise DataError(f"{path}: weights do not match its config: {str(e).splitlines()[0]}") from e
    return model.to(device).eval(), dict(ckpt.get("meta") or {})
