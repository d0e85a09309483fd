"""Frozen classifier wrappers: gradients reach only the input, CLIP zero-shot, L_h, weights I/O."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn.functional as F
from conftest import f32_close
from torch import nn

import vat  # noqa: F401  (offline environment before open_clip is imported)
from vat.errors import DataError
from vat.models.classifier import SmallCNN, TorchClassifier, load_small_cnn, train_small_cnn
from vat.models.clip import CLIPClassifier

open_clip = pytest.importorskip("open_clip")

CLASSES = ["bicycle", "bus", "car", "motorbike", "person"]


def tiny_clip(seed: int = 0) -> nn.Module:
    """A random CLIP small enough for a unit test (about 1.6 M parameters, mostly token embeddings)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(
            embed_dim=16,
            vision_cfg=dict(image_size=32, patch_size=8, width=32, layers=2, head_width=16),
            text_cfg=dict(context_length=16, vocab_size=49408, width=32, heads=2, layers=2),
        )
        # Spread the logits so softmax is not flat (the init scale is log(1/0.07)).
        model.logit_scale.data.fill_(4.0)
    return model


def clip_classifier(**kw) -> CLIPClassifier:
    kw.setdefault("model", tiny_clip())
    return CLIPClassifier("tiny-test", CLASSES, **kw)


def rand_images(b: int = 3, size: int = 40, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, 3, size, size, generator=torch.Generator().manual_seed(seed))


def torch_classifier(image_size: int | None = 24) -> TorchClassifier:
    return TorchClassifier(SmallCNN(len(CLASSES), width=8, seed=0), CLASSES, image_size=image_size)


@pytest.fixture(scope="module")
def clip() -> CLIPClassifier:
    return clip_classifier()


# ------------------------------------------------------------------ frozen: gradients and BatchNorm


@pytest.mark.parametrize("kind", ["clip", "torch"])
def test_gradient_reaches_input_only(kind, clip):
    clf = clip if kind == "clip" else torch_classifier()
    images = rand_images().requires_grad_(True)
    soft = torch.softmax(torch.randn(3, len(CLASSES), generator=torch.Generator().manual_seed(1)), -1)
    clf.loss(images, soft).backward()
    assert images.grad is not None and images.grad.abs().sum() > 0
    assert all(not p.requires_grad and p.grad is None for p in clf.parameters())
    assert not clf.training and not any(m.training for m in clf.modules())


@pytest.mark.parametrize("kind", ["clip", "torch"])
def test_checkpointed_forward_gives_the_same_loss_and_gradient(kind, clip, monkeypatch):
    clf = clip if kind == "clip" else torch_classifier()
    soft = torch.softmax(torch.randn(3, len(CLASSES), generator=torch.Generator().manual_seed(1)), -1)
    calls = []
    forward = clf._forward
    monkeypatch.setattr(clf, "_forward", lambda x: calls.append(1) or forward(x))
    results = []
    for ckpt in (False, True):
        monkeypatch.setattr(clf, "checkpoint", ckpt)
        calls.clear()
        images = rand_images().requires_grad_(True)
        loss = clf.loss(images, soft)
        loss.backward()
        assert len(calls) == 1 + ckpt  # checkpointed: the forward runs again in backward
        results.append((loss.detach(), images.grad))
    (l0, g0), (l1, g1) = results
    assert torch.equal(l0, l1) and f32_close(g0, g1, terms=g0[0].numel())  # input grads sum over pixels


