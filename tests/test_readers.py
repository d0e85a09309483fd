"""Dataset readers: real samples (skipped when absent) and generated bad inputs."""

from __future__ import annotations

import csv
import json
import os
import pickle
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from vat.data.classes import KNOWN_NAMES, TASK_CLASSES
from vat.data.readers import FORMATS, read_dataset
from vat.data.readers.common import clip_box
from vat.data.readers.frames import turn_box
from vat.errors import DataError, ParamsError
from vat.io import load_rgb

HAZE = TASK_CLASSES["haze"]
DARK = TASK_CLASSES["dark"]
CIFAR = TASK_CLASSES["classify"]


def real(name: str) -> Path:
    base = Path(os.environ.get("VAT_REAL_DATA") or Path(__file__).resolve().parents[2] / "shared" / "real")
    path = base / name
    if not path.is_dir():
        pytest.skip(f"real sample {path} not present")
    return path


def read(fmt, root, classes=HAZE, tmp=None, **kw):
    kw.setdefault("seed", 0)
    kw.setdefault("convert_dir", Path(tmp or root) / "_converted")
    return read_dataset(fmt, root, classes, **kw)


def rgb(w: int, h: int, color=(90, 120, 150)) -> Image.Image:
    return Image.new("RGB", (w, h), color)


def voc_xml(path: Path, filename: str, objects, size=None) -> None:
    """objects: (name, xmin, ymin, xmax, ymax[, difficult]) in VOC 1-based pixels."""
    parts = [f"<annotation><filename>{filename}</filename>"]
    if size:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for o in objects:
        diff = o[5] if len(o) > 5 else 0
        parts.append(
            f"<object><name>{o[0]}</name><difficult>{diff}</difficult><bndbox><xmin>{o[1]}</xmin>"
            f"<ymin>{o[2]}</ymin><xmax>{o[3]}</xmax><ymax>{o[4]}</ymax></bndbox></object>"
        )
    parts.append("</annotation>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts))


def voc_dataset(root: Path, entries: dict) -> Path:
    """entries: stem -> (PIL image | bytes | None, objects[, size]); writes JPEGImages/ + Annotations/."""
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for stem, entry in entries.items():
        image, objects = entry[0], entry[1]
        size = entry[2] if len(entry) > 2 else None
        ext = ".png" if isinstance(image, Image.Image) and image.mode not in ("RGB", "CMYK") else ".jpg"
        if isinstance(image, Image.Image):
            image.save(root / "JPEGImages" / f"{stem}{ext}")
        elif isinstance(image, bytes):
            (root / "JPEGImages" / f"{stem}{ext}").write_bytes(image)
        voc_xml(root / "Annotations" / f"{stem}.xml", f"{stem}{ext}", objects, size)
    return root


def by_id(manifest):
    return {r.image_id: r for r in manifest.records}


# ---------------------------------------------------------------- real samples


def test_voc_sample_counts_boxes_and_ignored(tmp_path):
    root = real("voc2012_sample")
    with_task, dogs = 0, 0
    for xml in (root / "Annotations").glob("*.xml"):
        names = [o.findtext("name") for o in ET.parse(xml).getroot().findall("object")]
        with_task += any(n in HAZE for n in names)
        dogs += names.count("dog")
    manifest, report = read("voc", root, tmp=tmp_path, keep_empty=False)
    assert report.n_images == len(manifest.records) == with_task == 49
    assert report.n_empty_dropped == len(list((root / "Annotations").glob("*.xml"))) - with_task
    assert report.ignored_classes["dog"] == dogs > 0
    assert not report.unknown_classes and not report.converted
    person = by_id(manifest)["2007_000027"]
    # VOC <xmin>174 <ymin>101 <xmax>349 <ymax>351 (1-based inclusive) -> 0-based edges.
    assert [(b.cls, b.x1, b.y1, b.x2, b.y2) for b in person.boxes] == [
        (HAZE.index("person"), 173, 100, 349, 351)
    ]
    assert (person.width, person.height) == (486, 500)
    assert person.path == str(root / "JPEGImages" / "2007_000027.jpg")
    assert any(b.difficult for r in manifest.records for b in r.boxes)


def test_dawn_aliases_motorcycle_and_reports_truck(tmp_path):
    root = real("dawn_fog")
    names = Counter(
        o.findtext("name")
        for xml in (root / "Annotations").glob("*.xml")
        for o in ET.parse(xml).getroot().findall("object")
    )
    manifest, report = read("voc", root, tmp=tmp_path)
    assert report.class_counts["motorbike"] == names["motorcycle"] > 0
    assert "motorcycle" not in report.unknown_classes and "motorcycle" not in report.ignored_classes
    # truck is in no detection dataset's class list we know: reported as unknown.
    assert "truck" not in KNOWN_NAMES and "truck" not in report.ignored_classes
    assert report.unknown_classes["truck"] == names["truck"] > 0
    assert report.n_images == 160 and report.n_boxes == sum(names.values()) - names["truck"]


def test_dawn_yolo_variant_agrees_with_xml(tmp_path):
    root = real("dawn_fog")
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "images").symlink_to(root / "JPEGImages", target_is_directory=True)
    (ds / "labels").symlink_to(root / "labels_yolo", target_is_directory=True)
    names = {1: "person", 2: "bicycle", 3: "car", 4: "motorcycle", 6: "bus", 8: "truck"}
    (ds / "data.yaml").write_text(json.dumps({"path": ".", "train": "images", "names": names}))
    yolo, yolo_report = read("yolo", ds, tmp=tmp_path)
    xml, xml_report = read("voc", root, tmp=tmp_path)
    assert yolo_report.class_counts == xml_report.class_counts
    xml_by_id = by_id(xml)
    assert set(by_id(yolo)) == set(xml_by_id)
    for rec in yolo.records:
        a = sorted((b.cls, b.x1, b.y1, b.x2, b.y2) for b in rec.boxes)
        b = sorted((b.cls, b.x1, b.y1, b.x2, b.y2) for b in xml_by_id[rec.image_id].boxes)
        assert len(a) == len(b)
        assert np.abs(np.array(a, float) - np.array(b, float)).max(initial=0) <= 2.0, rec.image_id
    assert {r.split for r in yolo.records} == {"train", "val", "test"}  # train only -> ratios


