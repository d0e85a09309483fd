"""The bad-input corpus (issue #19): generated malformed inputs, each fed to the real `vat`
command it belongs to (typer's CliRunner on stages.cli.app, in one shared workspace that
holds a previous good run). For each: the exit status, a message naming the file and the
problem, no traceback, and the previous outputs byte-identical.

Cases that are not errors (converted, clipped, EXIF, unknown class names) run in a folder
of their own and check the note prepare prints instead.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from stages.cli import app

REPO = Path(__file__).resolve().parents[1]
STEMS = [f"img{i}" for i in range(6)]  # two per split: train, val, test
SPLIT_OF = {s: ("train", "val", "test")[i // 2] for i, s in enumerate(STEMS)}
BOX = ("car", 5, 4, 20, 16)  # VOC 1-based pixels inside a 32x24 image


# ---------------------------------------------------------------- generators


def _xml(filename: str, objects, size=(32, 24)) -> str:
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, *c in objects:
        parts.append(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{c[0]}</xmin>"
            f"<ymin>{c[1]}</ymin><xmax>{c[2]}</xmax><ymax>{c[3]}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>"


def _image(seed: int, w: int = 32, h: int = 24) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8))


def good_voc(root: Path) -> Path:
    """A tiny VOC dataset: six 32x24 images, one car each, split by ImageSets/Main."""
    for d in ("JPEGImages", "Annotations", "ImageSets/Main"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, stem in enumerate(STEMS):
        _image(i).save(root / "JPEGImages" / f"{stem}.png")
        (root / "Annotations" / f"{stem}.xml").write_text(_xml(f"{stem}.png", [BOX]))
    for split in ("train", "val", "test"):
        names = [s for s in STEMS if SPLIT_OF[s] == split]
        (root / "ImageSets" / "Main" / f"{split}.txt").write_text("\n".join(names) + "\n")
    return root


def bomb_png(path: Path, w: int = 20000, h: int = 20000) -> None:
    """A PNG whose header claims w x h pixels (no pixel data follows)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))


def png_bytes(seed: int = 0) -> bytes:
    buf = io.BytesIO()
    _image(seed).save(buf, format="PNG")
    return buf.getvalue()


def snapshot(ws: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(ws)): p.read_bytes()
        for top in ("data", "reports", "translated")
        for p in sorted((ws / top).rglob("*"))
        if p.is_file()
    }


def write_params(path: Path, **sections) -> Path:
    """The repository's params.yaml with ``sections`` (dicts) merged over it."""
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    for name, values in sections.items():
        data[name] = {**data[name], **values}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def invoke(args: list[str]):
    return CliRunner().invoke(app, args, env={"COLUMNS": "300"})


# ---------------------------------------------------------------- the shared workspace


@pytest.fixture(scope="module")
def ws(tmp_path_factory):
    """A folder holding a good `vat prepare` of a tiny VOC set and a good `vat translate`."""
    from vat.models.translator import create_translator, save_translator

    ws = tmp_path_factory.mktemp("badinput")
    good_voc(ws / "voc")
    write_params(ws / "params.yaml", prepare={"source": "voc", "root": str(ws / "voc")})
    (ws / "in").mkdir()
    _image(9, 40, 30).save(ws / "in" / "a.png")
    (ws / "restorer.json").write_text(json.dumps({"arch": "identity", "weights": None, "folder": None}))
    model = create_translator("vat-w4", with_t_b=False, identity_init=True).eval()
    save_translator(model, ws / "translator.pt", meta={"epoch": 0})
    mp = pytest.MonkeyPatch()
    mp.chdir(ws)
    r = invoke(["prepare", "--params", "params.yaml"])
    assert r.exit_code == 0, r.output
    r = invoke(["translate", "in", "translated", *TRANSLATE_ARGS])
    assert r.exit_code == 0, r.output
    yield ws
    mp.undo()


