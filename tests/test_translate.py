"""vat.models.translate (tiled translator inference) and the `vat translate` stage, on tiny images."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stages.tools import translate
from vat.errors import DataError
from vat.io import load_rgb, save_png
from vat.models.restorers import build_restorer
from vat.models.translate import translate_image, translate_tiled
from vat.models.translator import create_translator, save_translator


def _model(**overrides):
    return create_translator("vat-w4", with_t_b=False, **overrides).eval()


def _images(h, w, seed=0):
    """(I_LQ, I_R): smooth random images in [0, 1], (1, 3, h, w)."""
    g = torch.Generator().manual_seed(seed)
    a, b = (F.avg_pool2d(torch.rand(1, 3, h, w, generator=g), 5, 1, 2) for _ in range(2))
    return a, b


def test_tiled_equals_whole_when_the_image_fits_in_one_tile():
    model = _model(seed=1)
    i_lq, i_r = _images(40, 56)
    tiled = translate_tiled(model, i_lq, i_r, tile=64, overlap=16)
    with torch.no_grad():
        whole = model.translate(i_lq, i_r)
    for k in ("out", "fused", "gate"):
        assert torch.equal(tiled[k], whole[k].float()), k
    assert tiled["out"].shape == (1, 3, 40, 56) and tiled["gate"].shape == (1, 1, 40, 56)


def test_tiled_is_close_to_whole_for_an_identity_t():
    # With T = identity, out = fused exactly, tile by tile and so after blending. The gate is
    # not local (MDTA normalises q, k over the whole tile), so tiled and whole gates differ a
    # little (measured ~0.006 max at 32 px tiles); fused differs by that times |I_LQ - I_R|.
    model = _model(identity_init=True)
    i_lq, i_r = _images(70, 90)
    tiled = translate_tiled(model, i_lq, i_r, tile=32, overlap=8)
    whole = translate_tiled(model, i_lq, i_r, tile=512)
    assert tiled["out"].shape == (1, 3, 70, 90) and tiled["gate"].shape == (1, 1, 70, 90)
    for k in ("out", "fused", "gate"):
        assert torch.isfinite(tiled[k]).all(), k
    assert torch.equal(tiled["out"], tiled["fused"]) and torch.equal(whole["out"], whole["fused"])
    assert (tiled["gate"] - whole["gate"]).abs().max() < 0.02
    assert (tiled["fused"] - whole["fused"]).abs().max() < 0.01
    assert ((tiled["gate"] >= 0) & (tiled["gate"] <= 1)).all()


def test_tiled_handles_batches_and_checks_shapes():
    model = _model(identity_init=True)
    a, b = _images(40, 50)
    x = translate_tiled(model, torch.cat([a, b]), torch.cat([b, a]), tile=32, overlap=8)
    assert x["out"].shape == (2, 3, 40, 50)
    with pytest.raises(ValueError, match="same shape"):
        translate_tiled(model, a, b[..., :10])


def test_translate_image_gives_uint8_of_the_input_size():
    model = _model(identity_init=True)
    low = np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8)
    res = translate_image(model, build_restorer("identity"), low, "x", device="cpu", tile=32, overlap=8)
    assert res["out"].shape == res["fused"].shape == res["restored"].shape == (37, 45, 3)
    assert res["gate"].shape == (37, 45) and all(v.dtype == np.uint8 for v in res.values())
    # identity R and identity T: out = w * I_LQ + (1 - w) * I_LQ = I_LQ (up to rounding)
    assert np.abs(res["out"].astype(int) - low).max() <= 1


# --------------------------------------------------------------------------------------
# the stage

SIZES = {"a": (40, 56), "b": (70, 90), "c": (33, 47)}  # stem -> (H, W)


@pytest.fixture
def setup(tmp_path):
    rng = np.random.default_rng(0)
    inp = tmp_path / "in"
    for stem, (h, w) in SIZES.items():
        save_png(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), inp / f"{stem}.png")
    (inp / "notes.txt").write_text("not an image")
    spec = tmp_path / "restorer.json"
    spec.write_text(json.dumps({"arch": "identity", "weights": None, "folder": None}))
    model_path = save_translator(_model(seed=2), tmp_path / "translator.pt", meta={"epoch": 1})
    kw = {"model_path": model_path, "restorer_spec": spec, "tile": 64, "overlap": 16, "device": "cpu"}
    return tmp_path, inp, kw


def test_run_writes_one_png_per_input_with_its_size(setup):
    tmp, inp, kw = setup
    m = translate.run(inp, tmp / "out", save_gate=True, **kw)
    assert m["images"] == 3 and m["output"] == str(tmp / "out") and m["img_per_s"] > 0
    assert sorted(p.name for p in (tmp / "out").glob("*.png")) == ["a.png", "b.png", "c.png"]
    for stem, (h, w) in SIZES.items():
        assert load_rgb(tmp / "out" / f"{stem}.png").shape == (h, w, 3)
        assert load_rgb(tmp / "out" / "gate" / f"{stem}.png").shape == (h, w, 3)  # grey, read as RGB


def test_existing_output_is_kept_without_overwrite(setup):
    tmp, inp, kw = setup
    out = tmp / "out"
    out.mkdir()
    (out / "b.png").write_bytes(b"mine")
    with pytest.raises(DataError, match=r"b\.png: already exists.*--overwrite"):
        translate.run(inp, out, **kw)
    assert (out / "b.png").read_bytes() == b"mine" and not (out / "a.png").exists()
    translate.run(inp, out, overwrite=True, **kw)
    assert load_rgb(out / "b.png").shape == (70, 90, 3)


def test_corrupt_image_is_named_and_earlier_outputs_stay(setup):
    tmp, inp, kw = setup
    (inp / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")  # no readable header: found before any work
    with pytest.raises(DataError, match=r"b\.png: not an image file"):
        translate.run(inp, tmp / "out", **kw)
    assert not (tmp / "out").exists()
    save_png(np.zeros((70, 90, 3), np.uint8), inp / "b.png")
    (inp / "b.png").write_bytes((inp / "b.png").read_bytes()[:60])  # a good header, pixels cut off
    with pytest.raises(DataError, match=r"b\.png: truncated or corrupt image"):
        translate.run(inp, tmp / "out", **kw)
    assert (tmp / "out" / "a.png").is_file() and not (tmp / "out" / "c.png").exists()


def test_missing_model_or_spec_names_the_stage_that_writes_it(setup):
    tmp, inp, kw = setup
    with pytest.raises(DataError, match=r"nope\.pt.*vat train\b"):
        translate.run(inp, tmp / "out", **(kw | {"model_path": tmp / "nope.pt"}))
    with pytest.raises(DataError, match=r"nope\.json.*vat train_restorer"):
        translate.run(inp, tmp / "out", **(kw | {"restorer_spec": tmp / "nope.json"}))


def test_folder_restorer_is_looked_up_by_stem(setup):
    tmp, inp, kw = setup
    restored = tmp / "restored"
    for stem in ("a", "b"):
        save_png(load_rgb(inp / f"{stem}.png"), restored / f"{stem}.png")
    spec = tmp / "folder.json"
    spec.write_text(json.dumps({"arch": "folder", "weights": None, "folder": str(restored)}))
    with pytest.raises(DataError, match="no restored image.*'c'"):
        translate.run(inp, tmp / "out", **(kw | {"restorer_spec": spec}))
    assert not (tmp / "out").exists()
    save_png(load_rgb(inp / "c.png"), restored / "c.png")
    assert translate.run(inp, tmp / "out", **(kw | {"restorer_spec": spec}))["images"] == 3


def test_command_runs_through_typer(setup):
    import typer
    from typer.testing import CliRunner

    tmp, inp, kw = setup
    app = typer.Typer()
    app.command("translate")(translate.command)
    app.command("other")(lambda: None)  # two commands, so `translate` is a subcommand as in stages/cli.py
    paths = ["--model", str(kw["model_path"]), "--restorer", str(kw["restorer_spec"])]
    args = ["translate", str(inp), str(tmp / "out"), *paths, "--tile", "64", "--overlap", "16"]
    args += ["--device", "cpu", "--gate"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert (tmp / "out" / "gate" / "b.png").is_file()
    r = CliRunner().invoke(app, args)  # second run: files exist, one-line error, exit 2
    assert r.exit_code == 2 and "already exists" in r.output


def test_progress_advances_once_per_tile(setup):
    """The bar's total is the number of tiles R and the translator run on, and it moves per tile."""
    tmp, inp, kw = setup
    seen = []

    def track(items, description="", total=None):
        seen.append(total)
        n = 0
        for item in items:
            n += 1
            yield item
        seen.append(n)

    translate.run(inp, tmp / "out", track=track, **kw)
    # tile 64, overlap 16: a (40x56) and c (33x47) fit in one tile, b (70x90) takes 2 x 2;
    # R (identity, a network) and the translator each run on every tile.
    assert seen == [2 * (1 + 4 + 1), 2 * (1 + 4 + 1)]


