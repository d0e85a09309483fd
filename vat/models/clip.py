"""CLIP zero-shot as the frozen classifier D of the classification task.

VaT (Wu & Jin, ECCV 2024) trains a translator against a *frozen* high-level model D; for
classification, D is CLIP used zero-shot (Radford et al., ICML 2021, "Learning Transferable
Visual Models From Natural Language Supervision"; weights and code through open_clip,
Cherti et al., CVPR 2023). :class:`CLIPClassifier` keeps the contract of every
:class:`~vat.models.classifier.FrozenClassifier` (float [0, 1] NCHW images at any size,
frozen for good, L_h as ``loss``).

This is the only module of the library that imports open_clip.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vat.data.images import as_float_images
from vat.errors import DataError, ParamsError
from vat.models.classifier import FrozenClassifier, resize_images

__all__ = ["CLIPClassifier"]


def _missing_clip_weights_message(path: Path, model_name: str, tag: str | None, params_key: str) -> str:
    import open_clip

    where = ""
    if tag:
        cfg = open_clip.get_pretrained_cfg(model_name, tag) or {}
        hub = (cfg.get("hf_hub") or "").strip("/")
        if hub:
            where = f" (e.g. open_clip_pytorch_model.bin or open_clip_model.safetensors from https://huggingface.co/{hub})"
        what = f"the open_clip weights for {model_name} ({tag}){where}"
    else:
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        known = f"; known tags: {', '.join(tags[:8])}{', ...' if len(tags) > 8 else ''}" if tags else ""
        what = f"the open_clip weights for {model_name} (a pretrained tag of the open_clip model zoo{known})"
    return (
        f"{path}: CLIP weights file not found. Download {what} from the open_clip model zoo / "
        f"Hugging Face hub and put the file at {path}, "
        f"or set {params_key} in params.yaml to the file you have."
    )


@contextmanager
def _quiet_random_init_warning(active: bool) -> Iterator[None]:
    """Drop open_clip's "initialized randomly" warning when we load the weights right after."""

    def keep(record: logging.LogRecord) -> bool:
        return "initialized randomly" not in record.getMessage()

    root = logging.getLogger()
    if active:
        root.addFilter(keep)
    try:
        yield
    finally:
        if active:
            root.removeFilter(keep)


def _load_clip_weights(model: nn.Module, path: Path) -> None:
    import open_clip

    try:
        # open_clip's loader handles {"state_dict": ...} checkpoints, "module." prefixes,
        # .safetensors, old text-tower key names and position-embedding resizing.
        open_clip.load_checkpoint(model, str(path), strict=True, weights_only=True, device="cpu")
    except FileNotFoundError as e:  # a race with the existence check
        raise DataError(f"{path}: CLIP weights file not found") from e
    except RuntimeError as e:
        msg = str(e)
        if "state_dict" in msg and (
            "Missing key" in msg or "Unexpected key" in msg or "size mismatch" in msg
        ):
            raise DataError(
                f"{path}: weights do not fit this CLIP architecture ({msg.splitlines()[0]} ...): "
                "check the model name (e.g. '-quickgelu' variants for OpenAI weights)"
            ) from e
        raise DataError(f"{path}: corrupt or unreadable CLIP weights file ({type(e).__name__}: {e})") from e
    except Exception as e:  # unpickling, truncated zip, safetensors header, empty dict, ...
        raise DataError(f"{path}: corrupt or unreadable CLIP weights file ({type(e).__name__}: {e})") from e


def _checked_prompts(prompts: Sequence[str] | str, resize_mode: str) -> list[str]:
    """The prompt templates as a list; ParamsError for a template without ``{}`` or an
    unknown ``resize_mode``."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts or any("{}" not in p for p in prompts):
        raise ParamsError(f"CLIP prompts must be templates containing '{{}}', got {prompts!r}")
    if resize_mode not in ("squash", "shortest"):
        raise ParamsError(f"resize_mode must be 'squash' or 'shortest', got {resize_mode!r}")
    return prompts


def _build_clip_model(model_name: str, tag_cfg: dict[str, Any], quiet: bool) -> nn.Module:
    """open_clip's ``model_name`` with random weights (nothing downloaded), QuickGELU as the
    pretrained tag's config says; ``quiet`` drops the random-init warning (weights follow)."""
    import open_clip

    model_cfg = open_clip.get_model_config(model_name)
    if model_cfg is None:
        raise ParamsError(
            f"unknown open_clip model {model_name!r}; see open_clip.list_models() for the names"
        )
    text_cfg = model_cfg.get("text_cfg", {})
    if "hf_model_name" in text_cfg or "hf_tokenizer_name" in text_cfg:
        raise ParamsError(
            f"open_clip model {model_name!r} needs a Hugging Face text model or tokenizer "
            "(transformers and a hub download); choose a plain CLIP config such as ViT-B-32"
        )
    try:
        with _quiet_random_init_warning(quiet):
            return open_clip.create_model(
                model_name,
                pretrained=None,
                device="cpu",
                force_quick_gelu=bool(tag_cfg.get("quick_gelu", False)),
            )
    except Exception as e:
        raise ParamsError(f"cannot build open_clip model {model_name!r}: {e}") from e


