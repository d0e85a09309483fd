"""Image sets for training loops: manifests joined by image id, loaded lazily as tensors.

Images come back as float ``(3, H, W)`` in [0, 1]. Random crops draw from an explicit
``torch.Generator`` so a run is reproducible from ``common.seed``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vat.data.manifest import Manifest, Record
from vat.errors import DataError
from vat.io import load_rgb, to_float


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W, 3) -> float (3, H, W) in [0, 1]."""
    return torch.from_numpy(to_float(image)).permute(2, 0, 1).contiguous()


def to_image(x: torch.Tensor) -> np.ndarray:
    """float (3, H, W) in [0, 1] -> uint8 (H, W, 3)."""
    return (x.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def pair_records(a: Manifest, b: Manifest, split: str) -> list[tuple[Record, Record]]:
    """Rows of ``a`` and ``b`` with the same image id in ``split`` (sizes must agree)."""
    by_id = {r.image_id: r for r in b.records}
    pairs = []
    for r in a.split(split):
        other = by_id.get(r.image_id)
        if other is None or other.path == r.path:  # photographs given degraded: no clean picture
            continue
        if (r.width, r.height) != (other.width, other.height):
            raise DataError(f"{other.path}: size {other.width}x{other.height} differs from {r.path}")
        pairs.append((r, other))
    return pairs


def random_crop(images: Sequence[torch.Tensor], size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """The same random ``size`` x ``size`` window of each (3, H, W) image (whole image if smaller)."""
    _, h, w = images[0].shape
    ch, cw = min(size, h), min(size, w)
    top = int(torch.randint(0, h - ch + 1, (1,), generator=generator))
    left = int(torch.randint(0, w - cw + 1, (1,), generator=generator))
    return [im[:, top : top + ch, left : left + cw] for im in images]


class PairedCrops(torch.utils.data.Dataset):
    """(degraded, clean) crops of image pairs; one epoch = one crop per pair.

    Decoded images are kept in memory (as uint8) while they fit in ``cache_bytes``, so
    small sets decode each file once instead of once per epoch.
    """

    def __init__(
        self,
        pairs: Sequence[tuple[Record, Record]],
        crop: int,
        generator: torch.Generator,
        cache_bytes: int = 2 << 30,
    ):
        self.pairs = list(pairs)
        self.crop = crop
        self.generator = generator
        need = sum(2 * 3 * r.width * r.height for r, _ in self.pairs)
        self.cache: dict[str, np.ndarray] | None = {} if need <= cache_bytes else None

    def __len__(self) -> int:
        return len(self.pairs)

    def _load(self, path: str) -> np.ndarray:
        if self.cache is None:
            return load_rgb(path)
        if path not in self.cache:
            self.cache[path] = load_rgb(path)
        return self.cache[path]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        low, clean = self.pairs[i]
        x, y = to_tensor(self._load(low.path)), to_tensor(self._load(clean.path))
        a, b = random_crop([x, y], self.crop, self.generator)
        return a, b


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when present, else CPU; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def same_size_batches(records: Sequence[Record], batch: int):
    """Consecutive runs of records with the same image size, at most ``batch`` long."""
    group: list[Record] = []
    for r in records:
        if group and (len(group) == batch or (r.width, r.height) != (group[0].width, group[0].height)):
            yield group
            group = []
        group.append(r)
    if group:
        yield group


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [0, 1]; a uint8 batch is scaled by 1/255."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected RGB images (B, 3, H, W), got shape {tuple(images.shape)}")
    if images.dtype == torch.uint8:
        return images.float() / 255.0
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [0, 1] or uint8, got {images.dtype}")
    return images


def resize_to_stride(
    images: torch.Tensor, imgsz: int, resize: bool, stride: int
) -> tuple[torch.Tensor, tuple[int, int], tuple[int, int]]:
    """A detector's input before its letterbox padding: ``images`` as float (:func:`as_float_images`),
    resized (bilinear, antialiased when shrinking) so the long side is ``imgsz`` when ``resize``;
    returns (x, (nh, nw), (ph, pw)), the padding that brings nh, nw to multiples of ``stride``."""
    import math

    import torch.nn.functional as F

    x = as_float_images(images)
    h, w = x.shape[-2:]
    if resize:
        r = imgsz / max(h, w)
        nh, nw = max(1, round(h * r)), max(1, round(w * r))
    else:
        nh, nw = h, w
    if (nh, nw) != (h, w):
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=nh < h or nw < w)
    return x, (nh, nw), (math.ceil(nh / stride) * stride - nh, math.ceil(nw / stride) * stride - nw)