def test_exdark_sample_names_and_splits(tmp_path):
    root = real("exdark_mini")
    expected_split = {}
    for line in (root / "imageclasslist_subset.txt").read_text().splitlines()[1:]:
        parts = line.split()
        expected_split[Path(parts[0]).stem] = {"1": "train", "2": "val", "3": "test"}[parts[4]]
    names = Counter(
        o.findtext("name")
        for xml in (root / "Annotations_xml").glob("*.xml")
        for o in ET.parse(xml).getroot().findall("object")
    )
    manifest, report = read("exdark", root, DARK, tmp=tmp_path)
    assert {r.image_id: r.split for r in manifest.records} == expected_split
    assert report.class_counts["person"] == names["People"] > 0
    assert report.class_counts["motorbike"] == names["Motorbike"] > 0
    assert report.n_boxes == sum(names.values())
    assert not report.unknown_classes and not report.ignored_classes


def test_cifar10_folder_with_labels_csv(tmp_path):
    root = real("cifar10_test")
    with open(root / "labels.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    manifest, report = read("cifar10", root, CIFAR, tmp=tmp_path, task_kind="classify")
    assert report.n_images == len(manifest.records) == len(rows) == 200
    got = {r.image_id: CIFAR[r.label] for r in manifest.records}
    assert got == {Path(row["filename"]).stem: row["label_name"] for row in rows}
    assert all(r.boxes == [] and (r.width, r.height) == (32, 32) for r in manifest.records)


# ---------------------------------------------------------------- generated formats


def test_cifar10_python_batches_round_trip(tmp_path):
    rng = np.random.default_rng(1)
    batches = tmp_path / "cifar" / "cifar-10-batches-py"
    batches.mkdir(parents=True)
    images = {}
    for name, labels in (("data_batch_1", [0, 9, 3, 3, 5, 1]), ("test_batch", [9, 2])):
        data = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
        with open(batches / name, "wb") as f:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, f, protocol=2)
        for i, label in enumerate(labels):
            images[f"{name}_{i:05d}"] = (data[i].reshape(3, 32, 32).transpose(1, 2, 0), label, name)
    with open(batches / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [n.encode() for n in CIFAR]}, f, protocol=2)
    manifest, report = read("cifar10", tmp_path / "cifar", CIFAR, tmp=tmp_path, task_kind="classify")
    assert report.n_images == len(images) == 8
    for r in manifest.records:
        pixels, label, batch = images[r.image_id]
        assert np.array_equal(load_rgb(r.path), pixels)
        assert r.label == label
        assert (r.split == "test") == (batch == "test_batch")
        assert Path(r.path).parent == tmp_path / "_converted"


