"""YOLOv5Detector's files: the repository's pickled checkpoints through our restricted unpickler
(written by the reference code, under the repository's and the PyPI package's module names),
foreign objects refused and never run, the plain weights-only file, our own format,
:func:`load_detector`'s choice of family, bad files, and the detector benchmark."""

from __future__ import annotations

import contextlib
import os
import sys
from copy import deepcopy
from pathlib import Path

import numpy as np
import pytest
import torch
from test_yolov5 import NC, REF, _images, _lively, _reference_model, _targets, needs_reference
from torch import nn

from vat.errors import DataError
from vat.models.detectors import FrozenDetector, YOLOv5Detector, load_detector, save_detector
from vat.models.detectors.yolov5_loss import train_hyp
from vat.models.detectors.yolov5_net import YOLOv5Model, load_yolov5_yaml

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def det() -> YOLOv5Detector:
    return _lively()


@contextlib.contextmanager
def _module_names(root: str):
    """Pickle the reference's classes under ``root`` (``models``: the repository's names,
    ``models.yolo.DetectionModel``; ``yolov5.models``: the PyPI package's own)."""
    if root == "yolov5.models":
        yield
        return
    mods = {f"{root}.yolo": REF.yolo, f"{root}.common": REF.common}
    renamed = []
    sys.modules[root] = sys.modules["yolov5.models"]
    sys.modules.update(mods)
    for name, mod in mods.items():
        for cls in vars(mod).values():
            if isinstance(cls, type) and cls.__module__ == mod.__name__:
                renamed.append((cls, cls.__module__))
                cls.__module__ = name
    try:
        yield
    finally:
        for cls, module in renamed:
            cls.__module__ = module
        for name in (root, *mods):
            sys.modules.pop(name, None)


def _repository_file(
    d: YOLOv5Detector, path: Path, root: str = "models", names: list[str] | None = None, **extra
) -> nn.Module:
    """A checkpoint as YOLOv5's train.py writes it, by the reference code; returns its model."""
    ref = _reference_model(d)
    if names is not None:
        ref.names = list(names)
    ref.hyp = train_hyp(NC, 3, 96, {"box": 0.06})
    ckpt = {
        "epoch": 1,
        "best_fitness": np.array([0.5]),
        "model": deepcopy(ref).half(),
        "ema": None,
        "updates": 7,
        "optimizer": None,
        "opt": {"imgsz": 96, "epochs": 3, "weights": "yolov5n.pt", "hyp": {"box": 0.05}},
        "git": {"remote": "https://github.com/ultralytics/yolov5", "branch": "master"},
        "date": "2024-01-01T00:00:00",
        **extra,
    }
    with _module_names(root):
        torch.save(ckpt, path)
    return ckpt["model"].float()


@needs_reference
@pytest.mark.parametrize("root", ["models", "yolov5.models"])
def test_repository_checkpoint_loads_through_the_restricted_unpickler(det, tmp_path, root):
    path = tmp_path / "best.pt"
    ref = _repository_file(det, path, root)
    assert f"{root}.yolo.DetectionModel" in torch.serialization.get_unsafe_globals_in_checkpoint(path)
    back = load_detector(path)
    assert isinstance(back, YOLOv5Detector) and back.imgsz == 96 and back.names == [str(i) for i in range(NC)]
    assert back.hyp["box"] == pytest.approx(0.06) and back.hyp["obj"] == pytest.approx(0.0225)
    x = det.letterbox(_images(seed=8))[0]
    with torch.no_grad():
        expect = ref(x)[1]
        got = back._raw(x)
    for a, b in zip(got, expect, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5 * float(b.abs().max()))
    assert all(p.dtype == torch.float32 and not p.requires_grad for p in back.parameters())


class _Payload:
    """A pickled call of ``fn(*args)``: what a malicious checkpoint runs when unpickled."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _foreign(kind: str, marker: Path):
    import collections

    return {
        "os.system": _Payload(os.system, f"touch {marker}"),
        "builtins.eval": _Payload(eval, f"open({str(marker)!r}, 'w').close()"),
        "builtins.getattr": _Payload(getattr, Path(marker), "touch"),
        "collections.Counter": collections.Counter(a=1),
    }[kind]


CALLS = ["os.system", "builtins.eval", "builtins.getattr"]


@pytest.mark.parametrize(
    ("where", "kind"),
    [("alone", k) for k in CALLS]
    + [(w, k) for w in ("beside the model", "inside the model") for k in [*CALLS, "collections.Counter"]],
)
def test_foreign_objects_are_refused_and_never_run(det, tmp_path, where, kind):
    """Each call would create ``marker`` if it ran. "alone": in a checkpoint dict without a model
    (no reference needed; load_detector hands such a file to FrozenDetector, which refuses it
    too); otherwise beside or inside a YOLOv5 model pickled by the reference. A Counter alone
    is not refused: torch's weights-only loader reads it as data."""
    marker = tmp_path / "pwned"
    path = tmp_path / "tampered.pt"
    payload = _foreign(kind, marker)
    if where != "alone" and isinstance(REF, str):
        pytest.skip(REF)
    if where == "alone":
        torch.save({"epoch": 1, "extra": payload}, path)
    elif where == "beside the model":
        _repository_file(det, path, extra={"extra": payload})
    else:
        ref = _reference_model(det)
        ref.evil = payload
        with _module_names("models"):
            torch.save({"model": ref, "epoch": 1}, path)
    name = {"os.system": os.system.__module__ + ".system"}.get(kind, kind)  # posix.system on Linux
    for load in (YOLOv5Detector,) if where == "alone" else (YOLOv5Detector, load_detector):
        with pytest.raises(DataError, match=rf"tampered\.pt.*refusing to unpickle '{name}'"):
            load(path)
    if where == "alone":
        with pytest.raises(DataError, match=r"tampered\.pt.*refusing to unpickle"):
            load_detector(path)
    assert not marker.exists()


