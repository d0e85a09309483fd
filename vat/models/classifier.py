"""Frozen classifiers D for the classification task: the common interface and a small CNN.

VaT (Wu & Jin, ECCV 2024) trains a translator against a *frozen* high-level model D; for
classification, D is CLIP used zero-shot (:mod:`vat.models.clip`) and, for the embedded
default, a small CNN trained here on the clean crops (:class:`SmallCNN`,
:class:`TorchClassifier`). Every wrapper (a :class:`FrozenClassifier`):

- owns its input contract: it takes RGB float images in [0, 1], NCHW, at any size, and
  resizes / normalises them itself, differentiably, so gradients reach the translator;
- is frozen for good: no parameter requires a gradient and the module stays in eval mode
  even when a parent calls ``.train()`` (BatchNorm statistics must not move, SPEC "Losses");
- gives L_h as :meth:`FrozenClassifier.loss`: cross-entropy of the logits against (soft)
  pseudo-labels with per-sample weights.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vat.data.images import as_float_images
from vat.errors import DataError, ParamsError
from vat.io import save_torch

__all__ = [
    "Classifications",
    "FrozenClassifier",
    "TorchClassifier",
    "SmallCNN",
    "train_small_cnn",
    "save_small_cnn",
    "load_small_cnn",
    "resize_images",
]


@dataclass
class Classifications:
    probs: Tensor  # (B, K) softmax probabilities
    labels: Tensor  # (B,) argmax class ids, int64
    features: Tensor  # (B, F) image embedding (L2-normalised for CLIP), input to NUQ


def resize_images(images: Tensor, size: tuple[int, int], mode: Literal["squash", "shortest"]) -> Tensor:
    """Differentiable bilinear resize (antialiased when shrinking) to ``size`` = (H, W).

    "squash" scales each axis to the target (every input pixel keeps a gradient);
    "shortest" is open_clip's eval transform: shortest side to the target, centre crop.
    """
    h, w = images.shape[-2:]
    if (h, w) == tuple(size):
        return images
    if mode == "shortest":
        scale = max(size[0] / h, size[1] / w)
        mid = (max(size[0], round(h * scale)), max(size[1], round(w * scale)))
        images = F.interpolate(images, size=mid, mode="bilinear", align_corners=False, antialias=True)
        top, left = (mid[0] - size[0]) // 2, (mid[1] - size[1]) // 2
        return images[..., top : top + size[0], left : left + size[1]]
    return F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False, antialias=True)


class FrozenClassifier(nn.Module):
    """Common interface of the frozen classifiers; subclasses implement :meth:`_forward`."""

    classes: list[str]

    def __init__(self, classes: Sequence[str]) -> None:
        super().__init__()
        if not classes:
            raise ParamsError("a classifier needs at least one class name")
        self.classes = list(classes)
        self.checkpoint = False  # logits(): run the forward again in backward (less memory)

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """(logits (B, K), features (B, F)) for float [0, 1] images (B, 3, H, W)."""
        raise NotImplementedError

    def _freeze(self) -> None:
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> FrozenClassifier:
        # Frozen forever: a parent's .train() must not switch BatchNorm / dropout on.
        return super().train(False)

    def logits(self, images: Tensor) -> Tensor:
        """(B, K) logits, differentiable w.r.t. ``images``.

        With :attr:`checkpoint`, autograd keeps ``images`` only and runs the forward again in
        backward (frozen, no dropout: the same logits and input gradients)."""
        if self.checkpoint and torch.is_grad_enabled() and images.requires_grad:
            from torch.utils.checkpoint import checkpoint

            return checkpoint(lambda x: self._forward(x)[0], images, use_reentrant=False)
        return self._forward(images)[0]

    def forward(self, images: Tensor) -> Tensor:
        return self.logits(images)

    @torch.no_grad()
    def predict(self, images: Tensor) -> Classifications:
        logits, features = self._forward(images)
        probs = logits.float().softmax(dim=-1)
        return Classifications(probs=probs, labels=probs.argmax(dim=-1), features=features.float())

    def loss(
        self,
        images: Tensor,
        soft_labels: Tensor,
        weights: Tensor | None = None,
        reduction: Literal["count", "weight"] = "count",
    ) -> Tensor:
        """L_h: cross-entropy of the logits against soft pseudo-labels (B, K).

        ``weights`` (B,) scale each sample's term; a weight of 0 removes the sample.
        ``reduction="count"`` (default) divides by the number of samples with a non-zero
        weight, so weights act absolutely (as a per-box weight scales a detector's targets:
        uncertain pseudo-labels pull less against the cycle loss); ``"weight"`` divides by
        the sum of weights (a weighted mean, invariant to scaling all weights). All-zero
        weights give 0, still attached to the graph.
        """
        return self.losses([(images, soft_labels, weights)], reduction)[0]

    def losses(self, calls: Sequence[tuple], reduction: Literal["count", "weight"] = "count") -> list[Tensor]:
        """:meth:`loss` of each ``(images, soft_labels[, weights])`` call, with ONE forward.

        The calls' images (of one size) are concatenated and classified together, the logits
        split back per call, each call reduced on its own: every result equals its separate
        :meth:`loss` call up to float rounding (a frozen model in eval mode classifies each
        image on its own)."""
        from vat.models.batching import forward_together

        calls = [(*c, None) if len(c) == 2 else c for c in calls]
        logits = forward_together(self.logits, [c[0] for c in calls])  # one forward per image size
        return [_soft_ce(lg, y, w, reduction) for lg, (_, y, w) in zip(logits, calls, strict=True)]


def _soft_ce(logits: Tensor, soft_labels: Tensor, weights: Tensor | None, reduction: str) -> Tensor:
    """FrozenClassifier.loss's reduction of (B, K) logits (see there)."""
    if soft_labels.shape != logits.shape:
        raise ValueError(f"soft_labels {tuple(soft_labels.shape)} do not match logits {tuple(logits.shape)}")
    per_sample = -(soft_labels.to(logits) * logits.float().log_softmax(dim=-1)).sum(dim=-1)  # (B,)
    if weights is None:
        return per_sample.mean()
    weights = weights.to(per_sample)
    if weights.shape != per_sample.shape:
        raise ValueError(f"weights {tuple(weights.shape)} must be (B,) = {tuple(per_sample.shape)}")
    if reduction == "count":
        denom = (weights != 0).sum().to(per_sample).clamp_min(1.0)
    elif reduction == "weight":
        denom = weights.sum().clamp_min(torch.finfo(per_sample.dtype).tiny)
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    return (weights * per_sample).sum() / denom


