"""The data steps' commands: help text, a clean run, and every kind of bad input.

Bad input must give a non-zero exit, one line naming the file and the line or column with what
was expected, and no output a later step could mistake for a good one.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest
from census_samples import ROWS, course_csv, crafted_project, real_files, row, uci_data
from conftest import make_project
from typer.testing import CliRunner

from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.ingest import SOURCE_DIR_ENV

runner = CliRunner()
DEAD_URL = "http://127.0.0.1:1"


@pytest.fixture(autouse=True)
def _no_ambient_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_DIR_ENV, raising=False)


def _run(params: Params, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(
        app, [*args, "--params", str(params.paths.raw_dir.parents[1] / "params.yaml")]
    )
    return result.exit_code, result.stdout, result.stderr


def test_help_lists_the_data_steps() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for step in ("ingest", "validate", "clean"):
        assert step in result.stdout


@pytest.mark.parametrize("step", ["ingest", "validate", "clean"])
def test_each_step_has_help(step: str) -> None:
    result = runner.invoke(app, [step, "--help"])
    assert result.exit_code == 0
    assert "--params" in result.stdout
    assert len(result.stdout.strip()) > 100


def test_the_three_steps_run_from_the_command_line(tmp_path: Path) -> None:
    real = real_files()
    source = tmp_path / "src"
    source.mkdir()
    for name in ("census.csv", "adult.test"):
        (source / name).write_bytes(real[name])
    params = make_project(
        tmp_path, {"data.uci_base_url": DEAD_URL, "data.pypi_project_url": DEAD_URL}
    )
    code, out, _ = _run(params, "ingest", "--source-dir", str(source))
    assert code == 0
    assert "train: census.csv (course-csv), 32561 rows, course census.csv, from local-folder" in out
    code, out, _ = _run(params, "validate")
    assert code == 0 and "train: 32561 rows, 0 quarantined, 24 exact duplicates" in out
    code, out, _ = _run(params, "clean")
    assert code == 0 and "train: 32537 rows (24 duplicates removed)" in out
    assert params.paths.clean_train.is_file() and params.paths.clean_test.is_file()


BAD_TRAINING_FILES: dict[str, tuple[bytes, str]] = {
    "empty file": (b"", "census.csv: line 1: file is empty"),
    "missing column": (
        course_csv().replace(b" capital-loss,", b""),
        "census.csv: line 1 (header): missing column(s) capital-loss",
    ),
    "renamed column": (
        course_csv().replace(b"fnlgt", b"fnlwgt", 1),
        "census.csv: line 1 (header): missing column(s) fnlgt; unexpected column(s) fnlwgt",
    ),
    "wrong separator": (
        course_csv().replace(b", ", b";"),
        "census.csv: line 1 (header): found one field",
    ),
    "non-UTF-8 bytes": (
        course_csv().replace(b"Husband", b"Husb\xff\xfend"),
        "census.csv: line 3: field relationship: byte 0xff is not valid UTF-8",
    ),
    "truncated last line": (
        course_csv().rstrip(b"\n")[:-25],
        "census.csv: line 5: field capital-loss: missing, found 11 comma-separated fields, "
        "expected 15 (truncated last line?)",
    ),
    "numeric column holding text": (
        course_csv([*ROWS, row(hours_per_week="forty")]),
        "census.csv: line 6: hours-per-week: 'forty' not an integer",
    ),
    "unknown label": (
        course_csv([row(salary="50K+"), *ROWS]),
        "census.csv: line 2: salary: '50K+' not a known value (expected <=50K or >50K)",
    ),
}


@pytest.mark.parametrize("case", list(BAD_TRAINING_FILES))
def test_bad_training_file_fails_with_one_clear_line(tmp_path: Path, case: str) -> None:
    data, expected = BAD_TRAINING_FILES[case]
    params = crafted_project(tmp_path, data)
    code, _, err = _run(params, "validate")
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("error: ")
    assert expected in err
    assert not params.paths.data_report.exists()
    # And clean will not build tables on top of it.
    code, _, err = _run(params, "clean")
    assert code == 1 and err.startswith("error: ")
    assert not params.paths.clean_train.exists() and not params.paths.clean_test.exists()


def test_uci_layout_with_missing_column_names_the_line(tmp_path: Path) -> None:
    rows = [r[:3] + r[4:] for r in ROWS]
    params = crafted_project(tmp_path, uci_data(rows), train_name="adult.data")
    code, _, err = _run(params, "validate")
    assert code == 1
    assert "adult.data: line 1: field salary: missing, found 14 comma-separated fields" in err


def _tampered_source(root: Path, real: Mapping[str, bytes]) -> Path:
    root.mkdir()
    (root / "census.csv").write_bytes(real["census.csv"].replace(b"Male", b"Mole", 1))
    (root / "adult.test").write_bytes(real["adult.test"])
    return root


COURSE_SHA256 = "9e7ddeec23b4b1304f138cee41d8a309e987cdf6dc1632033f73dfe28fff814b"


def test_a_pinned_digest_that_differs_fails_ingest_and_writes_nothing(tmp_path: Path) -> None:
    source = _tampered_source(tmp_path / "src", real_files())
    params = make_project(
        tmp_path, {"data.uci_base_url": DEAD_URL, "data.pypi_project_url": DEAD_URL}
    )
    pin = f"train={COURSE_SHA256}"
    code, _, err = _run(params, "ingest", "--source-dir", str(source), "--expect-sha256", pin)
    assert code == 1 and err.count("\n") == 1
    assert f"{source / 'census.csv'}: sha256 is " in err
    assert f"expected {COURSE_SHA256} (--expect-sha256 / data.expect_sha256.train)" in err
    assert not params.paths.raw_manifest.exists()
    assert not (params.paths.raw_dir / "census.csv").exists()
    code, _, err = _run(params, "ingest", "--source-dir", str(source), "--expect-sha256", "abc")
    assert code == 1 and "expected SPLIT=HEX" in err


def test_console_script_exits_non_zero_on_a_wrong_digest(tmp_path: Path) -> None:
    source = _tampered_source(tmp_path / "src", real_files())
    params = make_project(
        tmp_path, {"data.uci_base_url": DEAD_URL, "data.pypi_project_url": DEAD_URL}
    )
    script = Path(sys.executable).parent / "census-pipeline"
    completed = subprocess.run(
        [
            str(script),
            "ingest",
            "--source-dir",
            str(source),
            "--params",
            str(tmp_path / "params.yaml"),
            "--expect-sha256",
            COURSE_SHA256,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert completed.returncode == 1
    assert completed.stderr.startswith(f"error: {source / 'census.csv'}: sha256 is ")
    assert "Traceback" not in completed.stderr
    assert not params.paths.raw_manifest.exists()
