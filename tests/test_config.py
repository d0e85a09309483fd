from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from stages import classify, real, study
from stages.tools import profile as profile_stage
from vat.config import CommonParams, from_dict, load_section, merge, profile_params
from vat.data.degradations import DegradeParams
from vat.data.sources import PrepareParams
from vat.errors import ParamsError
from vat.train.config import UnpairedParams, ablation_row

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Inner:
    size: int
    ratio: tuple[float, float]


@dataclass(frozen=True)
class Outer:
    name: str
    maybe: str | None
    inner: Inner
    tags: list[str]


STAGE_PARAMS = [(cls, name) for name, cls in classify.SECTIONS.items() if name != "common"] + [
    (UnpairedParams, "unpaired"),
    (study.StudyParams, "study"),
    (classify.ClassifyParams, "classify"),
]


def test_every_params_section_belongs_to_a_stage():
    sections = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    # ablate: rows over train; real: named test sets (stages/real.py RealSet)
    assert sections == {"common", "ablate", "real"} | {s for _, s in STAGE_PARAMS}


GOOD = {"name": "a", "maybe": None, "inner": {"size": 3, "ratio": [0.5, 1]}, "tags": ["x"]}


def test_from_dict_builds_nested_typed_values():
    o = from_dict(Outer, GOOD, "p")
    assert o.inner.ratio == (0.5, 1.0) and isinstance(o.inner.ratio[1], float)
    assert o.maybe is None and o.tags == ["x"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"extra": 1}, "p.extra: unknown key"),
        ({"inner": {"size": 3}}, "p.inner.ratio: missing key"),
        ({"inner": {"size": "3", "ratio": [0, 1]}}, "p.inner.size: expected an integer"),
        ({"inner": {"size": True, "ratio": [0, 1]}}, "p.inner.size: expected an integer"),
        ({"inner": {"size": 3, "ratio": [0, 1, 2]}}, "p.inner.ratio: expected a list of 2 items"),
        ({"tags": "x"}, "p.tags: expected a list"),
    ],
)
def test_from_dict_names_the_bad_key(change, message):
    with pytest.raises(ParamsError, match=message.replace(".", r"\.")):
        from_dict(Outer, GOOD | change, "p")


def test_missing_key_in_real_params_is_named(tmp_path):
    data = yaml.safe_load((ROOT / "params.yaml").read_text())
    del data["degrade"]["airlight"]
    data["prepare"]["embeded"] = {}
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=r"degrade\.airlight: missing key"):
        load_section(DegradeParams, "degrade", p)
    with pytest.raises(ParamsError, match=r"prepare\.embeded: unknown key"):
        load_section(PrepareParams, "prepare", p)


def test_literal_and_post_init_checks():
    with pytest.raises(ParamsError, match="'fog' is not one of"):
        from_dict(CommonParams, {"seed": 0, "task": "fog", "profile": "tiny", "classes": ["a"]}, "common")
    with pytest.raises(ParamsError, match="repeat"):
        from_dict(CommonParams, {"seed": 0, "task": "haze", "profile": "tiny", "classes": ["a", "a"]}, "c")


def test_every_profile_loads_into_every_stage(tmp_path):
    for name in ("tiny", "default", "paper", "paper_dark"):
        out = tmp_path / f"{name}.yaml"
        profile_stage.run(name, ROOT / "profiles", out)
        common = load_section(CommonParams, "common", out)
        assert common.profile == name
        for cls, section in STAGE_PARAMS:
            load_section(cls, section, out)
        data = yaml.safe_load(out.read_text())
        for row in data["ablate"]:  # every row of every profile is a valid train variant
            ablation_row(data["ablate"], row, data["train"], str(out))
        expected = {"paper": {"RTTS"}, "paper_dark": {"ExDark"}}.get(name, {"fog"})  # papers drop `fog`
        assert set(real.sets(out)) == expected
        cp, task2 = classify.task_params(out)  # Task 2's sections, rewritten, all load
        model = task2["train_detector"].model
        assert task2["common"].task == "classify" and (model == "small_cnn" or model.startswith("clip:"))
        for row in cp.rows:
            ablation_row(data["ablate"], row, task2["train_dict"], str(out))
        assert yaml.safe_load(out.read_text()) == profile_params(name, ROOT / "profiles")