def test_cifar10_class_folders(tmp_path):
    for split, cls in (("train", "cat"), ("train", "ship"), ("test", "cat")):
        (tmp_path / "c" / split / cls).mkdir(parents=True)
        rgb(32, 32).save(tmp_path / "c" / split / cls / "0001.png")
    manifest, _ = read("cifar10", tmp_path / "c", CIFAR, tmp=tmp_path, task_kind="classify")
    got = {r.image_id: (CIFAR[r.label], r.split) for r in manifest.records}
    assert got["test_cat_0001"] == ("cat", "test")
    assert got["train_ship_0001"][0] == "ship" and got["train_ship_0001"][1] in ("train", "val")
    assert len(got) == 3


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.getcwd, ())

    batches = tmp_path / "cifar-10-batches-py"
    batches.mkdir()
    (batches / "test_batch").write_bytes(pickle.dumps({b"data": Evil(), b"labels": [0]}))
    with pytest.raises(DataError, match="test_batch.*refusing"):
        read("cifar10", tmp_path, CIFAR, task_kind="classify")


def test_coco_json_crowd_and_foreign_category(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    rgb(100, 80).save(root / "images" / "a.jpg")
    rgb(50, 40).save(root / "images" / "b.jpg")
    data = {
        "images": [
            {"id": 7, "file_name": "a.jpg", "width": 100, "height": 80},
            {"id": 8, "file_name": "b.jpg", "width": 50, "height": 40},
        ],
        "categories": [
            {"id": 1, "name": "person"},
            {"id": 3, "name": "car"},
            {"id": 18, "name": "dog"},
            {"id": 24, "name": "Zebra"},
        ],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 1, "bbox": [10.5, 20, 30, 40], "iscrowd": 0},
            {"id": 2, "image_id": 7, "category_id": 3, "bbox": [0, 0, 50, 50], "iscrowd": 1},
            {"id": 3, "image_id": 7, "category_id": 18, "bbox": [1, 1, 5, 5], "iscrowd": 0},
            {"id": 4, "image_id": 8, "category_id": 3, "bbox": [40, 30, 20, 20]},  # clipped to 50x40
            {"id": 5, "image_id": 8, "category_id": 24, "bbox": [1, 1, 5, 5]},
        ],
    }
    (root / "ann.json").write_text(json.dumps(data))
    manifest, report = read("coco", root, tmp=tmp_path, annotations="ann.json")
    recs = by_id(manifest)
    assert [(b.cls, b.x1, b.y1, b.x2, b.y2) for b in recs["a"].boxes] == [
        (HAZE.index("person"), 10.5, 20, 40.5, 60)
    ]
    assert [(b.x1, b.y1, b.x2, b.y2) for b in recs["b"].boxes] == [(40, 30, 50, 40)]
    assert report.n_crowd_skipped == 1 and not report.skipped
    assert report.ignored_classes == {"dog": 1} and report.unknown_classes == {"zebra": 1}

    del data["annotations"][0]["bbox"]
    (root / "ann.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="ann.json.*annotations\\[0\\]"):
        read("coco", root, tmp=tmp_path, annotations="ann.json")
    _, report = read("coco", root, tmp=tmp_path, annotations="ann.json", on_error="skip")
    assert len(report.skipped) == 1


def test_coco_split_files(tmp_path):
    root = tmp_path / "coco"
    for split in ("train2017", "val2017"):
        (root / split).mkdir(parents=True)
        rgb(20, 20).save(root / split / "x.jpg")
        ann = {
            "images": [{"id": 1, "file_name": "x.jpg"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 1, 5, 5]}],
            "categories": [{"id": 3, "name": "car"}],
        }
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(ann))
    manifest, _ = read("coco", root, tmp=tmp_path)
    # Same stem in both splits: ids get the split as prefix; splits from the file names.
    assert {r.image_id: r.split for r in manifest.records} == {"train_x": "train", "val_x": "val"}
    assert by_id(manifest)["val_x"].path == str(root / "val2017" / "x.jpg")


