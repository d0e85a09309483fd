"""vat/inputs.py and the inputs stage: which params name your files, and fingerprints that
change exactly when those files do."""

import json
import os
from pathlib import Path

import pytest
import yaml

from vat.inputs import CACHE, SECTIONS, fingerprint, section_paths, stage_paths


def _tree(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images/a.jpg").write_bytes(b"aaaa")
    (root / "images/b.jpg").write_bytes(b"bbbbbb")
    (root / "labels.txt").write_text("car\n")
    return root


def test_section_paths_name_only_the_users_files(tmp_path):
    assert section_paths("prepare", {"source": "embedded", "root": None}) == []
    assert section_paths("prepare", {"source": "voc", "root": "data/VOC"}) == ["data/VOC"]
    folder = {"degraded": "hazy", "clean": "clear", "val": {"root": "val"}, "test": None}
    got = section_paths("prepare", {"source": "folder", "root": "data/own", "folder": folder})
    assert got == ["data/own/hazy", "data/own/clear", "data/own/val"]  # not data/own: weights live there
    assert section_paths("train_restorer", {"arch": "aodnet", "weights": "r.pth", "folder": "x"}) == ["r.pth"]
    assert section_paths("train_restorer", {"arch": "folder", "weights": None, "folder": "out"}) == ["out"]
    own_yaml = tmp_path / "mine.yaml"
    own_yaml.write_text("nc: 1\n")
    td = {"weights": "d.pt", "model": str(own_yaml)}
    assert section_paths("train_detector", td) == ["d.pt", str(own_yaml)]
    assert section_paths("train_detector", {"weights": None, "model": "yolov8p.yaml"}) == []  # ships with vat


def test_stage_paths_follow_real_sets_and_classify_changes():
    params = {
        "prepare": {"source": "embedded", "root": None},
        "train_restorer": {"arch": "aodnet", "weights": None},
        "train_detector": {"weights": None, "model": "yolov8p.yaml"},
        "real": {
            "rtts": {"source": "voc", "root": "data/RTTS"},
            "fog": {"source": "embedded", "root": None},
            "off": None,
        },  # fmt: skip
        "classify": {
            "changes": {
                "prepare": {"source": "cifar10", "root": "data/cifar"},
                "train_detector": {"weights": "clip.pt"},
            }
        },  # fmt: skip
    }
    got = stage_paths(params)
    assert set(got) == set(SECTIONS)
    assert got["prepare"] == [] and got["real"] == ["data/RTTS"]
    assert got["classify"] == ["data/cifar", "clip.pt"]
    assert stage_paths(params | {"classify": None})["classify"] == []


def test_fingerprint_changes_with_content_names_and_files_not_with_nothing(tmp_path):
    root = _tree(tmp_path / "ds")
    cache = tmp_path / "cache.json"
    first = fingerprint([str(root)], cache)[str(root)]
    assert first["files"] == 3 and first["bytes"] == 14
    assert fingerprint([str(root)], cache)[str(root)] == first  # unchanged: the same
    f = root / "images/a.jpg"
    st = f.stat()
    f.write_bytes(b"abaa")  # same size, new content
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = fingerprint([str(root)], cache)[str(root)]
    assert second["md5"] != first["md5"] and second["bytes"] == first["bytes"]
    (root / "images/a.jpg").rename(root / "images/c.jpg")  # a renamed image changes it too
    assert fingerprint([str(root)], cache)[str(root)]["md5"] != second["md5"]
    assert fingerprint([str(tmp_path / "nope")], cache) == {str(tmp_path / "nope"): {"missing": True}}
    single = fingerprint([str(root / "labels.txt")], cache)[str(root / "labels.txt")]
    assert single["files"] == 1 and single["bytes"] == 4


def test_fingerprint_reads_a_file_again_only_when_its_size_or_time_changes(tmp_path):
    root = _tree(tmp_path / "ds")
    cache = tmp_path / "cache.json"
    fingerprint([str(root)], cache)
    data = json.loads(cache.read_text())
    key = str((root / "labels.txt").resolve())
    data[key][2] = "0" * 32  # what the cache says; a hash of the file would not be this
    cache.write_text(json.dumps(data))
    cached = fingerprint([str(root)], cache)[str(root)]["md5"]
    assert cached == fingerprint([str(root)], cache)[str(root)]["md5"]
    assert cached != fingerprint([str(root)], None)[str(root)]["md5"]  # without cache: read again
    cache.write_text("{not json")  # a broken cache is ignored and rewritten
    assert (
        fingerprint([str(root)], cache)[str(root)]["md5"] == fingerprint([str(root)], None)[str(root)]["md5"]
    )


def test_the_inputs_stage_writes_one_fingerprint_per_stage(tmp_path, monkeypatch):
    from stages import inputs
    from vat.layout import Layout

    monkeypatch.chdir(tmp_path)
    _tree(tmp_path / "voc")
    (tmp_path / "d.pt").write_bytes(b"weights")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "prepare": {"source": "voc", "root": "voc"}, "train_restorer": {"arch": "dcp", "weights": None},
        "train_detector": {"weights": "d.pt", "model": "x"}, "real": {}, "classify": None,
    }))  # fmt: skip
    layout = Layout(tmp_path / "data", tmp_path / "reports")
    prints = inputs.run(params, layout)
    for s in SECTIONS:
        assert json.loads((layout.out("inputs") / f"{s}.json").read_text()) == prints[s]
    assert prints["prepare"]["voc"]["files"] == 3 and prints["train_detector"]["d.pt"]["bytes"] == 7
    assert prints["real"] == {} and prints["classify"] == {}
    assert (layout.data / CACHE).is_file()


def test_section_paths_refuses_a_section_that_names_no_files():
    assert section_paths("prepare", None) == []  # a section set to null names nothing
    with pytest.raises(ValueError, match="unpaired"):
        section_paths("unpaired", {})