def test_plain_weights_file_loads_weights_only_with_fp16(det, tmp_path):
    path = tmp_path / "plain.pt"
    sd = {k: v.half() if v.is_floating_point() else v for k, v in det.model.state_dict().items()}
    torch.save(
        {"state_dict": sd, "yaml": det.model.yaml, "names": list("abcde"), "stride": det.model.stride}, path
    )
    assert torch.load(path, weights_only=True)["state_dict"]["model.0.conv.weight"].dtype == torch.float16
    back = load_detector(path, imgsz=96)
    assert isinstance(back, YOLOv5Detector) and back.names == list("abcde")
    expect = YOLOv5Model(det.model.yaml)
    expect.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in sd.items()})
    x = det.letterbox(_images(seed=9))[0]
    with torch.no_grad():
        for a, b in zip(back._raw(x), expect.eval()(x), strict=True):
            assert torch.equal(a, b)


def test_our_format_round_trips_exactly(det, tmp_path):
    path = tmp_path / "d" / "det.pt"
    save_detector(det, path)
    raw = torch.load(path, weights_only=True)
    assert raw["arch"] == "yolov5" and raw["names"] == det.names
    back = load_detector(path)
    assert isinstance(back, YOLOv5Detector)
    assert (back.names, back.imgsz, back.stride, back.hyp) == (det.names, det.imgsz, det.stride, det.hyp)
    x = _images(seed=7)
    for a, b in zip(det.predict(x, conf=0.2), back.predict(x, conf=0.2), strict=True):
        assert torch.equal(a.boxes, b.boxes) and torch.equal(a.features, b.features)
    assert torch.equal(det.loss(x, _targets())[0], back.loss(x, _targets())[0])
    with pytest.raises(
        DataError, match="det.pt: not a detector checkpoint: it holds a checkpoint of arch 'yolov5'"
    ):
        FrozenDetector(path)


def test_load_detector_picks_the_family(tmp_path):
    assert isinstance(load_detector("yolov5:yolov5n.yaml", nc=NC), YOLOv5Detector)
    assert isinstance(load_detector(load_yolov5_yaml("yolov5n.yaml")), YOLOv5Detector)
    v8 = load_detector("yolov8n.yaml", nc=NC, imgsz=64)
    assert isinstance(v8, FrozenDetector)
    ours, pickled = tmp_path / "ours.pt", tmp_path / "ultralytics.pt"
    save_detector(v8, ours)
    torch.save({"model": deepcopy(v8.model)}, pickled)
    assert isinstance(load_detector(ours), FrozenDetector) and isinstance(
        load_detector(pickled), FrozenDetector
    )


def test_bad_files_raise_data_error_naming_the_file(det, tmp_path):
    good = tmp_path / "good.pt"
    save_detector(det, good)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 64)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    mismatched = tmp_path / "mismatched.pt"
    ckpt = torch.load(good, weights_only=True)
    ckpt["state_dict"] = dict(list(ckpt["state_dict"].items())[:-3])
    torch.save(ckpt, mismatched)
    names = tmp_path / "names.pt"
    torch.save({**torch.load(good, weights_only=True), "names": ["a"]}, names)
    for path in (garbage, truncated, mismatched, names, tmp_path / "missing.pt"):
        with pytest.raises(DataError, match=path.name):
            YOLOv5Detector(path)
    with pytest.raises(DataError, match="nc=5"):
        YOLOv5Detector(good, nc=3)


def test_bench_detectors_runs():
    from vat.bench.detector import bench_detectors

    rows = bench_detectors(size=64, batch=1, steps=1, warmup=0)
    assert len(rows) == 3
    for r in rows:
        assert "skipped" in r or (r["predict_img_s"] > 0 and r["loss_img_s"] > 0)
    assert "skipped" not in rows[0] and "skipped" not in rows[2]