def test_exdark_bbgt_class_folders_and_split_list(tmp_path):
    root = tmp_path / "ExDark_root"
    (root / "ExDark" / "People").mkdir(parents=True)
    (root / "ExDark" / "Bicycle").mkdir(parents=True)
    rgb(64, 48).save(root / "ExDark" / "People" / "2015_00001.jpg")
    rgb(64, 48).save(root / "ExDark" / "Bicycle" / "2015_00002.png")
    ann = root / "ExDark_Annotations"
    (ann / "People").mkdir(parents=True)
    (ann / "Bicycle").mkdir(parents=True)
    (ann / "People" / "2015_00001.jpg.txt").write_text(
        "% bbGt version=3\n"
        "People 10 20 30 25 0 0 0 0 0 0 0\n"
        "Bicycle 5 5 10 10 0 0 0 0 0 1 0\n"
        "Table 1 1 4 4 0 0 0 0 0 0 0\n"
    )
    (ann / "Bicycle" / "2015_00002.png.txt").write_text("% bbGt version=3\n")
    (root / "imageclasslist.txt").write_text(
        "Name | Class | Light | In/Out | Train/Val/Test\n2015_00001.jpg 12 3 2 3\n2015_00002.png 1 3 2 2\n"
    )
    manifest, report = read("exdark", root, DARK, tmp=tmp_path)
    recs = by_id(manifest)
    people = recs["2015_00001"]
    assert people.split == "test" and recs["2015_00002"].split == "val"
    assert [(DARK[b.cls], b.x1, b.y1, b.x2, b.y2, b.difficult) for b in people.boxes] == [
        ("person", 10, 20, 40, 45, False),
        ("bicycle", 5, 5, 15, 15, True),
    ]
    assert recs["2015_00002"].boxes == [] and report.ignored_classes == {"table": 1}

    (ann / "People" / "2015_00001.jpg.txt").write_text("% bbGt version=3\nPeople 10 20 30 25\nPeople 1 2\n")
    with pytest.raises(DataError, match=r"2015_00001\.jpg\.txt: line 3"):
        read("exdark", root, DARK, tmp=tmp_path)
    (ann / "People" / "2015_00003.jpg.txt").write_text("% bbGt version=3\nPeople 1 2 3 4\n")
    _, report = read("exdark", root, DARK, tmp=tmp_path, on_error="skip")
    assert len(report.skipped) == 2 and "2015_00003.jpg" in report.skipped[1]