TRANSLATE_ARGS = ["--model", "translator.pt", "--restorer", "restorer.json", "--device", "cpu"]


# ---------------------------------------------------------------- the cases

# Each case gets its own folder ``d`` (a fresh copy of the good dataset is at d/voc) and
# returns the `vat` arguments; CASES maps its id to (build, exit code, texts the message must
# hold). "{d}" in a text stands for the case folder.


def _prepare(d: Path, on_error: str = "stop", root: str = "voc", source: str = "voc", **more) -> list[str]:
    params = write_params(
        d / "params.yaml", prepare={"source": source, "root": str(d / root), "on_error": on_error, **more}
    )
    return ["prepare", "--params", str(params)]


def _image_case(write: Callable[[Path], None], on_error: str = "stop"):
    def build(d: Path) -> list[str]:
        write(d / "voc" / "JPEGImages" / "img0.png")
        return _prepare(d, on_error)

    return build


def _xml_case(objects, size=(32, 24), raw: str | None = None):
    def build(d: Path) -> list[str]:
        text = raw if raw is not None else _xml("img0.png", objects, size)
        (d / "voc" / "Annotations" / "img0.xml").write_text(text)
        return _prepare(d)

    return build


def _latin1_split_list(d: Path) -> list[str]:
    (d / "voc" / "ImageSets" / "Main" / "train.txt").write_bytes("img0\nimg1\ncafé\n".encode("latin-1"))
    return _prepare(d)  # (skip mode leaves the line out, and says so)


def _all_skipped(d: Path) -> list[str]:
    for stem in STEMS:
        (d / "voc" / "JPEGImages" / f"{stem}.png").write_bytes(b"")
    return _prepare(d, "skip")


def _empty_split(d: Path) -> list[str]:
    for stem in ("img2", "img3"):  # the val split
        (d / "voc" / "JPEGImages" / f"{stem}.png").write_bytes(b"")
    return _prepare(d, "skip")


def _several_problems(d: Path) -> list[str]:
    for stem in ("img0", "img3", "img5"):
        (d / "voc" / "JPEGImages" / f"{stem}.png").write_bytes(b"not an image")
    return _prepare(d)


def _yolo(d: Path, latin1_list: bool = False, binary_classes: bool = False) -> Path:
    root = d / "yolo"
    for split, stems in (("train", STEMS[:2]), ("val", STEMS[2:4]), ("test", STEMS[4:])):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for s in stems:
            _image(0).save(root / "images" / split / f"{s}.png")
            (root / "labels" / split / f"{s}.txt").write_text("0 0.5 0.5 0.4 0.4\n")
    if binary_classes:
        (root / "classes.txt").write_bytes(bytes(range(256)))
        return root
    train = "train.txt" if latin1_list else "images/train"
    if latin1_list:
        (root / "train.txt").write_bytes("images/train/img0.png\nimages/train/café.png\n".encode("latin-1"))
    cfg = {"path": str(root), "train": train, "val": "images/val", "test": "images/test", "names": ["car"]}
    (root / "data.yaml").write_text(yaml.safe_dump(cfg))
    return root


def _params_case(command: str = "prepare", **sections):
    def build(d: Path) -> list[str]:
        return [command, "--params", str(write_params(d / "params.yaml", **sections))]

    return build


def _params_text(text: bytes):
    def build(d: Path) -> list[str]:
        (d / "params.yaml").write_bytes(text)
        return ["prepare", "--params", str(d / "params.yaml")]

    return build


def _weights(write: Callable[[Path], None]):
    """`vat train_detector` taking ``train_detector.weights`` (it reads the workspace's data/prepare)."""

    def build(d: Path) -> list[str]:
        path = d / "det.pt"
        write(path)
        return [
            "train_detector",
            "--params",
            str(write_params(d / "params.yaml", train_detector={"weights": str(path)})),
        ]

    return build