@pytest.mark.parametrize("kind", ["clip", "torch"])
def test_losses_of_several_calls_run_one_forward_and_equal_separate_calls(kind, clip, monkeypatch):
    clf = clip if kind == "clip" else torch_classifier()
    gen = torch.Generator().manual_seed(3)
    soft = [torch.softmax(torch.randn(b, len(CLASSES), generator=gen), -1) for b in (3, 2)]
    weights = torch.tensor([0.5, 0.0, 1.0])
    x1, x2 = rand_images(3, seed=1), rand_images(2, seed=2)
    separate = []
    for x, y, w in ((x1, soft[0], weights), (x2, soft[1], None)):
        x = x.clone().requires_grad_(True)
        loss = clf.loss(x, y, w)
        loss.backward()
        separate.append((loss.detach(), x.grad))
    calls = []
    forward = clf._forward
    monkeypatch.setattr(clf, "_forward", lambda x: calls.append(x.shape[0]) or forward(x))
    a, b = x1.clone().requires_grad_(True), x2.clone().requires_grad_(True)
    got = clf.losses([(a, soft[0], weights), (b, soft[1])])
    assert calls == [5]
    sum(got).backward()
    for (loss, grad), lo, x in zip(separate, got, (a, b), strict=True):
        torch.testing.assert_close(lo.detach(), loss, rtol=1e-5, atol=1e-7)
        # batched: other summation order (#19 item 12: atol 1e-8 failed at 1.14e-8 on a clean clone)
        assert f32_close(x.grad, grad, terms=grad[0].numel(), rtol=1e-4)
    calls.clear()
    clf.losses([(x1, soft[0]), (rand_images(2, size=32), soft[1])])  # different sizes: one forward each
    assert calls == [3, 2]


def test_batchnorm_statistics_never_move():
    clf = torch_classifier()
    parent = nn.ModuleDict({"translator": nn.Conv2d(3, 3, 1), "d": clf})
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    parent.train()  # a training loop switches its whole module tree to train mode
    assert parent["translator"].training and not clf.training
    assert not any(m.training for m in clf.modules())
    # Inputs far from anything seen would shift the running mean at once in train mode.
    images = (rand_images(4, 24) * 0.1 + 0.9).requires_grad_(True)
    soft = F.one_hot(torch.tensor([0, 1, 2, 3]), len(CLASSES)).float()
    clf.loss(images, soft).backward()
    clf.predict(images)
    after = clf.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


# ------------------------------------------------------------------ CLIP zero-shot


def test_clip_logits_shape_and_contract(clip):
    logits = clip.logits(rand_images(2, 50))  # any input size: resized to the model's 32 px
    assert logits.shape == (2, len(CLASSES)) and torch.isfinite(logits).all()
    out = clip.predict(rand_images(2, 50))
    assert out.probs.shape == (2, len(CLASSES))
    assert torch.allclose(out.probs.sum(-1), torch.ones(2))
    assert out.labels.shape == (2,) and out.labels.dtype == torch.long
    assert torch.equal(out.labels, out.probs.argmax(-1))
    assert out.features.shape == (2, 16)
    assert torch.allclose(out.features.norm(dim=-1), torch.ones(2), atol=1e-5)
    assert clip.pretrained is False
    # Normalisation uses CLIP's own statistics, not ImageNet's or none.
    assert torch.allclose(clip.mean.flatten(), torch.tensor(open_clip.OPENAI_DATASET_MEAN))


def test_resize_modes_on_a_wide_image():
    wide = torch.rand(1, 3, 32, 64).requires_grad_(True)
    squash = clip_classifier(resize_mode="squash")
    squash.logits(wide).sum().backward()
    assert wide.grad[..., :4].abs().sum() > 0  # every pixel reaches the model
    wide.grad = None
    crop = clip_classifier(resize_mode="shortest")  # open_clip's eval transform: centre crop
    assert crop.preprocess(wide).shape == (1, 3, 32, 32)
    crop.logits(wide).sum().backward()
    assert wide.grad[..., :16].abs().sum() == 0 and wide.grad[..., 16:48].abs().sum() > 0


