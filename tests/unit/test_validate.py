"""Validate: layouts, structural refusals, row rules, quarantine, threshold and data report."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from census_samples import ROWS, course_csv, crafted_project, row, uci_data, uci_test

from census_pipeline.errors import PipelineError
from census_pipeline.raw import read_raw
from census_pipeline.schema import COLUMNS
from census_pipeline.validate import census_schema, validate

# --- parsing both layouts -------------------------------------------------------------------


def test_course_and_uci_layouts_parse_to_the_same_rows(tmp_path: Path) -> None:
    (tmp_path / "census.csv").write_bytes(course_csv())
    (tmp_path / "adult.data").write_bytes(uci_data())
    course = read_raw(tmp_path / "census.csv", "course-csv", "train")
    uci = read_raw(tmp_path / "adult.data", "uci", "train")
    pd.testing.assert_frame_equal(course.frame, uci.frame)
    assert list(course.frame.columns) == list(COLUMNS)
    assert len(course.frame) == len(ROWS)
    # Line numbers point into each file: the course file has a header, UCI's does not.
    assert course.lines.tolist() == [2, 3, 4, 5]
    assert uci.lines.tolist() == [1, 2, 3, 4]


def test_leading_spaces_stripped_and_question_mark_is_missing(tmp_path: Path) -> None:
    (tmp_path / "census.csv").write_bytes(course_csv())
    frame = read_raw(tmp_path / "census.csv", "course-csv", "train").frame
    assert frame.loc[0, "workclass"] == "State-gov"
    assert frame[["workclass", "occupation", "native-country"]].iloc[2].isna().all()
    assert not (frame == "?").any().any()


def test_windows_line_ends_parse_like_unix_ones(tmp_path: Path) -> None:
    (tmp_path / "unix.csv").write_bytes(course_csv())
    (tmp_path / "windows.csv").write_bytes(course_csv().replace(b"\n", b"\r\n"))
    unix = read_raw(tmp_path / "unix.csv", "course-csv", "train")
    windows = read_raw(tmp_path / "windows.csv", "course-csv", "train")
    pd.testing.assert_frame_equal(unix.frame, windows.frame)


def test_test_layout_drops_junk_line_and_label_dots(tmp_path: Path) -> None:
    (tmp_path / "adult.test").write_bytes(uci_test())
    table = read_raw(tmp_path / "adult.test", "uci", "test")
    assert table.frame["salary"].tolist() == [r[-1] for r in ROWS]
    assert table.lines.tolist() == [2, 3, 4, 5]


def test_pandera_schema_covers_the_fifteen_columns_in_order() -> None:
    schema = census_schema()
    assert list(schema.columns) == list(COLUMNS)
    assert schema.strict and schema.ordered


# --- structural problems: the whole file is refused, naming where -------------------------


@pytest.mark.parametrize(
    ("train", "expected"),
    [
        (b"", "census.csv: line 1: file is empty"),
        (course_csv(())[:-1], "census.csv: line 2: no data rows after the header"),
        (
            course_csv().replace(b" fnlgt,", b""),
            "census.csv: line 1 (header): missing column(s) fnlgt",
        ),
        (
            course_csv().replace(b"education-num", b"education_num"),
            "missing column(s) education-num; unexpected column(s) education_num",
        ),
        (course_csv().replace(b", ", b";"), "census.csv: line 1 (header): found one field"),
        (
            course_csv().replace(b"Bachelors", b"Bach\xe9lors", 1),
            "census.csv: line 2: field education: byte 0xe9 is not valid UTF-8",
        ),
        (
            course_csv().rstrip(b"\n")[:-40],
            "census.csv: line 5: field sex: missing, found 9 comma-separated fields, expected 15 "
            "(truncated",
        ),
    ],
    ids=["empty", "header-only", "missing-column", "renamed-column", "separator", "utf8", "cut"],
)
def test_structural_problem_fails_naming_file_and_line(
    tmp_path: Path, train: bytes, expected: str
) -> None:
    params = crafted_project(tmp_path, train)
    with pytest.raises(PipelineError, match=re.escape(expected)):
        validate(params)
    assert not params.paths.data_report.exists()


def test_wrong_separator_in_uci_layout_names_the_line(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, uci_data().replace(b", ", b"\t"), train_name="adult.data")
    with pytest.raises(
        PipelineError,
        match=r"adult.data: line 1: found 1 field, expected 15 comma-separated .wrong sep",
    ):
        validate(params)


def test_raw_file_changed_after_ingest_is_refused(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv())
    path = params.paths.raw_dir / "census.csv"
    path.write_bytes(path.read_bytes().replace(b"77516", b"77517"))
    with pytest.raises(PipelineError, match=r"census.csv: sha256 is [0-9a-f]{64}, expected"):
        validate(params)


def test_structural_failure_removes_stale_outputs(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv())
    validate(params)
    crafted_project(tmp_path, b"")
    with pytest.raises(PipelineError):
        validate(params)
    assert not params.paths.data_report.exists()
    assert not params.paths.quarantine("train").exists()


# --- row rules: quarantine with the reason ----------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (row(age="forty"), "age: 'forty' not an integer"),
        (row(age="12"), "age: '12' outside 17..100"),
        (row(hours_per_week="0"), "hours-per-week: '0' outside 1..99"),
        (row(capital_gain="1.5"), "capital-gain: '1.5' not an integer"),
        (row(fnlgt="77516x"), "fnlgt: '77516x' not an integer"),
        (row(education="Kindergarten"), "education: 'Kindergarten' not a known value"),
        (row(salary=">60K"), "salary: '>60K' not a known value (expected <=50K or >50K)"),
        (row(sex="?"), "sex: missing value"),
        (row(age="?"), "age: missing value"),
        (row(race=""), "race: '' not a known value"),
        (row(sex="Male "), "sex: 'Male ' not a known value"),
    ],
    ids=["text", "low", "zero-hours", "decimal", "suffix", "domain", "label", "missing-cat",
         "missing-num", "blank", "trailing-space"],
)  # fmt: skip
def test_row_rule_quarantines_with_reason(
    tmp_path: Path, bad: tuple[str, ...], reason: str
) -> None:
    params = crafted_project(
        tmp_path, course_csv([*ROWS, bad]), overrides={"data.max_quarantine_share": 0.5}
    )
    report = validate(params)
    quarantine = pd.read_csv(params.paths.quarantine("train"), keep_default_na=False)
    assert quarantine["line"].tolist() == [6]
    assert quarantine["reason"].tolist() == [reason]
    assert report.splits["train"]["quarantined_rows"] == 1
    assert report.splits["train"]["valid_rows"] == len(ROWS)


def test_several_rules_on_one_row_are_all_named(tmp_path: Path) -> None:
    params = crafted_project(
        tmp_path,
        course_csv([*ROWS, row(age="abc", salary="maybe")]),
        overrides={"data.max_quarantine_share": 0.5},
    )
    report = validate(params)
    quarantine = pd.read_csv(params.paths.quarantine("train"))
    assert quarantine["reason"].item() == (
        "age: 'abc' not an integer; salary: 'maybe' not a known value (expected <=50K or >50K)"
    )
    assert report.splits["train"]["quarantine_reasons"] == {
        "age: not an integer": 1,
        "salary: not a known value (expected <=50K or >50K)": 1,
    }


def test_missing_allowed_only_in_nullable_columns(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv())
    report = validate(params)
    assert report.splits["train"]["quarantined_rows"] == 0
    assert report.splits["train"]["missing"]["native-country"] == 1


def test_unknown_test_label_is_quarantined(tmp_path: Path) -> None:
    params = crafted_project(
        tmp_path,
        course_csv(),
        test=uci_test([*ROWS, row(salary=">50K?")]),
        overrides={"data.max_quarantine_share": 0.5},
    )
    validate(params)
    quarantine = pd.read_csv(params.paths.quarantine("test"))
    assert quarantine["reason"].tolist() == [
        "salary: '>50K?' not a known value (expected <=50K or >50K)"
    ]
    assert quarantine["line"].tolist() == [6]


def test_share_above_threshold_fails_naming_file_line_and_column(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv([*ROWS, row(age="forty")]))
    with pytest.raises(PipelineError) as caught:
        validate(params)
    message = str(caught.value)
    assert "census.csv: line 6: age: 'forty' not an integer" in message
    assert "1 of 5 rows fail the schema, 20.00% > data.max_quarantine_share 1.00%" in message
    assert f"all listed in {params.paths.quarantine('train')}" in message
    assert "\n" not in message
    # The quarantine file is the diagnosis and stays; the report, which clean needs, does not.
    assert params.paths.quarantine("train").exists()
    assert not params.paths.data_report.exists()


def test_share_at_threshold_passes(tmp_path: Path) -> None:
    params = crafted_project(
        tmp_path,
        course_csv([*ROWS, row(age="forty")]),
        overrides={"data.max_quarantine_share": 0.2},
    )
    assert validate(params).splits["train"]["quarantined_share"] == pytest.approx(0.2)


# --- the data report ---------------------------------------------------------------------


def test_quarantine_files_written_even_when_empty(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv())
    validate(params)
    for split in ("train", "test"):
        lines = params.paths.quarantine(split).read_text().splitlines()
        assert lines == [",".join(["line", "reason", *COLUMNS])]


def test_report_counts_missing_duplicates_labels_and_digests(tmp_path: Path) -> None:
    rows = [*ROWS, ROWS[0], ROWS[2]]
    params = crafted_project(tmp_path, course_csv(rows), test=uci_test([ROWS[1], ROWS[1]]))
    validate(params)
    report = json.loads(params.paths.data_report.read_text())
    manifest = json.loads(params.paths.raw_manifest.read_text())
    train, test = report["splits"]["train"], report["splits"]["test"]
    assert train["rows"] == 6 and test["rows"] == 2
    assert train["missing"]["workclass"] == 2 and train["missing"]["age"] == 0
    assert train["exact_duplicates"] == 2 and test["exact_duplicates"] == 1
    assert train["labels"][">50K"] == {"rows": 3, "share": 0.5}
    assert test["labels"]["<=50K"]["rows"] == 2
    assert train["sha256"] == manifest["train"]["sha256"]
    assert test["sha256"] == manifest["test"]["sha256"]
    assert train["layout"] == "course-csv" and test["layout"] == "uci"
    assert report["max_quarantine_share"] == 0.01


def test_uci_training_layout_validates(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, uci_data(), train_name="adult.data")
    report = validate(params)
    assert report.splits["train"]["file"] == "adult.data"
    assert report.splits["train"]["rows"] == len(ROWS)
