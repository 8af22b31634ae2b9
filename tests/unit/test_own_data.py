"""Your own census data: re-saved copies give the same clean table, bad files fail at ingest,
and a second extract shows its shift from the promoted baseline's training data.

Every variant is generated here from the real census.csv, so nothing but the real file is needed.
"""

from __future__ import annotations

import codecs
import gzip
import json
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
import pytest
from census_samples import real_files
from conftest import make_project
from typer.testing import CliRunner

from census_pipeline.clean import clean
from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.files import sha256_bytes, sha256_file
from census_pipeline.ingest import SOURCE_DIR_ENV, ingest
from census_pipeline.validate import validate

DEAD_URL = "http://127.0.0.1:1"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_ambient_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SOURCE_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def real() -> Mapping[str, bytes]:
    return real_files()


def _project(root: Path) -> Params:
    root.mkdir(parents=True, exist_ok=True)
    return make_project(root, {"data.uci_base_url": DEAD_URL, "data.pypi_project_url": DEAD_URL})


def _run_data_steps(params: Params, source: Path) -> None:
    ingest(params, source_dir=source)
    validate(params)
    clean(params)


@pytest.fixture(scope="module")
def original(tmp_path_factory: pytest.TempPathFactory, real: Mapping[str, bytes]) -> Params:
    """The data steps on the real census.csv as published: the table every variant must equal."""
    root = tmp_path_factory.mktemp("original")
    source = root / "src"
    source.mkdir()
    for name in ("census.csv", "adult.test"):
        (source / name).write_bytes(real[name])
    params = _project(root / "project")
    _run_data_steps(params, source)
    return params


RESAVED: dict[str, Callable[[bytes], bytes]] = {
    "CRLF": lambda data: data.replace(b"\n", b"\r\n"),
    "no space after commas, CRLF": lambda data: data.replace(b", ", b",").replace(b"\n", b"\r\n"),
    "UTF-8 BOM": lambda data: codecs.BOM_UTF8 + data,
}
FORMATS = {
    "CRLF": {"line_ending": "CRLF", "separator": "comma-space", "bom": False},
    "no space after commas, CRLF": {"line_ending": "CRLF", "separator": "comma", "bom": False},
    "UTF-8 BOM": {"line_ending": "LF", "separator": "comma-space", "bom": True},
}


@pytest.mark.parametrize("zipped", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("variant", list(RESAVED))
def test_a_resaved_copy_gives_the_same_clean_tables(
    tmp_path: Path, real: Mapping[str, bytes], original: Params, variant: str, zipped: bool
) -> None:
    data = RESAVED[variant](real["census.csv"])
    name = "census.csv.gz" if zipped else "census.csv"
    source = tmp_path / "src"
    source.mkdir()
    (source / name).write_bytes(gzip.compress(data, mtime=0) if zipped else data)
    (source / "adult.test").write_bytes(real["adult.test"])
    params = _project(tmp_path / "project")
    _run_data_steps(params, source)
    # Same rows, same values, same order: the very same bytes.
    for table in ("clean_train", "clean_test"):
        mine, theirs = getattr(params.paths, table), getattr(original.paths, table)
        pd.testing.assert_frame_equal(pd.read_parquet(mine), pd.read_parquet(theirs))
        assert sha256_file(mine) == sha256_file(theirs)
    entry = json.loads(params.paths.raw_manifest.read_text())["train"]
    expected = {**FORMATS[variant], "compression": "gzip" if zipped else "none"}
    assert {key: entry[key] for key in expected} == expected
    assert (entry["file"], entry["layout"], entry["rows"]) == (name, "course-csv", 32561)
    assert entry["release"] == "user-supplied" and entry["source"] == "local-folder"
    report = json.loads(params.paths.data_report.read_text())
    assert report["splits"]["train"]["release"] == "user-supplied"
    assert report["splits"]["train"]["sha256"] == sha256_bytes((source / name).read_bytes())


# --- bad files, named explicitly ----------------------------------------------------------


def _lines(real: Mapping[str, bytes]) -> list[bytes]:
    """The header and the first 40 rows: one bad row is 2.5%, beyond the 1% quarantine share."""
    return real["census.csv"].split(b"\n")[:41]


def _join(lines: list[bytes]) -> bytes:
    return b"\n".join(lines) + b"\n"


def _replace_field(line: bytes, index: int, value: bytes) -> bytes:
    fields = line.split(b", ")
    fields[index] = value
    return b", ".join(fields)


def _bad_files(real: Mapping[str, bytes]) -> dict[str, tuple[bytes, str]]:
    """case -> (file bytes, what the one-line error must say after the file's path)."""
    lines = _lines(real)
    text_in_number = [*lines[:7], _replace_field(lines[7], 12, b"forty"), *lines[8:]]
    unknown_label = [*lines[:10], _replace_field(lines[10], 14, b"50K+"), *lines[11:]]
    non_utf8 = [*lines[:4], lines[4].replace(b"Husband", b"Husb\xe9nd"), *lines[5:]]
    missing_column = [b", ".join(line.split(b", ")[:11] + line.split(b", ")[12:]) for line in lines]
    return {
        "empty": (b"", ": line 1: file is empty"),
        "header only": (lines[0] + b"\n", ": line 2: no data rows after the header"),
        "wrong separator": (
            _join([line.replace(b", ", b";") for line in lines]),
            ": line 1 (header): found one field 'age;workclass;",
        ),
        "non-UTF-8 byte": (
            _join(non_utf8),
            ": line 5: field relationship: byte 0xe9 is not valid UTF-8",
        ),
        "truncated last line": (
            _join(lines)[:-40],
            ": line 41: field sex: missing, found 9 comma-separated fields, expected 15 "
            "(truncated last line?)",
        ),
        "text in a number column": (
            _join(text_in_number),
            ": line 8: hours-per-week: 'forty' not an integer (1 of 40 rows fail the schema",
        ),
        "unknown label": (
            _join(unknown_label),
            ": line 11: salary: '50K+' not a known value (expected <=50K or >50K) (1 of 40 rows",
        ),
        "missing column": (
            _join(missing_column),
            ": line 1 (header): missing column(s) capital-loss; unexpected column(s) -",
        ),
    }


BAD_CASES = (
    "empty",
    "header only",
    "wrong separator",
    "non-UTF-8 byte",
    "truncated last line",
    "text in a number column",
    "unknown label",
    "missing column",
)


@pytest.mark.parametrize("case", BAD_CASES)
def test_a_bad_file_named_explicitly_fails_with_one_line_and_writes_nothing(
    tmp_path: Path, real: Mapping[str, bytes], case: str
) -> None:
    data, expected = _bad_files(real)[case]
    train = tmp_path / "mine.csv"
    train.write_bytes(data)
    test = tmp_path / "adult.test"
    test.write_bytes(real["adult.test"])
    params = _project(tmp_path / "project")
    args = ["ingest", "--train-file", str(train), "--test-file", str(test)]
    result = runner.invoke(app, [*args, "--params", str(tmp_path / "project" / "params.yaml")])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"error: {train}{expected}"), result.stderr
    assert not params.paths.raw_dir.exists()