def test_clip_logits_are_scaled_cosines(clip):
    images = rand_images(2, 32)  # already at the model size: no resize
    x = (images - torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        open_clip.OPENAI_DATASET_STD
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        img = F.normalize(clip.model.encode_image(x), dim=-1)
        expected = clip.model.logit_scale.exp() * img @ clip.text_features.T
    assert torch.allclose(clip.logits(images), expected, atol=1e-5)


def test_text_embeddings_computed_once():
    model = tiny_clip()
    calls = []
    original = model.encode_text

    def counting(text, normalize=False):
        calls.append(len(text))
        return original(text, normalize=normalize)

    model.encode_text = counting
    clf = CLIPClassifier(
        "tiny-test", CLASSES, model=model, prompts=("a photo of a {}.", "a dark photo of a {}.")
    )
    assert calls == [2 * len(CLASSES)]  # every prompt of every class in one batch, at init
    images = rand_images(2, 32)
    clf.logits(images)
    clf.predict(images)
    clf.loss(images, torch.full((2, len(CLASSES)), 1 / len(CLASSES)))
    assert len(calls) == 1


def test_prompts_are_averaged():
    prompts = ("a photo of a {}.", "a blurry photo of a {}.")
    clf = clip_classifier(prompts=prompts)
    tok = open_clip.SimpleTokenizer(context_length=16)
    with torch.no_grad():
        for k, name in enumerate(CLASSES):
            a = F.normalize(clf.model.encode_text(tok([prompts[0].format(name)])), dim=-1)
            b = F.normalize(clf.model.encode_text(tok([prompts[1].format(name)])), dim=-1)
            expected = F.normalize(a + b, dim=-1)[0]
            assert torch.allclose(clf.text_features[k], expected, atol=1e-5)
    single = clip_classifier(prompts=prompts[:1])
    assert not torch.allclose(single.text_features, clf.text_features)


# ------------------------------------------------------------------ L_h: soft cross-entropy, weights


def test_soft_cross_entropy_matches_torch_for_one_hot(clip):
    images = rand_images(4, 32)
    labels = torch.tensor([0, 3, 4, 1])
    expected = F.cross_entropy(clip.logits(images), labels)
    got = clip.loss(images, F.one_hot(labels, len(CLASSES)).float())
    assert torch.allclose(got, expected, atol=1e-6)


@pytest.mark.parametrize("reduction", ["count", "weight"])
def test_zero_weight_equals_removing_the_sample(clip, reduction):
    images = rand_images(4, 32)
    soft = torch.softmax(torch.randn(4, len(CLASSES), generator=torch.Generator().manual_seed(2)) * 3, -1)
    w = torch.tensor([1.0, 0.0, 1.0, 1.0])
    keep = torch.tensor([0, 2, 3])
    got = clip.loss(images, soft, w, reduction=reduction)
    assert torch.allclose(got, clip.loss(images[keep], soft[keep]), atol=1e-6)
    # non-uniform weights: "count" scales absolutely, "weight" is a weighted mean
    w2 = torch.tensor([0.5, 0.0, 1.0, 0.5])
    per = torch.stack([clip.loss(images[i : i + 1], soft[i : i + 1]) for i in range(4)])
    denom = 3.0 if reduction == "count" else 2.0
    assert torch.allclose(
        clip.loss(images, soft, w2, reduction=reduction), (w2 * per).sum() / denom, atol=1e-6
    )


def test_all_zero_weights_give_zero_with_graph():
    clf = torch_classifier()
    images = rand_images(2, 24).requires_grad_(True)
    loss = clf.loss(images, torch.full((2, len(CLASSES)), 0.2), torch.zeros(2))
    assert loss.item() == 0.0 and loss.requires_grad
    loss.backward()
    assert images.grad is not None and torch.isfinite(images.grad).all()


# ------------------------------------------------------------------ weights files


def test_missing_weights_file_says_what_to_download(tmp_path):
    path = tmp_path / "models" / "clip-vit-b-32.bin"
    with pytest.raises(DataError) as err:
        CLIPClassifier(
            "ViT-B-32", CLASSES, weights=path, model=tiny_clip(), pretrained_tag="laion2b_s34b_b79k"
        )
    msg = str(err.value)
    assert str(path) in msg and "download" in msg.lower() and f"put the file at {path}" in msg
    assert "ViT-B-32" in msg and "laion2b_s34b_b79k" in msg and "huggingface.co/laion/" in msg
    assert "params.yaml" in msg


def test_missing_weights_without_tag_lists_tags(tmp_path):
    with pytest.raises(DataError, match="openai"):
        CLIPClassifier("ViT-B-32", CLASSES, weights=tmp_path / "w.pt", model=tiny_clip())


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 10, b"PK\x03\x04 truncated zip"])
def test_corrupt_weights_file_is_a_data_error(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=str(path)):
        clip_classifier(weights=path)


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": tiny_clip().state_dict(), "hook": time.sleep}, path)  # not weights-only
    with pytest.raises(DataError, match=str(path)):
        clip_classifier(weights=path)


