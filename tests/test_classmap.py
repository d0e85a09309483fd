"""A detector with its own classes: D's names mapped to the task's, only for scoring."""

import pytest
import torch

from vat.errors import DataError, ParamsError
from vat.models.classmap import MappedDetector, build_class_map, load_class_map, save_class_map
from vat.models.detectors import Detections

HAZE = ["bicycle", "bus", "car", "motorbike", "person"]
COCO_SOME = ["person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck"]


def test_names_map_through_the_alias_table_and_the_params_map():
    cm = build_class_map(COCO_SOME, HAZE, {})
    assert cm.mapped == {"person": "person", "bicycle": "bicycle", "car": "car", "motorcycle": "motorbike",
                         "bus": "bus"}  # fmt: skip
    assert cm.dropped == ["airplane", "train", "truck"] and not cm.identity
    assert cm.to_task == (4, 0, 2, 3, -1, 1, -1, -1)
    cm = build_class_map(COCO_SOME, HAZE, {"truck": "car", "Train": None})  # names match case-free
    assert cm.mapped["truck"] == "car" and "train" in cm.dropped
    assert build_class_map(HAZE, HAZE, {}).identity


def test_a_task_class_d_cannot_produce_is_an_error_naming_it():
    with pytest.raises(ParamsError, match=r"D cannot produce \['motorbike'\]"):
        build_class_map(["person", "bicycle", "car", "bus"], HAZE, {})
    with pytest.raises(ParamsError, match=r"D cannot produce \['car'\]"):
        build_class_map(COCO_SOME, HAZE, {"car": None})
    with pytest.raises(ParamsError, match=r"class_map\.lorry: D has no class 'lorry'"):
        build_class_map(COCO_SOME, HAZE, {"lorry": "car"})
    with pytest.raises(ParamsError, match=r"class_map\.truck: 'van' is not a task class"):
        build_class_map(COCO_SOME, HAZE, {"truck": "van"})


def test_the_map_is_saved_and_checked_against_d_and_the_task(tmp_path):
    cm = build_class_map(COCO_SOME, HAZE, {})
    save_class_map(cm, tmp_path)
    assert load_class_map(tmp_path, COCO_SOME, HAZE) == cm
    with pytest.raises(DataError, match="made for other classes"):
        load_class_map(tmp_path, COCO_SOME[:-1], HAZE)
    with pytest.raises(DataError, match="missing, and D's classes"):
        load_class_map(tmp_path / "none", COCO_SOME, HAZE)
    assert load_class_map(tmp_path / "none", HAZE, HAZE).identity  # a D we trained on the task


class _Fake:
    names = COCO_SOME
    imgsz = 64

    def predict(self, images, conf=0.25):
        n = 4
        return [Detections(boxes=torch.arange(4 * n, dtype=torch.float32).reshape(n, 4),
                           scores=torch.tensor([0.9, 0.8, 0.7, 0.6]), classes=torch.tensor([7, 3, 0, 4]),
                           features=torch.eye(n), anchors=torch.arange(n))]  # fmt: skip


def test_mapped_predictions_speak_the_task_and_drop_the_rest():
    d = MappedDetector(_Fake(), build_class_map(COCO_SOME, HAZE, {}))
    (out,) = d.predict(torch.zeros(1, 3, 8, 8))
    assert out.classes.tolist() == [3, 4]  # motorcycle -> motorbike, person -> person; truck, airplane gone
    assert out.scores.tolist() == pytest.approx([0.8, 0.7]) and out.features.shape == (2, 4)
    assert out.anchors.tolist() == [1, 2] and d.names == HAZE and d.imgsz == 64