def _truncated_zip(path: Path) -> None:
    torch.save({"arch": "yolo", "w": torch.zeros(64, 64)}, path)
    path.write_bytes(path.read_bytes()[:300])


class _Evil:
    def __reduce__(self):
        import os

        return (os.system, ("true",))


def _translate(write: Callable[[Path], None]):
    """`vat translate` over a folder holding one bad image, into the workspace's earlier output
    with --overwrite: every header is read before any work, so nothing there changes."""

    def build(d: Path) -> list[str]:
        (d / "in").mkdir()
        write(d / "in" / "a.png")
        return ["translate", str(d / "in"), "translated", "--overwrite", *TRANSLATE_ARGS]

    return build


def _translator(write: Callable[[Path], None]):
    """`vat translate --model` a file that is not a translator."""

    def build(d: Path) -> list[str]:
        write(d / "model.pt")
        args = ["translate", "in", "translated", "--overwrite", *TRANSLATE_ARGS]
        args[args.index("translator.pt")] = str(d / "model.pt")
        return args

    return build


IMG0 = "{d}/voc/JPEGImages/img0.png"
XML0 = "{d}/voc/Annotations/img0.xml"
NOT_TORCH = "{d}/det.pt: not a readable torch checkpoint"
CASES: dict[str, tuple[Callable[[Path], list[str]], int, list[str]]] = {
    # images
    "zero-byte image": (
        _image_case(lambda p: p.write_bytes(b"")),
        2,
        [IMG0, "empty file (0 bytes), not an image"],
    ),
    "text as image": (_image_case(lambda p: p.write_text("hello\n")), 2, [IMG0, "not an image file"]),
    "truncated image": (
        _image_case(lambda p: p.write_bytes(png_bytes()[:200])),
        2,
        [IMG0, "truncated or corrupt"],
    ),
    "corrupt image": (
        _image_case(lambda p: p.write_bytes(png_bytes()[:60] + b"\0" * 400)),
        2,
        [IMG0, "truncated or corrupt"],
    ),
    "bomb-sized header": (_image_case(bomb_png), 2, [IMG0, "oversized image", "400,000,000 pixels"]),
    "missing image": (_image_case(lambda p: p.unlink()), 2, [XML0, "which does not exist"]),
    # lists and annotations that are not UTF-8 or not readable
    "latin-1 split list": (
        _latin1_split_list,
        2,
        ["{d}/voc/ImageSets/Main/train.txt", "line 3: not UTF-8"],
    ),
    "latin-1 yolo list": (
        lambda d: _prepare(d, source="yolo", root=_yolo(d, latin1_list=True).name),
        2,
        ["{d}/yolo/train.txt", "line 2: not UTF-8"],
    ),
    "binary classes.txt": (
        lambda d: _prepare(d, source="yolo", root=_yolo(d, binary_classes=True).name),
        2,
        ["{d}/yolo/classes.txt", "not UTF-8"],
    ),
    "xml not xml": (_xml_case([], raw="<annotation><object>"), 2, [XML0, "not readable XML"]),
    # boxes
    "box fully outside": (
        _xml_case([("car", 40, 30, 50, 40)]),
        2,
        [XML0, "lies fully outside the 32x24 image"],
    ),
    "box of zero area": (_xml_case([("car", 6, 4, 5, 16)]), 2, [XML0, "zero or negative area"]),
    "box inverted": (_xml_case([("car", 20, 16, 5, 4)]), 2, [XML0, "zero or negative area"]),
    "box not finite": (_xml_case([("car", "nan", 4, 20, 16)]), 2, [XML0, "not a finite number"]),
    "box not a number": (_xml_case([("car", "abc", 4, 20, 16)]), 2, [XML0, "non-numeric bndbox coordinate"]),
    # skip mode that leaves nothing, or an empty split; stop mode with several problems
    "skip leaves no image": (_all_skipped, 2, ["{d}/voc", "no usable image among 6", "bad items skipped"]),
    "skip leaves val empty": (_empty_split, 2, ["{d}/voc", "split val has no image"]),
    "several problems": (
        _several_problems,
        2,
        ["{d}/voc: bad items (3 found", "JPEGImages/img0.png", "JPEGImages/img3.png", "JPEGImages/img5.png"],
    ),
    # params
    "typo'd key": (
        _params_case(prepare={"on_eror": "skip"}),
        2,
        ["{d}/params.yaml", "on_eror", "unknown key"],
    ),
    "mistyped value": (
        _params_case(common={"seed": "zero"}),
        2,
        ["{d}/params.yaml", "seed", "expected an integer"],
    ),
    "mistyped float": (
        _params_case("train_detector", train_detector={"lr0": "fast"}),
        2,
        ["{d}/params.yaml", "lr0"],
    ),
    "not yaml": (_params_text(b"common: {seed: 0\nprepare: [\n"), 2, ["{d}/params.yaml", "not valid YAML"]),
    "params not utf-8": (
        _params_text("common:\n  seed: 0  # café\n".encode("latin-1")),
        2,
        ["{d}/params.yaml", "not UTF-8"],
    ),
    # detector checkpoints
    "random bytes as weights": (_weights(lambda p: p.write_bytes(bytes(range(256)) * 8)), 2, [NOT_TORCH]),
    "empty weights": (_weights(lambda p: p.write_bytes(b"")), 2, ["{d}/det.pt: empty file (0 bytes)"]),
    "truncated weights": (_weights(_truncated_zip), 2, [NOT_TORCH, "truncated or corrupt"]),
    "pickled module": (
        _weights(lambda p: torch.save(torch.nn.Linear(2, 2), p)),
        2,
        ["{d}/det.pt", "not a detector checkpoint", "Linear"],
    ),
    "bare state_dict": (
        _weights(lambda p: torch.save(torch.nn.Linear(2, 2).state_dict(), p)),
        2,
        ["{d}/det.pt", "not a detector checkpoint", "bare state_dict"],
    ),
    "restorer checkpoint": (
        _weights(lambda p: torch.save({"arch": "aodnet", "state_dict": {}}, p)),
        2,
        ["{d}/det.pt", "not a detector checkpoint", "arch 'aodnet'"],
    ),
    "pickle that runs code": (
        _weights(lambda p: torch.save(_Evil(), p)),
        2,
        ["{d}/det.pt", "refusing to unpickle"],
    ),
    "text as weights": (_weights(lambda p: p.write_text("weights\n")), 2, [NOT_TORCH]),
    # translate
    "translate bomb-sized header": (_translate(bomb_png), 2, ["{d}/in/a.png", "oversized image"]),
    "translate zero-byte": (
        _translate(lambda p: p.write_bytes(b"")),
        2,
        ["{d}/in/a.png", "empty file (0 bytes)"],
    ),
    "translate truncated": (
        _translate(lambda p: p.write_bytes(png_bytes()[:200])),
        2,
        ["{d}/in/a.png", "truncated or corrupt"],
    ),
    "translator of random bytes": (
        _translator(lambda p: p.write_bytes(bytes(range(256)) * 8)),
        2,
        ["{d}/model.pt: not a readable torch checkpoint"],
    ),
    "detector as translator": (
        _translator(lambda p: torch.save({"arch": "yolo", "yaml": {}, "names": []}, p)),
        2,
        ["{d}/model.pt: not a vat translator checkpoint"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_one_clear_message_and_loses_nothing(ws, name):
    build, code, says = CASES[name]
    d = ws / "cases" / name.replace(" ", "_").replace("'", "")
    d.mkdir(parents=True)
    shutil.copytree(ws / "voc", d / "voc")
    before = snapshot(ws)
    r = invoke(build(d))
    out = r.output
    assert r.exit_code == code, out
    assert isinstance(r.exception, SystemExit), repr(r.exception)  # a VatError, not a crash
    assert "Traceback" not in out and 'File "' not in out, out
    lines = out.strip().splitlines()  # a progress bar may come first (translate)
    errors = [i for i, line in enumerate(lines) if line.startswith("error: ")]
    assert len(errors) == 1, out
    message = lines[errors[0] :]
    if name != "several problems":  # that one lists each problem on a line of its own
        assert len(message) == 1, out
    for text in says:
        assert text.format(d=d) in "\n".join(message), (text, out)
    assert snapshot(ws) == before


# ---------------------------------------------------------------- not errors: converted, clipped, noted


def _exif_rotated(p: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    _image(0).save(p, exif=exif)


def _deep(channels: int):
    def write(p: Path) -> None:
        import cv2

        a = np.random.default_rng(0).integers(0, 65536, (24, 32, channels), dtype=np.uint16)
        assert cv2.imwrite(str(p), a)

    return write


NOTES: dict[str, tuple[Callable[[Path], None] | None, list, list[str]]] = {
    # case: (how img0 is written, img0's objects, texts of prepare's notes)
    "RGBA": (
        lambda p: _image(0).convert("RGBA").save(p),
        [BOX],
        ["converted 1 images", "mode RGBA (alpha dropped)"],
    ),
    "CMYK": (
        lambda p: _image(0).convert("CMYK").save(p, format="JPEG"),
        [BOX],
        ["converted 1 images", "mode CMYK"],
    ),
    "16-bit grey": (_deep(1), [BOX], ["converted 1 images", "mode I;16"]),
    "48-bit RGB": (_deep(3), [BOX], ["converted 1 images", "16 bits per channel"]),
    "palette": (lambda p: _image(0).convert("P").save(p), [BOX], ["converted 1 images", "mode P"]),
    "EXIF rotated": (_exif_rotated, [("car", 3, 5, 20, 30)], ["1 images have an EXIF orientation"]),
    "EXIF rotated, no <size>": (
        _exif_rotated,
        [("car", 3, 5, 20, 30)],
        ["1 images have an EXIF orientation"],
    ),
    "box partly outside": (None, [("car", -5, 4, 40, 16)], ["clipped 1 boxes", "img0.xml"]),
    "unknown class": (None, [BOX, ("zebra", 5, 4, 20, 16)], ["unknown class names (not used): {'zebra': 1}"]),
}


@pytest.mark.parametrize("name", list(NOTES))
def test_odd_but_usable_input_is_converted_and_noted(tmp_path, monkeypatch, name):
    write, objects, says = NOTES[name]
    good_voc(tmp_path / "voc")
    if write is not None:
        write(tmp_path / "voc" / "JPEGImages" / "img0.png")
    size = (24, 32) if name == "EXIF rotated" else None if "no <size>" in name else (32, 24)  # as displayed
    (tmp_path / "voc" / "Annotations" / "img0.xml").write_text(_xml("img0.png", objects, size))
    monkeypatch.chdir(tmp_path)
    r = invoke(_prepare(tmp_path))
    assert r.exit_code == 0 and "Traceback" not in r.output, r.output
    for text in says:
        assert text in r.output, (text, r.output)
    read = json.loads((tmp_path / "reports" / "prepare" / "metrics.json").read_text())["read"]
    assert read["n_images"] == 6
    if name.startswith("EXIF"):  # used as displayed (24 wide, 32 high), the box as the XML gives it
        from vat.data.manifest import read_manifest

        rec = next(r for r in read_manifest(tmp_path / "data" / "prepare" / "manifest.parquet").records
                   if r.image_id.endswith("img0"))  # fmt: skip
        b = rec.boxes[0]
        assert (rec.width, rec.height) == (24, 32) and (b.x1, b.y1, b.x2, b.y2) == (
            2,
            4,
            20,
            30,
        )  # VOC: 1-based
