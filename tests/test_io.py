import numpy as np
import pytest
from PIL import Image

from vat.errors import DataError
from vat.io import ImageCache, atomic_dir, atomic_path, load_rgb, read_text, save_png, save_torch


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_atomic_dir_swaps_only_on_success(tmp_path):
    out = tmp_path / "stage"
    out.mkdir()
    (out / "keep.txt").write_text("v1")
    with pytest.raises(ValueError):
        with atomic_dir(out) as tmp:
            (tmp / "keep.txt").write_text("v2-partial")
            raise ValueError
    assert (out / "keep.txt").read_text() == "v1"
    with atomic_dir(out) as tmp:
        (tmp / "new.txt").write_text("v2")
    assert sorted(p.name for p in out.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_atomic_writes_get_plain_permissions_not_owner_only(tmp_path):
    import os

    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "f.txt") as tmp:
            tmp.write_text("x")
        with atomic_dir(tmp_path / "d") as tmp:
            (tmp / "g.txt").write_text("y")
    finally:
        os.umask(old)
    assert (tmp_path / "f.txt").stat().st_mode & 0o777 == 0o644  # mkstemp alone gives 0o600
    assert (tmp_path / "d").stat().st_mode & 0o777 == 0o755  # mkdtemp alone gives 0o700


def test_png_is_lossless_and_deterministic(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    save_png(a, tmp_path / "a.png")
    save_png(a, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert np.array_equal(load_rgb(tmp_path / "a.png"), a)


def test_load_rgb_converts_modes(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = load_rgb(tmp_path / "g.png")
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 1], gray)

    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[..., 3] = [[255, 0], [128, 255]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = load_rgb(tmp_path / "a.png")
    assert (out[..., 0] == 200).all() and (out[..., 1:] == 0).all()  # alpha dropped, colour as stored

    deep = (np.arange(6, dtype=np.uint16).reshape(2, 3) * 13000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    out = load_rgb(tmp_path / "d.png")
    assert out[0, 0, 0] == 0 and out[1, 2, 0] == round(65000 / 65535 * 255)


@pytest.mark.parametrize("channels", [3, 4])
def test_load_rgb_rounds_16_bits_per_channel_colour(tmp_path, channels):
    """48-bit RGB and 64-bit RGBA: Pillow keeps only the high byte; we round v * 255 / 65535."""
    import cv2

    a = np.random.default_rng(0).integers(0, 65536, (5, 7, channels), dtype=np.uint16)
    a[0, 0, :3] = (127, 128, 65535)  # high byte 0, 0, 255; rounded 0, 0, 255 ...
    a[0, 1, :3] = (383, 384, 32896)  # ... high byte 1, 1, 128; rounded 1, 1, 128
    a[0, 2, :3] = (256 * 3 + 200, 129, 257 * 7 + 128)  # high byte 3, 0, 7; rounded 4, 1, 7
    order = [2, 1, 0, 3][:channels]  # OpenCV writes BGR(A)
    assert cv2.imwrite(str(tmp_path / "deep.png"), a[..., order])
    out = load_rgb(tmp_path / "deep.png")
    assert out.dtype == np.uint8 and out.shape == (5, 7, 3)
    assert np.array_equal(out, np.round(a[..., :3] * (255 / 65535)).astype(np.uint8))
    assert out[0, 2].tolist() == [4, 1, 7]


def test_oversized_header_is_one_line_naming_the_file(tmp_path, monkeypatch):
    Image.new("RGB", (40, 30)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # the file claims 1200 > 2 x 500 pixels
    with pytest.raises(DataError) as e:
        load_rgb(tmp_path / "big.png")
    assert str(e.value).startswith(f"{tmp_path / 'big.png'}: oversized image") and "\n" not in str(e.value)
    assert "1,200 pixels" in str(e.value)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1200 <= 2 x 1000: decoded, no warning
    assert load_rgb(tmp_path / "big.png").shape == (30, 40, 3)


def test_read_text_names_the_line_and_byte_of_non_utf8(tmp_path):
    (tmp_path / "l1.txt").write_bytes("a.jpg\nimages/café.jpg\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"l1\.txt: line 2: not UTF-8 text \(byte 0xe9"):
        read_text(tmp_path / "l1.txt")
    (tmp_path / "bom.txt").write_bytes("\ufeffcafé\n".encode())
    assert read_text(tmp_path / "bom.txt") == "café\n"


def test_load_rgb_names_truncated_and_missing_files(tmp_path):
    a = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(a).save(tmp_path / "x.jpg", quality=95)
    data = (tmp_path / "x.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(DataError, match="cut.jpg: truncated or corrupt"):
        load_rgb(tmp_path / "cut.jpg")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(DataError, match="junk.png"):
        load_rgb(tmp_path / "junk.png")
    with pytest.raises(DataError, match="nope.png: image file not found"):
        load_rgb(tmp_path / "nope.png")


def test_load_rgb_applies_exif_rotation(tmp_path):
    a = np.zeros((10, 20, 3), np.uint8)
    a[0, 0] = 255  # top-left marker
    im = Image.fromarray(a)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 CW to display
    im.save(tmp_path / "r.jpg", exif=exif, quality=100)
    out = load_rgb(tmp_path / "r.jpg")
    assert out.shape == (20, 10, 3)
    assert out[0, -1].mean() > 128  # marker moved to the top-right
    assert load_rgb(tmp_path / "r.jpg", exif=False).shape == (10, 20, 3)


def test_save_torch_writes_the_same_bytes_for_the_same_object(tmp_path):
    """DVC compares outputs by hash: a rerun stage that saves equal weights must not look changed."""
    import torch

    obj = {"state_dict": {"w": torch.arange(6.0).reshape(2, 3)}, "meta": {"step": 3}}
    a, b = tmp_path / "a.pt", tmp_path / "sub" / "b.pt"
    save_torch(obj, a)
    save_torch(obj, b)
    assert a.read_bytes() == b.read_bytes()
    assert torch.equal(torch.load(b, weights_only=True)["state_dict"]["w"], obj["state_dict"]["w"])
    assert {p.name for p in tmp_path.rglob("*")} == {"a.pt", "sub", "b.pt"}  # no temporary file left


def test_image_cache_keeps_what_fits_and_loads_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"{i}.png")
        save_png(rng.integers(0, 256, (4, 5, 3), dtype=np.uint8), paths[-1])
    cache = ImageCache(max_bytes=2 * 4 * 5 * 3)  # room for two of the three
    first = [cache(p) for p in paths]
    for p, image in zip(paths, first, strict=True):
        assert np.array_equal(image, load_rgb(p))
    assert cache(paths[0]) is first[0] and cache(paths[1]) is first[1]  # kept: decoded once
    assert cache(paths[2]) is not first[2]  # over the budget: read again each time
    assert cache.used == 2 * 4 * 5 * 3
    with pytest.raises(ValueError):  # shared arrays are read-only
        first[0][0, 0, 0] = 1