def test_yolo_splits_collisions_and_malformed_lines(tmp_path):
    root = tmp_path / "y"
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        rgb(200, 100).save(root / "images" / split / "a.jpg")
    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n1 0.1 0.1 0.3 0.2 0.2 0.3\n")
    (root / "data.yaml").write_text("path: .\ntrain: images/train\nval: images/val\nnames: [car, bus]\n")
    manifest, _ = read("yolo", root, tmp=tmp_path)
    recs = by_id(manifest)
    assert {i: r.split for i, r in recs.items()} == {"train_a": "train", "val_a": "val"}
    assert [(HAZE[b.cls], b.x1, b.y1, b.x2, b.y2) for b in recs["train_a"].boxes] == [
        ("car", 80, 30, 120, 70),
        ("bus", 20, 10, 60, 30),  # polygon -> its bounding box
    ]
    assert recs["val_a"].boxes == []  # no label file: an image without boxes

    (root / "labels" / "train" / "a.txt").write_text("0 0.5 0.5 0.2 0.4\n0 0.5 0.5 0.2\n")
    with pytest.raises(DataError, match=r"a\.txt: line 2"):
        read("yolo", root, tmp=tmp_path)
    (root / "labels" / "train" / "a.txt").write_text("5 0.5 0.5 0.2 0.4\n")
    with pytest.raises(DataError, match=r"a\.txt: line 1: class id 5"):
        read("yolo", root, tmp=tmp_path)
    manifest, report = read("yolo", root, tmp=tmp_path, on_error="skip")
    assert len(report.skipped) == 1 and by_id(manifest)["train_a"].boxes == []


def test_voc_split_lists(tmp_path):
    root = voc_dataset(
        tmp_path / "voc", {f"im{i:02d}": (rgb(20, 20), [("car", 2, 2, 10, 10)]) for i in range(30)}
    )
    main = root / "ImageSets" / "Main"
    main.mkdir(parents=True)
    (main / "trainval.txt").write_text("".join(f"im{i:02d}\n" for i in range(20)))
    (main / "test.txt").write_text("".join(f"im{i:02d}\n" for i in range(20, 25)))
    manifest, report = read("voc", root, tmp=tmp_path, split_ratios=(0.5, 0.5, 0.0))
    splits = {r.image_id: r.split for r in manifest.records}
    assert len(splits) == 25 and report.n_unlisted == 5  # im25..im29 are in no list: not part of the set
    assert all(splits[f"im{i:02d}"] == "test" for i in range(20, 25))
    assert {splits[f"im{i:02d}"] for i in range(20)} == {"train", "val"}

    (main / "train.txt").write_text("im00\nim01\n")
    (main / "val.txt").write_text("im02\nim99\n")
    with pytest.raises(DataError, match=r"val\.txt: lists 'im99'"):
        read("voc", root, tmp=tmp_path)
    manifest, _ = read("voc", root, tmp=tmp_path, on_error="skip")
    assert {r.image_id: r.split for r in manifest.records} == {
        "im00": "train",
        "im01": "train",
        "im02": "val",
        **{f"im{i:02d}": "test" for i in range(20, 25)},
    }


# ---------------------------------------------------------------- bad input