def _normalisation(
    model: nn.Module, tag_cfg: dict[str, Any], device: str | torch.device
) -> tuple[Tensor, Tensor]:
    """(mean, std), each (1, 3, 1, 1) float32 on ``device``: the pretrained tag's, else the
    model's preprocess config, else OpenAI's."""
    import open_clip

    pp = dict(getattr(model.visual, "preprocess_cfg", None) or {})
    mean = tag_cfg.get("mean") or pp.get("mean") or open_clip.OPENAI_DATASET_MEAN
    std = tag_cfg.get("std") or pp.get("std") or open_clip.OPENAI_DATASET_STD
    return (
        torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1),
        torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1),
    )


def _default_tokenizer(model_name: str, model: nn.Module) -> Callable[[list[str]], Tensor]:
    """open_clip's tokenizer for ``model_name`` at the model's context length."""
    import open_clip

    if open_clip.get_model_config(model_name) is not None:
        return open_clip.get_tokenizer(model_name, context_length=getattr(model, "context_length", None))
    # a custom architecture: CLIP's BPE at the model's context length
    return open_clip.SimpleTokenizer(context_length=getattr(model, "context_length", 77))


class CLIPClassifier(FrozenClassifier):
    """CLIP zero-shot classifier: logits = logit_scale * <image embedding, class embedding>.

    Each class embedding is the L2-normalised mean of the L2-normalised text embeddings of
    its prompts (CLIP's prompt ensembling), computed once here and kept as a buffer.

    ``weights``: a local open_clip checkpoint (.pt / .bin / .pth / .safetensors, a state
    dict or ``{"state_dict": ...}``), read with ``weights_only=True``. ``None`` builds the
    architecture with random weights and sets ``pretrained = False`` (tests, dry runs).
    ``model`` / ``tokenizer`` replace the ones open_clip would build from ``model_name``.
    ``pretrained_tag`` (e.g. ``"laion2b_s34b_b79k"``) names the weights' origin: it makes
    the missing-file message point at the right download and applies that tag's
    preprocessing (mean / std) and QuickGELU setting.
    """

    def __init__(  # 12 parameters: the public constructor that callers and tests name by keyword
        self,
        model_name: str,
        classes: Sequence[str],
        weights: str | Path | None = None,
        prompts: Sequence[str] = ("a photo of a {}.",),
        model: nn.Module | None = None,
        tokenizer: Callable[[list[str]], Tensor] | None = None,
        device: str | torch.device = "cpu",
        *,
        pretrained_tag: str | None = None,
        resize_mode: Literal["squash", "shortest"] = "squash",
        params_key: str = "the CLIP weights path",
        text_batch_size: int = 256,
    ) -> None:
        super().__init__(classes)
        import open_clip

        prompts = _checked_prompts(prompts, resize_mode)
        weights = Path(weights) if weights is not None else None
        if weights is not None and not weights.is_file():  # fail before building a large model
            raise DataError(_missing_clip_weights_message(weights, model_name, pretrained_tag, params_key))
        tag_cfg = (open_clip.get_pretrained_cfg(model_name, pretrained_tag) or {}) if pretrained_tag else {}
        if model is None:
            model = _build_clip_model(model_name, tag_cfg, quiet=weights is not None)
        if weights is not None:
            _load_clip_weights(model, weights)
        self.pretrained = weights is not None
        self.model_name = model_name
        self.weights_path = weights
        self.prompts = prompts
        self.resize_mode = resize_mode
        self.model = model.to(device)
        self._freeze()

        size = model.visual.image_size
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else tuple(size)
        mean, std = _normalisation(model, tag_cfg, device)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        if tokenizer is None:
            tokenizer = _default_tokenizer(model_name, model)
        self.register_buffer(
            "text_features", self._encode_classes(tokenizer, text_batch_size), persistent=False
        )  # (K, E)

    @torch.no_grad()
    def _encode_classes(self, tokenizer: Callable[[list[str]], Tensor], batch_size: int) -> Tensor:
        texts = [p.format(c) for c in self.classes for p in self.prompts]  # class-major
        tokens = tokenizer(texts).to(self.mean.device)  # (K * P, L)
        chunks = [
            self.model.encode_text(tokens[i : i + batch_size], normalize=True).float()
            for i in range(0, len(texts), batch_size)
        ]
        emb = torch.cat(chunks).view(len(self.classes), len(self.prompts), -1)  # (K, P, E)
        return F.normalize(emb.mean(dim=1), dim=-1)  # (K, E)

    def preprocess(self, images: Tensor) -> Tensor:
        """Float [0, 1] (B, 3, H, W) at any size -> the model's normalised input, differentiably."""
        x = as_float_images(images).to(self.mean.device, torch.float32)
        x = resize_images(x, self.image_size, self.resize_mode)
        return (x - self.mean) / self.std

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        x = self.preprocess(images)
        dtype = next(self.model.visual.parameters()).dtype
        feats = self.model.encode_image(x.to(dtype), normalize=True).float()  # (B, E)
        logits = self.model.logit_scale.exp().float() * feats @ self.text_features.T  # (B, K)
        bias = getattr(self.model, "logit_bias", None)
        if bias is not None:
            logits = logits + bias.float()
        return logits, feats