def test_wrong_architecture_weights_is_a_data_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    with pytest.raises(DataError, match="do not fit"):
        clip_classifier(weights=path)


@pytest.mark.parametrize("fmt", ["pt_state_dict", "pt_checkpoint", "safetensors"])
def test_clip_weights_round_trip(tmp_path, fmt):
    source = CLIPClassifier("tiny-test", CLASSES, model=tiny_clip(seed=1))
    state = tiny_clip(seed=1).state_dict()
    if fmt == "safetensors":
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    elif fmt == "pt_checkpoint":  # an open_clip training checkpoint: DDP prefixes, extra keys
        path = tmp_path / "epoch_1.pt"
        torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    else:
        path = tmp_path / "w.pt"
        torch.save(state, path)
    loaded = CLIPClassifier("tiny-test", CLASSES, weights=path, model=tiny_clip(seed=2))
    assert loaded.pretrained is True
    images = rand_images(2, 32)
    assert torch.allclose(loaded.logits(images), source.logits(images), atol=1e-6)
    assert not torch.allclose(clip_classifier(model=tiny_clip(seed=2)).logits(images), source.logits(images))


# ------------------------------------------------------------------ small CNN


def colour_task(n: int = 96, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Class = the dominant colour channel; uint8 NHWC like decoded crops."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 3
    images = torch.rand(n, size, size, 3, generator=g) * 0.5
    images[torch.arange(n), :, :, labels] += 0.5
    return (images * 255).round().to(torch.uint8), labels


def test_small_cnn_learns_and_is_deterministic():
    images, labels = colour_task()
    start = time.perf_counter()
    models = []
    for _ in range(2):
        model = SmallCNN(3, width=8, seed=3)
        history = train_small_cnn(model, images, labels, epochs=4, lr=1e-2, batch_size=32, seed=7)
        models.append(model)
    assert time.perf_counter() - start < 20
    assert len(history) == 4 and history[-1]["loss"] < history[0]["loss"]
    clf = TorchClassifier(models[0], ["red", "green", "blue"])
    accuracy = (clf.predict(images.permute(0, 3, 1, 2)).labels == labels).float().mean()
    assert accuracy > 0.9
    a, b = models[0].state_dict(), models[1].state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other = SmallCNN(3, width=8, seed=3)
    train_small_cnn(other, images, labels, epochs=1, lr=1e-2, batch_size=32, seed=8)
    c = SmallCNN(3, width=8, seed=3)
    train_small_cnn(c, images, labels, epochs=1, lr=1e-2, batch_size=32, seed=7)
    assert not torch.equal(other.head.weight, c.head.weight)


def test_small_cnn_leaves_global_rng_alone():
    images, labels = colour_task(n=16)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_small_cnn(SmallCNN(3, width=4, seed=0), images, labels, epochs=1, lr=1e-2, batch_size=8, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_torch_classifier_save_load_round_trip(tmp_path):
    clf = torch_classifier(image_size=24)
    path = tmp_path / "cnn" / "classifier.pt"
    clf.save(path)
    assert not list(path.parent.glob(".*tmp*"))  # atomic write leaves no temporary file
    loaded = TorchClassifier.load(path)
    assert loaded.classes == CLASSES and loaded.image_size == 24
    images = rand_images(2, 40)
    assert torch.equal(loaded.logits(images), clf.logits(images))
    payload = torch.load(path, weights_only=True)
    assert payload["arch"] == "small_cnn" and payload["config"]["width"] == 8


def test_torch_classifier_bad_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        TorchClassifier.load(tmp_path / "nope.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    with pytest.raises(DataError, match=str(bad)):
        load_small_cnn(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(DataError, match="not a vat classifier"):
        load_small_cnn(foreign)
