"""translate: apply a trained translator, behind its frozen restorer R, to a folder of images.

What a user runs after training: every image I_LQ in INPUT goes through R, the gated fusion
G and T_A (``I_HQ = T_A(G(R(I_LQ), I_LQ))``), in overlapping tiles when it is larger than
``--tile`` (see :mod:`vat.models.translate` for how tiled results relate to whole-image ones).
Not a DVC stage: it reads the pipeline's outputs and writes wherever the user says.

Reads:   INPUT/*.{jpg,jpeg,png,bmp,tif,tiff,webp}  (sorted, not recursive, hidden files skipped;
                                                  used as displayed: EXIF orientation applied)
         data/train/translator.pt                 the translator (``vat train``), or --model
         data/train_restorer/restorer.json        R (``vat train_restorer``), or --restorer;
                                                  arch ``folder`` looks R(I_LQ) up by the file stem
Writes:  OUTPUT/<stem>.png                        the translated image, upright: the input as
                                                  displayed (its size; the PNG has no EXIF)
         OUTPUT/gate/<stem>.png                   with --gate: w as 8-bit grey (255 = I_LQ, 0 = I_R)

An existing output file is never replaced without ``--overwrite``, and every image's header
is read (an unreadable or oversized one named), before any work. Each file is written
atomically as soon as its image is done, so an image that fails to decode stops the run with
an error naming it and keeps what was already written. The progress bar advances per tile R
or the translator runs on (a 6000x4000 photograph is 117 tiles of 512 px each).
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import typer

from stages._ui import Track, console, friendly_errors, no_track, rich_track
from vat.data.folders import list_images
from vat.data.images import resolve_device
from vat.errors import DataError, ParamsError
from vat.io import image_size, load_rgb, save_png
from vat.layout import MAIN

MODEL = MAIN.translator()
RESTORER = MAIN.restorer_spec


# Ten arguments: the command's options, each its own (the command itself is the usual entry).
def run(
    input_dir: Path,
    output_dir: Path,
    model_path: Path = MODEL,
    restorer_spec: Path = RESTORER,
    tile: int = 512,
    overlap: int = 32,
    device: str = "auto",
    save_gate: bool = False,
    overwrite: bool = False,
    track: Track = no_track,
) -> dict:
    """Translate every image of ``input_dir`` into ``output_dir``; returns counts and speed."""
    from vat.models.translate import translate_image_steps, translate_units

    input_dir, output_dir = Path(input_dir), Path(output_dir)
    targets = _targets(input_dir, output_dir, model_path, restorer_spec, tile, overlap, save_gate, overwrite)
    sizes = [image_size(src) for src, _, _ in targets]  # DataError naming an unreadable or oversized file
    dev = resolve_device(device)
    model, restorer = _models(model_path, restorer_spec, [src for src, _, _ in targets], dev)

    def steps():  # one yield per tile: the bar moves inside a large image too
        for src, out, gate in targets:
            low = load_rgb(src)  # DataError naming the file if it does not decode
            try:
                res = yield from translate_image_steps(model, restorer, low, src.stem, dev, tile, overlap)
            except torch.OutOfMemoryError as e:
                raise ParamsError(
                    f"{src}: out of memory translating a {low.shape[1]}x{low.shape[0]} image with "
                    f"--tile {tile}; try a smaller --tile"
                ) from e
            save_png(res["out"], out)
            if save_gate:
                save_png(res["gate"], gate)

    units = sum(translate_units(restorer, w, h, tile, overlap) for w, h in sizes)
    t0 = time.perf_counter()
    for _ in track(steps(), f"translate {len(targets)} images, tiles", units):
        pass
    seconds = time.perf_counter() - t0
    return {
        "images": len(targets),
        "seconds": round(seconds, 3),
        "img_per_s": round(len(targets) / max(seconds, 1e-9), 3),
        "output": str(output_dir),
    }


# Eight arguments: run's checks, all before any work.
def _targets(input_dir, output_dir, model_path, restorer_spec, tile, overlap, save_gate, overwrite) -> list:
    """(input, output, gate output) of every image, after checking the options and that no
    existing file would be replaced without ``overwrite``."""
    if tile < 32 or not 0 <= overlap < tile // 2:
        raise ParamsError(f"translate: need tile >= 32 and 0 <= overlap < tile / 2, got {tile=}, {overlap=}")
    if not Path(model_path).is_file():
        raise DataError(f"{model_path}: translator checkpoint not found (run `vat train` first)")
    if not Path(restorer_spec).is_file():
        raise DataError(f"{restorer_spec}: restorer spec not found (run `vat train_restorer` first)")
    files = list_images(input_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise DataError(f"{output_dir}: output exists and is not a folder")
    if output_dir.resolve() == input_dir.resolve():
        raise ParamsError(f"{output_dir}: the output folder must differ from the input folder")
    targets = [(p, output_dir / f"{p.stem}.png", output_dir / "gate" / f"{p.stem}.png") for p in files]
    if not overwrite:
        existing = [
            t for _, out, gate in targets for t in ((out, gate) if save_gate else (out,)) if t.exists()
        ]
        if existing:
            more = f" (and {len(existing) - 1} more)" if len(existing) > 1 else ""
            raise DataError(f"{existing[0]}: already exists{more}; pass --overwrite to replace")
    return targets


def _models(model_path: Path, restorer_spec: Path, files: list[Path], dev):
    """The translator and its restorer on ``dev`` (a folder restorer checked for every file)."""
    from vat.models.restorers import FolderRestorer
    from vat.models.restorers.running import load_spec
    from vat.models.translator import load_translator

    model, _ = load_translator(model_path, device=dev)
    restorer = load_spec(Path(restorer_spec))
    if isinstance(restorer, FolderRestorer):
        restorer.require([p.stem for p in files])  # every missing id named before any work
    else:
        restorer = restorer.to(dev)
    return model, restorer


@friendly_errors
def command(
    input_dir: Path = typer.Argument(..., metavar="INPUT", help="folder of degraded images (not recursive)"),
    output_dir: Path = typer.Argument(..., metavar="OUTPUT", help="folder for the translated PNGs"),
    model: Path = typer.Option(MODEL, "--model", help="translator checkpoint written by `vat train`"),
    restorer: Path = typer.Option(
        RESTORER, "--restorer", help="restorer spec (restorer.json) written by `vat train_restorer`"
    ),
    tile: int = typer.Option(512, help="images larger than this (px, either side) run in overlapping tiles"),
    overlap: int = typer.Option(32, help="minimum overlap of neighbouring tiles, px"),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ..."),
    gate: bool = typer.Option(False, "--gate/--no-gate", help="also write the gate w to OUTPUT/gate/"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace existing files in OUTPUT"),
) -> None:
    """Translate every image in INPUT with the trained translator and its restorer.

    Writes OUTPUT/<stem>.png (same size as the input) and, with --gate, OUTPUT/gate/<stem>.png.
    Existing files are kept unless --overwrite is given.
    """
    m = run(
        input_dir,
        output_dir,
        model_path=model,
        restorer_spec=restorer,
        tile=tile,
        overlap=overlap,
        device=device,
        save_gate=gate,
        overwrite=overwrite,
        track=rich_track,
    )
    console.print(
        f"translate: {m['images']} images in {m['seconds']} s ({m['img_per_s']} img/s) -> {m['output']}"
    )
