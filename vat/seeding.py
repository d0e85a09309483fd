"""All randomness flows from ``common.seed`` through explicit generators.

:func:`item_rng` gives each image its own generator from (seed, purpose, image id), so an
image's random draws do not depend on which other images are processed, in which order,
or in which shard.
"""

from __future__ import annotations

import hashlib

import numpy as np


def item_seed(seed: int, *keys: object) -> int:
    """A 64-bit seed from the global seed and any keys (stable across runs and platforms)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(seed)).encode())
    for k in keys:
        h.update(b"\x1f")
        h.update(str(k).encode())
    return int.from_bytes(h.digest(), "little")


def item_rng(seed: int, *keys: object) -> np.random.Generator:
    return np.random.default_rng(item_seed(seed, *keys))
