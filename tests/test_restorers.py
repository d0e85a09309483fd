"""Frozen restorers: public checkpoints against hand-written formulas, the checkpoint
filter and its errors, DCP, tiling, the folder lookup and SCI training."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vat.errors import DataError, ParamsError
from vat.io import load_rgb, save_png, to_float
from vat.models.restorers import (
    DCP,
    RESTORERS,
    SCI,
    AODNet,
    FolderRestorer,
    SCILoss,
    SCITrain,
    box_filter,
    create_restorer,
    guided_filter,
    load_restorer,
    load_weights,
    restore_image,
    save_checkpoint,
)
from vat.models.tiling import restore_tiled

REAL = Path(os.environ.get("VAT_REAL_DATA", Path(__file__).resolve().parents[2] / "shared" / "real"))
AOD_PTH = REAL / "weights" / "aodnet" / "dehazer.pth"
SCI_DIR = REAL / "weights" / "sci"
needs_real = pytest.mark.skipif(not AOD_PTH.is_file(), reason="shared/real sample data absent")


def _real_image(folder: Path, side: int = 128, index: int = 0) -> torch.Tensor:
    """A real image of a folder, short side downscaled to ``side``, as (1, 3, H, W)."""
    path = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))[index]
    img = load_rgb(path)
    s = side / min(img.shape[:2])
    img = cv2.resize(img, (round(img.shape[1] * s), round(img.shape[0] * s)), interpolation=cv2.INTER_AREA)
    return torch.from_numpy(to_float(img)).permute(2, 0, 1)[None]


def _raw(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)


# ---- public checkpoints against the published formulas -------------------------------


def _aod_reference(sd: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    def conv(i: int, t: torch.Tensor) -> torch.Tensor:
        w = sd[f"e_conv{i}.weight"]
        return F.relu(F.conv2d(t, w, sd[f"e_conv{i}.bias"], padding=w.shape[-1] // 2))

    x1 = conv(1, x)
    x2 = conv(2, x1)
    x3 = conv(3, torch.cat([x1, x2], 1))
    x4 = conv(4, torch.cat([x2, x3], 1))
    k = conv(5, torch.cat([x1, x2, x3, x4], 1))
    return F.relu(k * x - k + 1).clamp(max=1)


@needs_real
def test_aodnet_public_checkpoint_matches_formula():
    x = _real_image(REAL / "dawn_fog" / "JPEGImages")
    model = load_restorer("aodnet", AOD_PTH)
    with torch.no_grad():
        out = model(x)
        ref = _aod_reference(_raw(AOD_PTH), x)
    assert out.shape == x.shape
    assert (out - ref).abs().max().item() < 1e-5
    assert (out - x).abs().mean().item() > 0.02  # it really changes the image


def _sci_reference(sd: dict[str, torch.Tensor], y: torch.Tensor) -> torch.Tensor:
    def conv(prefix: str, t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(t, sd[prefix + ".weight"], sd[prefix + ".bias"], padding=1)

    fea = F.relu(conv("enhance.in_conv.0", y))
    bn = F.batch_norm(
        conv("enhance.conv.0", fea),
        sd["enhance.conv.1.running_mean"],
        sd["enhance.conv.1.running_var"],
        sd["enhance.conv.1.weight"],
        sd["enhance.conv.1.bias"],
        training=False,
        eps=1e-5,
    )
    fea = fea + F.relu(bn)
    illu = torch.clamp(torch.sigmoid(conv("enhance.out_conv.0", fea)) + y, 1e-4, 1)
    return torch.clamp(y / illu, 0, 1)


@needs_real
@pytest.mark.parametrize("level", ["easy", "medium", "difficult"])
def test_sci_public_checkpoint_matches_formula(level):
    path = SCI_DIR / f"{level}.pt"
    folder = REAL / "lowlight_unpaired" / level
    y = _real_image(folder if folder.is_dir() else REAL / "lowlight_unpaired")  # no "difficult" images
    model = load_restorer("sci", path)
    assert not any(k.startswith("calibrate") for k in model.state_dict())
    with torch.no_grad():
        out = model(y)
        ref = _sci_reference(_raw(path), y)
    assert (out - ref).abs().max().item() < 1e-5
    assert out.mean().item() > y.mean().item() + 0.05  # brightens a dark image


@needs_real
def test_aodnet_foreign_key_forms_load_identically(tmp_path):
    sd = _raw(AOD_PTH)
    renamed = {k.replace("e_conv", "conv"): v for k, v in sd.items()}
    forms = {
        "conv.pth": renamed,
        "wrapped.pth": {"state_dict": renamed, "epoch": 7},
        "dp.pth": {"model": {f"module.{k}": v for k, v in sd.items()}},
        "net.pth": {"net": {f"module.{k}": v for k, v in renamed.items()}},
    }
    x = torch.rand(1, 3, 24, 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = load_restorer("aodnet", AOD_PTH)(x)
        for name, obj in forms.items():
            torch.save(obj, tmp_path / name)
            got = load_restorer("aodnet", tmp_path / name)(x)
            assert torch.equal(got, want), name


@needs_real
def test_sci_duplicate_blocks_folded_or_mapped(tmp_path):
    sd = _raw(SCI_DIR / "easy.pt")
    only_blocks = {k: v for k, v in sd.items() if not k.startswith(("enhance.conv.", "calibrate."))}
    bad = dict(sd)
    bad["enhance.blocks.0.0.weight"] = bad["enhance.blocks.0.0.weight"] + 1  # no longer a shared copy
    torch.save(only_blocks, tmp_path / "blocks.pt")
    torch.save(bad, tmp_path / "bad.pt")
    y = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 0.2
    with torch.no_grad():
        want = load_restorer("sci", SCI_DIR / "easy.pt")(y)
        assert torch.equal(load_restorer("sci", tmp_path / "blocks.pt")(y), want)
    with pytest.raises(DataError, match="bad.pt.*'sci'"):
        load_restorer("sci", tmp_path / "bad.pt")


# ---- checkpoint errors -----------------------------------------------------------------


class _Custom:
    """A class torch.load(weights_only=True) must refuse to rebuild."""

    def __init__(self) -> None:
        self.x = 1


def test_corrupt_missing_and_pickle_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(DataError, match="corrupt.pth.*not a readable torch checkpoint"):
        load_restorer("aodnet", corrupt)
    with pytest.raises(DataError, match="nope.pth.*not found"):
        load_restorer("aodnet", tmp_path / "nope.pth")
    empty = tmp_path / "empty.pth"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.pth"):
        load_restorer("aodnet", empty)

    torch.save(AODNet(), tmp_path / "module.pth")  # a whole nn.Module: needs pickle
    with pytest.raises(DataError, match=r"module.pth.*AODNet.*refuse"):
        load_restorer("aodnet", tmp_path / "module.pth")
    torch.save({"state_dict": AODNet().state_dict(), "extra": _Custom()}, tmp_path / "custom.pth")
    with pytest.raises(DataError, match=r"custom.pth.*_Custom.*refuse"):
        load_restorer("aodnet", tmp_path / "custom.pth")


@needs_real
def test_wrong_architecture_names_file_and_arch():
    with pytest.raises(DataError, match=r"easy.pt.*'aodnet'.*looks like a 'sci'.*missing keys: e_conv1"):
        load_restorer("aodnet", SCI_DIR / "easy.pt")


def test_shape_mismatch_and_wrong_arch_in_our_format(tmp_path):
    sd = AODNet().state_dict()
    sd["e_conv3.weight"] = torch.zeros(3, 6, 3, 3)
    torch.save(sd, tmp_path / "shape.pth")
    with pytest.raises(
        DataError, match=r"shape.pth.*'aodnet'.*e_conv3.weight \(3, 6, 3, 3\) vs \(3, 6, 5, 5\)"
    ):
        load_restorer("aodnet", tmp_path / "shape.pth")
    save_checkpoint(AODNet(), "aodnet", {}, tmp_path / "ours.pt")
    with pytest.raises(DataError, match=r"ours.pt.*'aodnet', not 'sci'"):
        load_restorer("sci", tmp_path / "ours.pt")


def test_registry_errors():
    with pytest.raises(ParamsError, match="unknown restorer 'nope'"):
        load_restorer("nope")
    with pytest.raises(ParamsError, match="needs a weights file"):
        load_restorer("aodnet", None)
    assert isinstance(load_restorer("dcp"), DCP)  # no weights needed


def test_save_checkpoint_roundtrip(tmp_path):
    model = AODNet(b=0.9).init_weights(torch.Generator().manual_seed(3))
    path = save_checkpoint(model, "aodnet", {"b": 0.9}, tmp_path / "sub" / "aod.pt")
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["arch"] == "aodnet" and raw["config"] == {"b": 0.9}
    assert [p.name for p in path.parent.iterdir()] == ["aod.pt"]  # no temporary left behind
    loaded = load_restorer("aodnet", path)
    assert loaded.b == 0.9
    want = model.state_dict()
    assert all(torch.equal(v, want[k]) for k, v in loaded.state_dict().items())
    # a loaded restorer runs in the CPU's channels_last layout; the checkpoint stays plain
    assert loaded.e_conv2.weight.is_contiguous(memory_format=torch.channels_last)
    again_path = save_checkpoint(loaded, "aodnet", {"b": 0.9}, tmp_path / "again.pt")
    again = torch.load(again_path, weights_only=True)
    assert all(v.is_contiguous() and torch.equal(v, want[k]) for k, v in again["state_dict"].items())
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        # the same weights through another convolution kernel: float32 sums of <= 12 x 49 terms
        torch.testing.assert_close(loaded(x), model.eval()(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="config value config.bad"):
        save_checkpoint(model, "aodnet", {"bad": Path("x")}, tmp_path / "x.pt")


# ---- every registered restorer ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RESTORERS))
def test_registered_restorer_contract(name):
    model = create_restorer(name)
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    y = model(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1
    assert not any(p.requires_grad for p in model.parameters())
    model.train()  # a parent switching to train mode must not unfreeze BatchNorm
    assert not model.training and not any(m.training for m in model.modules())


# ---- DCP ------------------------------------------------------------------------------


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def _synthetic_haze(t: float, a: tuple[float, float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """A clean image that obeys the dark channel prior (one zero channel per pixel) under
    a sky of colour A, and its hazy version I = J t + A (1 - t)."""
    g = torch.Generator().manual_seed(5)
    smooth = F.interpolate(torch.rand(1, 3, 16, 16, generator=g), size=(128, 128), mode="bilinear")
    clean = smooth * 0.8 + 0.1
    clean = clean.scatter(1, clean.argmin(1, keepdim=True), 0.0)
    air = torch.tensor(a)[None, :, None, None]
    clean[..., :24, :] = air  # sky: fully hazy, where DCP reads A
    return clean, clean * t + air * (1 - t)


def test_dcp_recovers_synthetic_haze():
    a = (0.9, 0.85, 0.8)
    clean, hazy = _synthetic_haze(0.4, a)
    inner = (..., slice(72, 120), slice(8, 120))  # away from the sky edge and the border
    exact = DCP(omega=1.0)
    assert torch.allclose(exact.estimate_airlight(hazy), torch.tensor([a]), atol=1e-6)
    assert (exact(hazy) - clean)[inner].abs().max().item() < 1e-3
    out = DCP()(hazy)  # omega = 0.95 keeps a little haze on purpose
    assert _psnr(out[inner], clean[inner]) > _psnr(hazy[inner], clean[inner]) + 15


def test_guided_filter_identities():
    g = torch.Generator().manual_seed(2)
    const = torch.full((1, 1, 20, 30), 0.37)
    assert torch.allclose(guided_filter(const, const, 4, 1e-3), const, atol=1e-6)
    x = torch.rand(1, 1, 20, 30, generator=g)
    assert torch.allclose(guided_filter(x, x, 3, 1e-9), x, atol=1e-4)  # a -> 1, b -> 0
    # Box filter: a window clipped at the border averages only real pixels.
    ref = F.avg_pool2d(F.pad(x, (2, 2, 2, 2)), 5, 1) / F.avg_pool2d(
        F.pad(torch.ones_like(x), (2, 2, 2, 2)), 5, 1
    )
    assert torch.allclose(box_filter(x, 2), ref, atol=1e-6)


@needs_real
@pytest.mark.parametrize("index", range(4))
def test_dcp_raises_contrast_on_real_fog(index):
    x = _real_image(REAL / "dawn_fog" / "JPEGImages", side=160, index=index)
    dcp = DCP()
    y = dcp(x)
    # DCP darkens overall (a known trait), so contrast is std relative to the mean.
    assert y.std() / y.mean() > 1.3 * x.std() / x.mean()
    # Haze lifts the dark channel; removing it brings the dark channel down.
    assert dcp.dark_channel(y, 7).mean() < 0.5 * dcp.dark_channel(x, 7).mean()


# ---- tiling ---------------------------------------------------------------------------


def test_tiled_equals_full_for_local_nets():
    g = torch.Generator().manual_seed(0)
    model = AODNet()
    for p in model.parameters():
        p.data = torch.randn(p.shape, generator=g) * 0.3
    model = model.eval().requires_grad_(False)
    x = torch.rand(1, 3, 300, 260, generator=g)
    with torch.no_grad():
        full = model(x)
        tiled = restore_tiled(model, x, tile=128, overlap=32)
    assert full.std().item() > 0.05  # the weights make a non-trivial image
    assert (tiled - full).abs().max().item() < 1e-5
    # Too small a margin shows the seams: the check above can fail.
    assert (restore_tiled(model, x, tile=128, overlap=32, margin=0) - full).abs().max().item() > 1e-3

    sci = create_restorer("sci")
    with torch.no_grad():
        assert (restore_tiled(sci, x * 0.3, tile=96, overlap=16) - sci(x * 0.3)).abs().max().item() < 1e-5


def test_tiled_dcp_shares_airlight():
    _, hazy = _synthetic_haze(0.5, (0.8, 0.8, 0.85))
    hazy = F.interpolate(hazy, size=(200, 180), mode="bilinear")
    dcp = DCP()
    with torch.no_grad():
        full = dcp(hazy)
        tiled = restore_tiled(dcp, hazy, tile=96, overlap=32)
    assert (tiled - full).abs().mean().item() < 0.01


# ---- folder ---------------------------------------------------------------------------


def test_folder_restorer(tmp_path):
    img = (np.arange(4 * 5 * 3) % 256).astype(np.uint8).reshape(4, 5, 3)
    save_png(img, tmp_path / "a.png")
    cv2.imwrite(str(tmp_path / "b.JPG"), img[:, :, ::-1])
    (tmp_path / "sub").mkdir()
    save_png(img, tmp_path / "sub" / "c.png")
    (tmp_path / "d.txt").write_text("not an image")
    save_png(img, tmp_path / ".e.png.tmp.png")  # an interrupted writer's temporary

    folder = FolderRestorer(tmp_path)
    assert folder.path_for("b") == tmp_path / "b.JPG"
    assert folder.path_for("sub/c") == tmp_path / "sub" / "c.png"
    assert np.array_equal(folder.load("a"), img)
    assert folder.check(["a", "d", "b", "e", "sub/c", "zz"]) == ["d", "e", "zz"]
    with pytest.raises(DataError, match=rf"{tmp_path}.*'zz'"):
        folder.load("zz")
    with pytest.raises(DataError, match=r"2 image id\(s\).*'d', 'zz'"):
        folder.require(["a", "d", "zz"])
    with pytest.raises(DataError, match="a.png.*5x4.*6x4"):
        restore_image(folder, np.zeros((4, 6, 3), np.uint8), "a")
    assert np.array_equal(restore_image(folder, np.zeros_like(img), "a"), img)
    with pytest.raises(DataError, match="not found"):
        FolderRestorer(tmp_path / "none").check(["a"])


def test_restore_image_runs_a_network():
    img = (np.random.default_rng(0).random((70, 90, 3)) * 255).astype(np.uint8)
    out = restore_image(create_restorer("identity"), img, "x", tile=32, overlap=8)
    assert np.array_equal(out, img)


# ---- SCI training ---------------------------------------------------------------------


def _smooth_reference(x: torch.Tensor, illu: torch.Tensor) -> torch.Tensor:
    """SCI's 24 smoothness terms: every neighbour q != p in the 5x5 window, both ways."""
    m = torch.tensor([[0.257, -0.148, 0.439], [0.504, -0.291, -0.368], [0.098, 0.439, -0.071]])
    yuv = torch.einsum("bchw,cd->bdhw", x, m) + torch.tensor([16.0, 128, 128])[None, :, None, None] / 255
    h, w = x.shape[-2:]
    total = 0.0
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            if dy == dx == 0:
                continue
            p = (..., slice(max(0, -dy), h - max(0, dy)), slice(max(0, -dx), w - max(0, dx)))
            q = (..., slice(max(0, dy), h + min(0, dy)), slice(max(0, dx), w + min(0, dx)))
            wgt = torch.exp(-((yuv[p] - yuv[q]) ** 2).sum(1) / 200)
            total = total + (wgt * (illu[p] - illu[q]).abs().sum(1)).mean()
    return total