def test_truncated_and_corrupt_images(tmp_path):
    buf = tmp_path / "full.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf)
    half = buf.read_bytes()[: buf.stat().st_size // 2]
    root = voc_dataset(
        tmp_path / "voc",
        {
            "good": (rgb(32, 32), [("car", 1, 1, 10, 10)]),
            "trunc": (half, [("car", 1, 1, 10, 10)]),
            "junk": (b"this is not an image", [("car", 1, 1, 10, 10)]),
        },
    )
    with pytest.raises(DataError, match=r"junk\.jpg"):
        read("voc", root, tmp=tmp_path)
    (root / "Annotations" / "junk.xml").unlink()
    with pytest.raises(DataError, match=r"trunc\.jpg"):
        read("voc", root, tmp=tmp_path)
    voc_xml(root / "Annotations" / "junk.xml", "junk.jpg", [])
    manifest, report = read("voc", root, tmp=tmp_path, on_error="skip")
    assert [r.image_id for r in manifest.records] == ["good"]
    assert len(report.skipped) == 2 and report.to_dict()["n_skipped"] == 2


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P", "CMYK"])
def test_non_rgb_images_are_converted(tmp_path, mode):
    base = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    if mode == "I;16":
        image = Image.fromarray(base[..., 0].astype(np.uint16) * 257)
        assert image.mode == "I;16"
    elif mode == "RGBA":
        image = Image.fromarray(np.dstack([base, np.full((12, 16), 255, np.uint8)]), "RGBA")
    else:
        image = Image.fromarray(base).convert(mode)
    root = voc_dataset(tmp_path / "voc", {"img": (image, [("person", 2, 2, 8, 8)])})
    source = next((root / "JPEGImages").iterdir())
    expected = load_rgb(source)
    manifest, report = read("voc", root, tmp=tmp_path)
    rec = manifest.records[0]
    assert rec.path == str(tmp_path / "_converted" / "img.png")
    assert len(report.converted) == 1 and f"mode {mode}" in report.converted[0]
    with Image.open(rec.path) as im:
        assert im.mode == "RGB"
    out = load_rgb(rec.path)
    assert np.array_equal(out, expected) and (rec.width, rec.height) == (16, 12)
    if mode in ("I;16", "L"):
        assert np.array_equal(out[..., 0], out[..., 2])
    if mode == "I;16":
        assert np.array_equal(out[..., 0], base[..., 0])  # 257 * v in 16 bits -> v in 8 bits


def _exif_rotated(path: Path) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """A JPEG stored 40x60 with orientation 6 that shows 60x40 with a red block at visible (10,5)-(30,15)."""
    visible = np.full((40, 60, 3), 40, np.uint8)
    visible[5:15, 10:30] = (255, 0, 0)
    raw = Image.fromarray(visible).transpose(Image.Transpose.ROTATE_90)  # stored pixels
    exif = Image.Exif()
    exif[0x0112] = 6
    raw.save(path, exif=exif, quality=95)
    return raw, (10, 5, 30, 15)


def _red_inside(image: np.ndarray, box) -> bool:
    x1, y1, x2, y2 = (int(v) for v in box)
    patch = image[y1 + 1 : y2 - 1, x1 + 1 : x2 - 1].astype(float)
    return patch[..., 0].mean() > 200 and patch[..., 1].mean() < 60


def test_exif_rotation_follows_the_annotation(tmp_path):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    _, (x1, y1, x2, y2) = _exif_rotated(root / "JPEGImages" / "rot.jpg")
    with Image.open(root / "JPEGImages" / "rot.jpg") as im:
        assert im.size == (40, 60) and ImageOps.exif_transpose(im).size == (60, 40)

    # No declared size (or the shown one): boxes are on the image as viewers show it.
    for size in (None, (60, 40), (0, 0)):
        voc_xml(root / "Annotations" / "rot.xml", "rot.jpg", [("car", x1 + 1, y1 + 1, x2, y2)], size)
        manifest, report = read("voc", root, tmp=tmp_path)
        rec = manifest.records[0]
        assert (rec.width, rec.height) == (60, 40) and "EXIF orientation 6 applied" in report.converted[0]
        b = rec.boxes[0]
        assert (b.x1, b.y1, b.x2, b.y2) == (x1, y1, x2, y2)
        assert _red_inside(load_rgb(rec.path), (b.x1, b.y1, b.x2, b.y2))

    # Declared size equals the raw stored size: boxes were drawn on the raw pixels (LabelImg
    # before 1.8.4). In the raw 40x60 frame the block (visible x 10..30, y 5..15) lies at
    # x 5..15, y 30..50; the image is still used as displayed and the box turned with it.
    voc_xml(root / "Annotations" / "rot.xml", "rot.jpg", [("car", 6, 31, 15, 50)], (40, 60))
    manifest, report = read("voc", root, tmp=tmp_path)
    rec = manifest.records[0]
    assert (rec.width, rec.height) == (60, 40) and "boxes turned from the stored 40x60" in report.converted[0]
    b = rec.boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2) == (x1, y1, x2, y2) and _red_inside(load_rgb(rec.path), (x1, y1, x2, y2))
    assert report.n_exif_oriented == 1 and report.to_dict()["n_exif_stored_frame"] == 1


