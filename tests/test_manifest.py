import pytest

from vat.data.manifest import Box, Manifest, Record, read_manifest, write_manifest
from vat.errors import DataError


def _rec(i, boxes=(), split="train", label=-1):
    return Record(f"im{i}", f"im{i}.png", 40, 30, split, "test", label, None, list(boxes))


def test_round_trip_keeps_boxes_classes_and_nulls(tmp_path):
    m = Manifest([_rec(0, [Box(1, 0.5, 1, 39.5, 30, True)]), _rec(1, split="val", label=0)], ["a", "b"])
    write_manifest(m, tmp_path / "m.parquet")
    back = read_manifest(tmp_path / "m.parquet")
    assert back.classes == ["a", "b"]
    assert back.records == m.records


@pytest.mark.parametrize(
    "records, message",
    [
        ([_rec(0), _rec(0)], "appears twice"),
        ([_rec(0, split="dev")], "unknown split"),
        ([_rec(0, [Box(2, 0, 0, 5, 5)])], "box class 2"),
        ([_rec(0, [Box(0, 5, 5, 5, 9)])], "zero area"),
        ([_rec(0, [Box(0, 0, 0, 41, 9)])], "outside its 40x30 frame"),
        ([_rec(0, label=7)], "label 7"),
    ],
)
def test_check_rejects_bad_rows_and_writes_nothing(tmp_path, records, message):
    with pytest.raises(DataError, match=message):
        write_manifest(Manifest(records, ["a", "b"]), tmp_path / "m.parquet")
    assert list(tmp_path.iterdir()) == []


def test_read_names_missing_and_foreign_files(tmp_path):
    with pytest.raises(DataError, match="m.parquet: manifest not found"):
        read_manifest(tmp_path / "m.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"garbage")
    with pytest.raises(DataError, match="bad.parquet: not a readable Parquet"):
        read_manifest(tmp_path / "bad.parquet")


def test_the_class_list_key_is_stable(tmp_path):
    """Manifests written by earlier versions keep loading: the class list lives under the
    schema key ``vat.classes`` (a module rename once changed the key by accident)."""
    import pyarrow.parquet as pq

    from vat.data.manifest import Manifest, Record, read_manifest, write_manifest

    m = Manifest([Record("a", "a.png", 4, 4, "train", "embedded")], ["car"])
    write_manifest(m, tmp_path / "m.parquet")
    assert pq.read_schema(tmp_path / "m.parquet").metadata[b"vat.classes"] == b'["car"]'
    assert read_manifest(tmp_path / "m.parquet").classes == ["car"]