def test_sci_loss_matches_24_term_formula():
    g = torch.Generator().manual_seed(4)
    x, illu = torch.rand(2, 3, 12, 10, generator=g), torch.rand(2, 3, 12, 10, generator=g)
    loss = SCILoss()
    want = 1.5 * ((illu - x) ** 2).mean() + _smooth_reference(x, illu)
    assert torch.allclose(loss(x, illu), want, atol=1e-6)
    assert torch.isfinite(SCILoss(ycbcr="sci_code")(x, illu))


def test_sci_training_reduces_loss_and_exports_enhance_only(tmp_path):
    torch.manual_seed(0)  # the modules' default initialisation before init_weights
    g = torch.Generator().manual_seed(0)
    model = SCITrain().init_weights(g)
    x = torch.rand(4, 3, 32, 32, generator=g) * 0.2  # dark
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = model.loss(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses

    model.eval()
    path = save_checkpoint(model, "sci", model.config, tmp_path / "sci.pt")
    assert any(k.startswith("calibrate.") for k in torch.load(path, weights_only=True)["state_dict"])
    infer = load_restorer("sci", path)
    assert isinstance(infer, SCI) and not any("calibrate" in k for k in infer.state_dict())
    with torch.no_grad():
        want = torch.clamp(x / model.enhance(x), 0, 1)
        assert torch.equal(infer(x), want)
        assert torch.equal(model.to_inference()(x), want)
    resumed = load_weights(SCITrain(), path, "sci")
    assert torch.equal(resumed.calibrate.out_conv[0].weight, model.calibrate.out_conv[0].weight)


def test_aodnet_init_starts_near_its_input():
    """The last bias at 1 makes J = K (I - 1) + b start near I (the public init starts at a
    white image, which a short training cannot bring back above the hazy input's PSNR)."""
    model = AODNet().init_weights(torch.Generator().manual_seed(0)).eval()
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - x).abs().mean() < 0.05  # white would be ~0.5 away