@pytest.mark.parametrize("orientation", range(1, 9))
def test_turn_box_follows_every_exif_orientation(tmp_path, orientation):
    """A red block drawn on the stored pixels stays under its box once the image is displayed."""
    stored = np.full((30, 50, 3), 40, np.uint8)  # W 50, H 30
    stored[4:12, 30:44] = (255, 0, 0)  # stored box x 30..44, y 4..12
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif)
    shown = load_rgb(tmp_path / "o.png")
    assert shown.shape[:2] == ((50, 30) if orientation >= 5 else (30, 50))
    box = turn_box((30, 4, 44, 12), orientation, (50, 30))
    assert _red_inside(shown, box)
    assert (box[2] - box[0]) * (box[3] - box[1]) == 14 * 8


def test_missing_image(tmp_path):
    root = voc_dataset(tmp_path / "voc", {"ok": (rgb(20, 20), [("car", 1, 1, 5, 5)])})
    voc_xml(root / "Annotations" / "gone.xml", "gone.jpg", [("car", 1, 1, 5, 5)])
    with pytest.raises(DataError, match=r"gone\.xml: names image .*JPEGImages/gone\.jpg"):
        read("voc", root, tmp=tmp_path)
    manifest, report = read("voc", root, tmp=tmp_path, on_error="skip")
    assert [r.image_id for r in manifest.records] == ["ok"] and len(report.skipped) == 1


@pytest.mark.parametrize(
    ("box", "message"),
    [
        ((25, 5, 40, 10), "fully outside the 20x20 image"),
        ((6, 5, 5, 10), "zero or negative area"),
        ((8, 5, 4, 10), "zero or negative area"),
        (("nan", 5, 9, 10), "not a finite number"),
    ],
)
def test_bad_boxes_stop_or_skip(tmp_path, box, message):
    root = voc_dataset(tmp_path / "voc", {"a": (rgb(20, 20), [("car", *box), ("bus", 2, 2, 6, 6)])})
    with pytest.raises(DataError, match=r"a\.xml: object 1: box car .*" + message):
        read("voc", root, tmp=tmp_path)
    manifest, report = read("voc", root, tmp=tmp_path, on_error="skip")
    assert len(report.skipped) == 1 and message in report.skipped[0]
    assert [HAZE[b.cls] for b in manifest.records[0].boxes] == ["bus"]


def test_partly_outside_box_is_clipped_and_empty_annotation_kept(tmp_path):
    root = voc_dataset(
        tmp_path / "voc",
        {"a": (rgb(20, 10), [("car", -3, 2, 30, 8)]), "empty": (rgb(20, 10), [])},
    )
    manifest, report = read("voc", root, tmp=tmp_path)
    b = by_id(manifest)["a"].boxes[0]
    assert (b.x1, b.y1, b.x2, b.y2) == (0, 1, 20, 8)
    assert by_id(manifest)["empty"].boxes == [] and report.n_images == 2
    assert (
        report.to_dict()["n_clipped"] == 1
        and "a.xml: object 1: box car (-4, 1, 30, 8) clipped" in report.clipped[0]
    )
    manifest, report = read("voc", root, tmp=tmp_path, keep_empty=False)
    assert [r.image_id for r in manifest.records] == ["a"] and report.n_empty_dropped == 1


def test_malformed_xml(tmp_path):
    root = voc_dataset(tmp_path / "voc", {"a": (rgb(20, 20), [("car", 1, 1, 5, 5)])})
    (root / "Annotations" / "b.xml").write_text("<annotation><object>")
    with pytest.raises(DataError, match=r"b\.xml: not readable XML"):
        read("voc", root, tmp=tmp_path)
    manifest, report = read("voc", root, tmp=tmp_path, on_error="skip")
    assert len(manifest.records) == 1 and "b.xml" in report.skipped[0]