def test_study_restorers_are_checked():
    with pytest.raises(ValueError, match="'gcanet' is not one of identity, dcp, aodnet, sci"):
        study.StudyParams(restorers=["dcp", "gcanet"])
    with pytest.raises(ValueError, match="names repeat"):
        study.StudyParams(restorers=["dcp", "dcp"])


def test_committed_params_is_the_default_profile():
    assert yaml.safe_load((ROOT / "params.yaml").read_text()) == profile_params("default", ROOT / "profiles")


def test_profile_keeps_a_backup_of_edited_params(tmp_path):
    out = tmp_path / "params.yaml"
    out.write_text("mine: 1\n")
    backup = profile_stage.run("tiny", ROOT / "profiles", out)
    assert backup is not None and backup.read_text() == "mine: 1\n"
    assert "# edit" not in out.read_text() and "profile: tiny" in out.read_text()
    assert "# every random draw derives from it" in out.read_text()  # comments kept


def test_profile_writes_its_own_header_and_comments(tmp_path):
    """`vat profile paper`: the profile's header, not the embedded demo's; beside a classify change
    the profile's comment, or none where the default's described the default's value."""
    from vat.config import render_profile

    text = render_profile("paper", ROOT / "profiles")
    head = text.split("\ncommon:")[0]
    assert "Changes to default.yaml for the paper's setting" in head and "embedded demo" not in head
    changes = text[text.index("\nclassify:") :].split("\nreal:")[0]
    assert "# the public SCI weights, as is" in changes
    assert "SCI, trained without pairs" not in changes and "D: a small CNN" not in changes
    assert "with image labels" not in changes  # default's comment on its embedded crops
    assert "# passes over the clean train split" in text  # a plain key's comment stays
    assert yaml.safe_load(text) == profile_params("paper", ROOT / "profiles")
    assert "embedded demo" in render_profile("default", ROOT / "profiles")


def test_overlay_cannot_invent_keys():
    with pytest.raises(ParamsError, match="prepare.sourse"):
        merge({"prepare": {"source": "embedded"}}, {"prepare": {"sourse": "voc"}})


TASK2 = {"common": {"task": "classify"}}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"train": {"batch": 4}}, "changes.common.task must be classify"),
        ({**TASK2, "bogus": {}}, "changes.bogus: not a pipeline section"),
        ({**TASK2, "train": {"bach": 4}}, "changes.train.bach: not a key of params train"),
        ({**TASK2, "train": {"batch": "x"}}, "train with classify.changes.train.batch: expected an integer"),
    ],
)
def test_classify_changes_are_checked_and_named(tmp_path, changes, message):
    p = tmp_path / "params.yaml"
    profile_stage.run("default", ROOT / "profiles", p)
    data = yaml.safe_load(p.read_text())
    data["classify"]["changes"] = changes
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match=message.replace("(", r"\(")):
        classify.task_params(p)


def test_classify_rows_must_be_ablate_rows(tmp_path):
    p = tmp_path / "params.yaml"
    profile_stage.run("default", ROOT / "profiles", p)
    data = yaml.safe_load(p.read_text())
    data["classify"]["rows"] = ["no_gate", "w99"]
    p.write_text(yaml.safe_dump(data))
    with pytest.raises(ParamsError, match="classify.rows: 'w99' is not a row of ablate"):
        classify.task_params(p)


def test_numbers_yaml_reads_as_strings_are_accepted_and_errors_name_the_key_once(tmp_path):
    """YAML 1.1 (PyYAML) reads 1e-3 (no dot) as the string '1e-3': a float field takes it."""
    from vat.train.config import TrainParams

    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["lr"] = "1e-3"
    params["train"]["min_lr"] = "1E-5"
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    assert yaml.safe_load(path.read_text())["train"]["lr"] == "1e-3"  # what YAML hands us
    train = load_section(TrainParams, "train", path)
    assert train.lr == 1e-3 and train.min_lr == 1e-5
    params["train"]["lr"] = "fast"
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError, match=r"params\.yaml: train\.lr: expected a number, got 'fast'"):
        load_section(TrainParams, "train", path)
    params["train"]["lr"] = -1.0  # the dataclass's own check, whose message starts "train: ..."
    path.write_text(yaml.safe_dump(params))
    with pytest.raises(ParamsError) as e:
        load_section(TrainParams, "train", path)
    assert f"{path}: train: need lr > 0" in str(e.value) and "train: train:" not in str(e.value)
