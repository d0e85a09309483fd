"""Restored images computed by any restorer elsewhere, one file per image id."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from vat.errors import DataError
from vat.io import load_rgb

FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".webp")


class FolderRestorer:
    """Restored images computed by any restorer elsewhere, one file per image id.

    A file matches id ``x`` when its path relative to ``folder`` minus the extension is
    ``x`` (ids may contain ``/``); extensions compare case-insensitively and, if one id
    has several files, the first extension in ``extensions`` wins. Hidden files (temporary
    files of an interrupted writer) are ignored. The folder is listed once, on first use.
    """

    def __init__(
        self,
        folder: str | Path,
        extensions: Sequence[str] = FOLDER_EXTENSIONS,
        on_size_mismatch: str = "error",
    ) -> None:
        if on_size_mismatch not in ("error", "resize"):
            raise ValueError(f"on_size_mismatch must be 'error' or 'resize', got {on_size_mismatch!r}")
        self.folder = Path(folder)
        self.extensions = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        self.on_size_mismatch = on_size_mismatch
        self._index: dict[str, Path] | None = None

    def __repr__(self) -> str:
        return f"FolderRestorer({str(self.folder)!r})"

    def index(self) -> dict[str, Path]:
        """id -> file, built on first use."""
        if self._index is None:
            if not self.folder.is_dir():
                raise DataError(f"{self.folder}: folder of restored images not found")
            rank = {e: i for i, e in enumerate(self.extensions)}
            found: dict[str, tuple[int, Path]] = {}
            for root, dirs, files in os.walk(self.folder):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    ext = os.path.splitext(name)[1].lower()
                    if name.startswith(".") or ext not in rank:
                        continue
                    p = Path(root) / name
                    key = p.relative_to(self.folder).with_suffix("").as_posix()
                    if key not in found or rank[ext] < found[key][0]:
                        found[key] = (rank[ext], p)
            self._index = {k: p for k, (_, p) in found.items()}
        return self._index

    def check(self, image_ids: Iterable[str]) -> list[str]:
        """The ids that have no file, in the order given."""
        index = self.index()
        return [i for i in image_ids if str(i) not in index]

    def require(self, image_ids: Iterable[str]) -> None:
        """Raise one DataError listing how many ids are missing and the first few."""
        missing = self.check(image_ids)
        if missing:
            raise DataError(
                f"{self.folder}: no restored image for {len(missing)} image id(s), e.g. "
                f"{', '.join(map(repr, missing[:5]))} (looked for {', '.join(self.extensions)})"
            )

    def path_for(self, image_id: str) -> Path:
        path = self.index().get(str(image_id))
        if path is None:
            raise DataError(
                f"{self.folder}: no restored image for image id {image_id!r} "
                f"(looked for {', '.join(self.extensions)})"
            )
        return path

    def load(self, image_id: str, size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 (H, W, 3); ``size`` = (width, height) the caller expects, if any."""
        path = self.path_for(image_id)
        image = load_rgb(path)
        if size is not None and (image.shape[1], image.shape[0]) != tuple(size):
            if self.on_size_mismatch == "error":
                raise DataError(
                    f"{path}: restored image is {image.shape[1]}x{image.shape[0]}, but image id "
                    f"{image_id!r} is {size[0]}x{size[1]} (set on_size_mismatch='resize' to resize)"
                )
            import cv2

            image = cv2.resize(image, tuple(size), interpolation=cv2.INTER_AREA)
        return image
