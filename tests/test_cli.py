import subprocess
import sys

import pytest
from typer.testing import CliRunner

from stages.cli import app

runner = CliRunner()


def test_top_level_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in (
        "prepare",
        "degrade",
        "train_restorer",
        "restore",
        "train_detector",
        "evaluate",
        "profile",
        "bench",
    ):
        assert name in result.output


@pytest.mark.parametrize(
    "cmd, says",
    [
        ("prepare", ["data/prepare/manifest.parquet", "reports/prepare", "common, prepare"]),
        ("degrade", ["data/prepare/manifest.parquet", "data/degrade", "common, degrade"]),
    ],
)
def test_stage_help_says_what_it_reads_and_writes(cmd, says):
    result = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for s in says:
        assert s in text


@pytest.mark.parametrize("cmd", ["train", "unpaired", "evaluate", "real", "pseudolabel"])
def test_stage_help_fits_80_columns(cmd):
    result = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0 and "Writes:" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert cmd != "train" or "--checkpoint-detector" in result.output  # option names whole


def test_bad_params_give_one_line_error_not_a_traceback(tmp_path):
    bad = tmp_path / "params.yaml"
    bad.write_text("common: {seed: 0, task: haze, profile: tiny, classes: [a], colour: red}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "stages", "prepare", "--params", str(bad)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "common.colour: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_input_is_named(tmp_path):
    from pathlib import Path

    params = Path(__file__).resolve().parents[1] / "params.yaml"
    proc = subprocess.run(
        [sys.executable, "-m", "stages", "degrade", "--params", str(params)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert "data/prepare/manifest.parquet: manifest not found" in proc.stderr
    assert not (tmp_path / "data" / "degrade").exists()


def test_wall_time_reads_as_a_person_reads_it():
    from stages._ui import wall_time

    assert wall_time(4.24) == "4.2 s" and wall_time(41.4) == "41 s" and wall_time(185) == "3 min 05 s"