def test_stop_lists_every_problem_up_to_a_cap(tmp_path):
    from vat.data.readers.common import MAX_PROBLEMS

    root = voc_dataset(tmp_path / "voc", {"a": (rgb(20, 20), [("car", 1, 1, 5, 5)])})
    for i in range(3):
        voc_xml(root / "Annotations" / f"m{i}.xml", f"m{i}.jpg", [])
    with pytest.raises(DataError) as e:
        read("voc", root, tmp=tmp_path)
    lines = str(e.value).splitlines()
    assert lines[0] == f"{root}: bad items (3 found; on_error: skip leaves them out and counts them):"
    assert [line.strip().split(":")[0] for line in lines[1:]] == [
        str(root / "Annotations" / f"m{i}.xml") for i in range(3)
    ]
    for i in range(3, MAX_PROBLEMS + 5):
        voc_xml(root / "Annotations" / f"m{i}.xml", f"m{i}.jpg", [])
    with pytest.raises(DataError, match=f"stopped at the first {MAX_PROBLEMS};") as e:
        read("voc", root, tmp=tmp_path)
    assert len(str(e.value).splitlines()) == 1 + MAX_PROBLEMS


def test_split_list_that_is_not_utf8_stops_or_skips_the_line(tmp_path):
    root = voc_dataset(tmp_path / "voc", {s: (rgb(20, 20), [("car", 1, 1, 5, 5)]) for s in ("a", "b")})
    (root / "ImageSets" / "Main").mkdir(parents=True)
    (root / "ImageSets" / "Main" / "train.txt").write_bytes("a\ncaf\xe9\nb\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train\.txt: line 2: not UTF-8 text \(byte 0xe9"):
        read("voc", root, tmp=tmp_path)
    manifest, report = read("voc", root, tmp=tmp_path, on_error="skip")
    assert sorted(by_id(manifest)) == ["a", "b"] and "train.txt: line 2" in report.skipped[0]


def test_report_lists_at_most_100_skipped(tmp_path):
    root = voc_dataset(tmp_path / "voc", {"a": (rgb(20, 20), [])})
    for i in range(105):
        voc_xml(root / "Annotations" / f"m{i:03d}.xml", f"m{i:03d}.jpg", [])
    _, report = read("voc", root, tmp=tmp_path, on_error="skip")
    d = report.to_dict()
    assert d["n_skipped"] == 105 and len(d["skipped"]) == 100
    json.dumps(d)


def test_paths_are_kept_as_given(tmp_path, monkeypatch):
    voc_dataset(tmp_path / "ds", {"a": (rgb(20, 20), [("car", 1, 1, 5, 5)])})
    monkeypatch.chdir(tmp_path)
    manifest, _ = read_dataset("voc", "ds", HAZE, seed=0, convert_dir="conv")
    assert manifest.records[0].path == os.path.join("ds", "JPEGImages", "a.jpg")


# ---------------------------------------------------------------- determinism and API


def test_splits_are_deterministic_per_seed(tmp_path):
    root = voc_dataset(
        tmp_path / "voc", {f"im{i:02d}": (rgb(8, 8), [("car", 1, 1, 5, 5)]) for i in range(40)}
    )
    a, _ = read("voc", root, tmp=tmp_path, seed=3)
    b, _ = read("voc", root, tmp=tmp_path, seed=3)
    c, _ = read("voc", root, tmp=tmp_path, seed=4)
    assert a == b
    assert [r.split for r in a.records] != [r.split for r in c.records]
    assert Counter(r.split for r in a.records)["train"] > 20


def test_bad_arguments():
    with pytest.raises(ParamsError):
        read_dataset("kitti", ".", HAZE, seed=0, convert_dir="x")
    with pytest.raises(ParamsError):
        read_dataset("voc", ".", HAZE, seed=0, convert_dir="x", task_kind="classify")
    with pytest.raises(ParamsError):
        read_dataset("voc", ".", HAZE, seed=0, convert_dir="x", on_error="ignore")
    with pytest.raises(DataError, match="not found"):
        read_dataset("voc", "/nonexistent/voc", HAZE, seed=0, convert_dir="x")
    assert FORMATS == ("voc", "yolo", "coco", "exdark", "cifar10")


def test_clip_box():
    assert clip_box(-5, -5, 10, 10, 8, 6) == (0, 0, 8, 6)
    assert isinstance(clip_box(8, 0, 12, 5, 8, 6), str)  # starts at the right edge
    assert isinstance(clip_box(1, 1, float("inf"), 5, 8, 6), str)
