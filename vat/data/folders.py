"""Folders of plain image files (no annotations): what ``vat translate`` reads."""

from __future__ import annotations

from pathlib import Path

from vat.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(input_dir: Path) -> list[Path]:
    """Image files directly in ``input_dir`` (extension case-insensitive), sorted by name."""
    if not input_dir.is_dir():
        raise DataError(f"{input_dir}: input folder not found")
    files = sorted(
        p
        for p in input_dir.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in EXTENSIONS
    )
    if not files:
        raise DataError(f"{input_dir}: no images found (looked for {', '.join(EXTENSIONS)}, not recursive)")
    stems: dict[str, Path] = {}
    for p in files:
        if p.stem in stems:
            raise DataError(f"{p}: same name as {stems[p.stem].name}; both would be written to {p.stem}.png")
        stems[p.stem] = p
    return files