@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_exif_oriented_input_is_written_upright(tmp_path, orientation):
    """The rule of data/README.md: an image is used as displayed, so the output is the input as
    a viewer shows it (EXIF applied), and carries no orientation of its own."""
    from PIL import Image

    stored = np.random.default_rng(0).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    inp = tmp_path / "in"
    inp.mkdir()
    Image.fromarray(stored).save(inp / "photo.png", exif=exif)
    spec = tmp_path / "restorer.json"
    spec.write_text(json.dumps({"arch": "identity", "weights": None, "folder": None}))
    model = create_translator("vat-w4", with_t_b=False, identity_init=True).eval()  # out = input
    model_path = save_translator(model, tmp_path / "translator.pt", meta={"epoch": 0})
    translate.run(inp, tmp_path / "out", model_path=model_path, restorer_spec=spec, device="cpu")
    shown = load_rgb(inp / "photo.png")
    out = load_rgb(tmp_path / "out" / "photo.png", exif=False)
    assert shown.shape == ((40, 24, 3) if orientation in (6, 8) else (24, 40, 3))
    assert out.shape == shown.shape and np.abs(out.astype(int) - shown).max() <= 1
    with Image.open(tmp_path / "out" / "photo.png") as im:
        assert im.getexif().get(0x0112, 1) == 1
