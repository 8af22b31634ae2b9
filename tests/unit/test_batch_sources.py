"""Batch inputs: files, folders and globs; both CSV layouts; pieces that hold every row once."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest
from census_samples import ROWS, course_csv, real_files, uci_data, uci_test

from census_pipeline.batch.sources import input_files, plan, read_piece
from census_pipeline.errors import PipelineError
from census_pipeline.schema import COLUMNS, FEATURES


def _rows(source: str, blocksize: int = 1 << 20) -> pd.DataFrame:
    _, pieces = plan(source, blocksize)
    return pd.concat([read_piece(p) for p in pieces], ignore_index=True)


def test_course_and_uci_layouts_read_the_same_rows(tmp_path: Path) -> None:
    files = {"course.csv": course_csv(), "adult.data": uci_data(), "adult.test": uci_test()}
    frames = {}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        frames[name] = _rows(str(tmp_path / name))
    expected = frames["course.csv"]
    assert list(expected.columns) == list(COLUMNS)
    assert len(expected) == len(ROWS)
    for name in ("adult.data", "adult.test"):
        pd.testing.assert_frame_equal(
            frames[name][list(FEATURES)], expected[list(FEATURES)], check_categorical=False
        )


def test_windows_line_ends_and_a_byte_order_mark(tmp_path: Path) -> None:
    (tmp_path / "plain.csv").write_bytes(course_csv())
    (tmp_path / "windows.csv").write_bytes(b"\xef\xbb\xbf" + course_csv().replace(b"\n", b"\r\n"))
    plain, windows = _rows(str(tmp_path / "plain.csv")), _rows(str(tmp_path / "windows.csv"))
    pd.testing.assert_frame_equal(_plain(windows), _plain(plain))


def test_gzip_and_rows_without_a_label(tmp_path: Path) -> None:
    text = "\n".join(", ".join(r[:-1]) for r in ROWS) + "\n"  # UCI layout, 14 fields
    (tmp_path / "rows.csv.gz").write_bytes(gzip.compress(text.encode()))
    frame = _rows(str(tmp_path / "rows.csv.gz"))
    assert list(frame.columns) == list(FEATURES)
    assert frame["age"].tolist() == [int(r[0]) for r in ROWS]


def test_small_blocks_hold_every_row_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "census.csv"
    path.write_bytes(real_files()["census.csv"][:300_000])
    whole = _rows(str(path))
    _, pieces = plan(str(path), 1 << 16)
    assert len(pieces) > 3
    cut = _rows(str(path), 1 << 16)
    pd.testing.assert_frame_equal(_plain(cut), _plain(whole))


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Categories as plain values: each piece infers its own category list."""
    return frame.astype({c: object for c in frame.columns if frame[c].dtype == "category"})


def test_folders_and_globs_list_data_files_in_order(tmp_path: Path) -> None:
    for name in ("b.csv", "a.csv", "_skip.csv", ".hidden.csv", "notes.md"):
        (tmp_path / name).write_bytes(course_csv())
    fmt, files = input_files(str(tmp_path))
    assert fmt == "csv"
    assert [f.rsplit("/", 1)[1] for f in files] == ["a.csv", "b.csv"]
    assert input_files(str(tmp_path / "b*.csv"))[1] == files[1:]


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("x.csv", b"age;workclass;fnlgt\n1;2;3\n", "wrong separator"),
        ("x.csv", b"age, workclass, salary\n", "lacks the feature column(s) fnlgt, education"),
        ("x.csv", b"1, 2, 3\n", "found 3 comma-separated fields"),
        ("x.csv", b"\n\n", "no data rows"),
        ("x.parquet", b"PAR1 not really", "not a readable Parquet file"),
        ("x.json", b"{}", "unknown file type"),
    ],
)
def test_a_file_that_is_not_census_rows_is_refused_at_planning(
    tmp_path: Path, name: str, data: bytes, message: str
) -> None:
    (tmp_path / name).write_bytes(data)
    with pytest.raises(PipelineError, match="x\\.") as error:
        plan(str(tmp_path / name), 1 << 20)
    assert message in str(error.value)


def test_no_matching_input_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match="no input files found"):
        plan(str(tmp_path / "missing*.parquet"), 1 << 20)


def test_a_scored_output_cannot_be_scored_again(tmp_path: Path) -> None:
    frame = _rows_frame().assign(probability=0.5)
    frame.to_parquet(tmp_path / "scored.parquet")
    with pytest.raises(PipelineError, match="already has the output column"):
        plan(str(tmp_path / "scored.parquet"), 1 << 20)


def _rows_frame() -> pd.DataFrame:
    return pd.DataFrame([dict(zip(COLUMNS, r, strict=True)) for r in ROWS])