def test_the_same_bad_file_in_a_named_folder_is_not_replaced_by_a_download(
    tmp_path: Path, real: Mapping[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    data, expected = _bad_files(real)["unknown label"]
    source = tmp_path / "src"
    source.mkdir()
    (source / "census.csv").write_bytes(data)
    (source / "adult.test").write_bytes(real["adult.test"])
    params = _project(tmp_path / "project")
    monkeypatch.setenv(SOURCE_DIR_ENV, str(source))
    result = runner.invoke(app, ["ingest", "--params", str(tmp_path / "project" / "params.yaml")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: {source / 'census.csv'}{expected}")
    assert not params.paths.raw_dir.exists()


# --- a second extract: the retrain loop's first half ----------------------------------------


def test_a_second_extract_reports_its_shift_from_the_baseline(
    tmp_path: Path, real: Mapping[str, bytes], original: Params
) -> None:
    """The first run's profile is promoted as the baseline; older people are then added."""
    params = _project(tmp_path / "project")
    params.paths.baseline_profile.write_bytes(original.paths.train_profile.read_bytes())
    census = real["census.csv"]
    older = [line for line in census.split(b"\n")[1:] if line[:2].isdigit() and int(line[:2]) >= 60]
    extract = census.rstrip(b"\n") + b"\n" + b"\n".join(older * 3) + b"\n"
    source = tmp_path / "extract2"
    source.mkdir()
    (source / "census.csv").write_bytes(extract)
    (source / "adult.test").write_bytes(real["adult.test"])
    result = runner.invoke(
        app,
        ["validate", "--params", str(tmp_path / "project" / "params.yaml")],
    )
    assert result.exit_code == 1  # nothing ingested yet
    ingest(params, source_dir=source)
    result = runner.invoke(app, ["validate", "--params", str(tmp_path / "project" / "params.yaml")])
    assert result.exit_code == 0, result.stderr
    shift = json.loads(params.paths.data_report.read_text())["shift"]
    assert shift["status"] == "compared"
    assert shift["rows"] == {"reference": 32561, "current": 32561 + 3 * len(older)}
    assert shift["baseline_data"]["release"] == "course census.csv"
    features = shift["features"]
    assert features["age"]["level"] != "stable" and shift["max_psi_feature"] == "age"
    assert features["race"]["level"] == "stable"
    assert shift["label_share"]["current"] != shift["label_share"]["reference"]
    assert "shift vs baseline: largest PSI" in result.stdout and "age" in result.stdout
    # The unchanged data compared with itself: no shift at all.
    same = json.loads(original.paths.data_report.read_text())["shift"]
    assert same["status"] == "compared" and same["max_psi"] < 1e-9