# --------------------------------------------------------------------------- small CNN


class SmallCNN(nn.Module):
    """Four conv-BN-ReLU blocks (widths w, 2w, 4w, 4w; the last three stride 2), global
    average pool, linear head. For 32-64 px crops; about 0.24 M parameters at w = 32.

    Weights are initialised from ``seed`` inside a forked RNG, so building one never reads
    or moves the global random state.
    """

    def __init__(self, num_classes: int, width: int = 32, seed: int = 0) -> None:
        super().__init__()
        self.config = {"num_classes": int(num_classes), "width": int(width), "seed": int(seed)}
        chans = [3, width, 2 * width, 4 * width, 4 * width]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            blocks = []
            for i in range(4):
                blocks += [
                    nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1, bias=False),
                    nn.BatchNorm2d(chans[i + 1]),
                    nn.ReLU(inplace=True),
                ]
            self.body = nn.Sequential(*blocks)
            self.head = nn.Linear(chans[-1], num_classes)
        self.num_features = chans[-1]

    def features(self, x: Tensor) -> Tensor:
        """Float [0, 1] (B, 3, H, W) -> pooled features (B, 4w)."""
        x = (x - 0.5) / 0.25  # fixed centring, part of the architecture
        return self.body(x).mean(dim=(2, 3))

    def forward_with_features(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f = self.features(x)
        return self.head(f), f

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


ARCHS: dict[str, type[nn.Module]] = {"small_cnn": SmallCNN}


def _to_nchw_tensor(images: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(images)
    if x.ndim == 4 and x.shape[1] != 3 and x.shape[-1] == 3:  # NHWC, as decoded image files come
        x = x.permute(0, 3, 1, 2)
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"expected RGB images (N, 3, H, W) or (N, H, W, 3), got {tuple(x.shape)}")
    return x.contiguous()


def _augment(x: Tensor, g: torch.Generator) -> Tensor:
    """Random horizontal flip and a random shift of up to 1/8 of the side (reflect padding)."""
    b, _, h, w = x.shape
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip.view(b, 1, 1, 1).to(x.device), x.flip(-1), x)
    pad = max(1, min(h, w) // 8)
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    dy = torch.randint(0, 2 * pad + 1, (b,), generator=g).tolist()
    dx = torch.randint(0, 2 * pad + 1, (b,), generator=g).tolist()
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def train_small_cnn(  # 11 parameters: the public API that fit_classifier and the tests call by keyword
    model: SmallCNN,
    images: Tensor | np.ndarray,
    labels: Tensor | np.ndarray | Sequence[int],
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    augment: bool = True,
    weight_decay: float = 1e-4,
    device: str | torch.device | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> list[dict[str, float]]:
    """Train ``model`` in place with AdamW and a cosine learning-rate decay; plain loop.

    ``images``: uint8 or float [0, 1], (N, 3, H, W) or (N, H, W, 3). All randomness
    (shuffling, augmentation) comes from a generator seeded with ``seed``: same inputs,
    same seed, same weights. Returns one ``{"epoch", "loss", "accuracy", "lr"}`` per epoch
    (accuracy on the augmented batches seen); ``on_epoch`` gets each as it is made.
    """
    x_all = _to_nchw_tensor(images)
    y_all = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    if len(x_all) != len(y_all) or len(x_all) == 0:
        raise ValueError(f"{len(x_all)} images but {len(y_all)} labels")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(x_all) / batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs * steps_per_epoch))
    g = torch.Generator().manual_seed(seed)
    history: list[dict[str, float]] = []
    for epoch in range(epochs):
        order = torch.randperm(len(x_all), generator=g)
        total_loss, correct = 0.0, 0
        current_lr = opt.param_groups[0]["lr"]
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            x = as_float_images(x_all[idx]).float()
            if augment:
                x = _augment(x, g)
            x, y = x.to(device), y_all[idx].to(device)
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(-1) == y).sum())
        record = {
            "epoch": float(epoch + 1),
            "loss": total_loss / len(x_all),
            "accuracy": correct / len(x_all),
            "lr": current_lr,
        }
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    model.eval()
    return history


def save_small_cnn(
    path: str | Path, model: SmallCNN, classes: Sequence[str], image_size: int | None = None
) -> None:
    """Write ``{"arch", "config", "classes", "state_dict"}`` atomically (loadable with weights_only)."""
    if len(classes) != model.config["num_classes"]:
        raise ValueError(f"{len(classes)} class names for a {model.config['num_classes']}-class model")
    config = dict(model.config, image_size=None if image_size is None else int(image_size))
    payload = {
        "arch": "small_cnn",
        "config": config,
        "classes": list(classes),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    save_torch(payload, path)


def load_small_cnn(path: str | Path) -> tuple[SmallCNN, list[str], dict[str, Any]]:
    """(model in eval mode, classes, config) from a file written by :func:`save_small_cnn`."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"{path}: classifier checkpoint not found; train it first (`dvc repro` runs the stage that "
            "trains the embedded default's classifier) or point params.yaml at your own checkpoint"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise DataError(
            f"{path}: corrupt or unreadable classifier checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(payload, dict) or not {"arch", "config", "classes", "state_dict"} <= payload.keys():
        raise DataError(f"{path}: not a vat classifier checkpoint (needs arch, config, classes, state_dict)")
    if payload["arch"] not in ARCHS:
        raise DataError(f"{path}: unknown classifier arch {payload['arch']!r}; known: {sorted(ARCHS)}")
    config = dict(payload["config"])
    try:
        model = SmallCNN(config["num_classes"], width=config["width"], seed=config.get("seed", 0))
        model.load_state_dict(payload["state_dict"], strict=True)
    except (KeyError, TypeError, RuntimeError) as e:
        raise DataError(f"{path}: classifier checkpoint does not match its config ({e})") from e
    return model.eval(), list(payload["classes"]), config


class TorchClassifier(FrozenClassifier):
    """A plain torch classifier (:class:`SmallCNN`), frozen; resizes inputs to ``image_size``
    (the training crop side) when given. Freezes ``model`` in place."""

    def __init__(self, model: SmallCNN, classes: Sequence[str], image_size: int | None = None) -> None:
        super().__init__(classes)
        if len(self.classes) != model.config["num_classes"]:
            raise ParamsError(
                f"{len(self.classes)} class names for a {model.config['num_classes']}-class model"
            )
        self.model = model
        self.image_size = image_size
        self._freeze()

    def _forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        device = next(self.model.parameters()).device
        x = as_float_images(images).to(device, torch.float32)
        if self.image_size is not None:
            x = resize_images(x, (self.image_size, self.image_size), "squash")
        return self.model.forward_with_features(x)

    def save(self, path: str | Path) -> None:
        save_small_cnn(path, self.model, self.classes, self.image_size)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> TorchClassifier:
        model, classes, config = load_small_cnn(path)
        return cls(model.to(device), classes, image_size=config.get("image_size"))
