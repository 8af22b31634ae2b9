"""Batch row checks: the same verdicts as the validate step and the service, row by row."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from census_samples import course_csv, real_files, row

from census_pipeline.batch.rows import check_rows, normalise_columns
from census_pipeline.batch.sources import Piece, read_piece
from census_pipeline.errors import PipelineError
from census_pipeline.raw import read_raw
from census_pipeline.schema import CATEGORY_DOMAINS, FEATURES, NUMERIC_RANGES
from census_pipeline.validate import census_schema

# One broken field per row, covering every rule (text as a CSV holds it).
BROKEN: tuple[dict[str, str], ...] = (
    {"age": "400"},
    {"age": "16"},
    {"age": "forty"},
    {"age": "40.0"},
    {"age": "?"},
    {"fnlgt": "0"},
    {"education_num": "17"},
    {"hours_per_week": ""},
    {"capital_gain": "-1"},
    {"workclass": "Freelance"},
    {"education": "?"},
    {"sex": "male"},
    {"native_country": "Atlantis"},
    {"race": ""},
)


def _csv_piece(path: Path, data: bytes) -> Piece:
    path.write_bytes(data)
    from census_pipeline.batch.sources import plan

    _, pieces = plan(str(path), 1 << 20)
    assert len(pieces) == 1
    return pieces[0]


def _validate_step_failures(path: Path) -> set[int]:
    table = read_raw(path, "course-csv", "train")
    try:
        census_schema().validate(table.frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        rows = exc.failure_cases["index"].dropna().astype(int)
        return set(rows.tolist())
    return set()


def test_the_same_rows_fail_as_in_the_validate_step(tmp_path: Path) -> None:
    # Real rows first, then one row per broken rule: the validate step's pandera schema and the
    # batch check must refuse exactly the same rows.
    real = real_files()["census.csv"].decode().splitlines()[:2001]
    broken = [", ".join(row(**change)) for change in BROKEN]
    path = tmp_path / "mixed.csv"
    piece = _csv_piece(path, ("\n".join([*real, *broken]) + "\n").encode())
    checked = check_rows(read_piece(piece))
    assert set(checked.invalid_positions.tolist()) == _validate_step_failures(path)
    assert len(checked.invalid_positions) == len(BROKEN)
    assert len(checked.valid) == 2000


def test_reasons_name_the_field_the_value_and_the_rule(tmp_path: Path) -> None:
    piece = _csv_piece(tmp_path / "in.csv", course_csv([row(**c) for c in BROKEN]))
    reasons = check_rows(read_piece(piece)).reasons
    assert reasons[:5] == [
        "age: 400 outside 17..100",
        "age: 16 outside 17..100",
        "age: 'forty' not an integer",
        "age: '40.0' not an integer",
        "age: missing value",
    ]
    assert "workclass: 'Freelance' not a known value" in reasons
    assert "education: missing value" in reasons
    assert "race: '' not a known value" in reasons


def test_several_broken_fields_are_all_named() -> None:
    frame = pd.DataFrame([dict(zip(FEATURES, row(age="400", sex="x"), strict=False))])
    assert check_rows(frame).reasons == ["age: 400 outside 17..100; sex: 'x' not a known value"]


def _service_accepts(record: dict[str, Any]) -> bool:
    from pydantic import ValidationError

    from census_pipeline.api.body import RECORD

    try:
        RECORD.validate_json(json.dumps(record))
    except ValidationError:
        return False
    return True


def _typed_records() -> list[dict[str, Any]]:
    base: dict[str, Any] = {
        name: int(value) if name in NUMERIC_RANGES else value
        for name, value in zip(FEATURES, row(), strict=False)
    }
    changes: list[dict[str, Any]] = [{}]
    for name, (low, high) in NUMERIC_RANGES.items():
        changes += [{name: low}, {name: high}, {name: low - 1}, {name: high + 1}, {name: None}]
    for name, domain in CATEGORY_DOMAINS.items():
        changes += [{name: domain[-1]}, {name: None}, {name: domain[0].lower()}]
    return [{**base, **change} for change in changes]


def test_typed_rows_get_the_services_verdict() -> None:
    # Parquet brings typed columns: every record the service refuses is quarantined, and only those.
    records = _typed_records()
    frame = pd.DataFrame(records).astype(dict.fromkeys(NUMERIC_RANGES, "Int64"))
    checked = check_rows(frame)
    refused = {i for i, record in enumerate(records) if not _service_accepts(record)}
    assert set(checked.invalid_positions.tolist()) == refused
    assert refused  # the sample does hold refusals


def test_valid_rows_come_out_typed_over_the_schema_domains() -> None:
    frame = pd.DataFrame([dict(zip(FEATURES, row(), strict=False))] * 3)
    valid = check_rows(frame).valid
    assert valid["age"].dtype == np.int64
    assert valid["age"].tolist() == [39, 39, 39]
    assert list(valid["workclass"].cat.categories) == list(CATEGORY_DOMAINS["workclass"])


def test_float_numbers_must_be_whole() -> None:
    frame = pd.DataFrame([dict(zip(FEATURES, row(), strict=False))] * 3).astype(object)
    frame["age"] = [40.0, 40.5, float("nan")]
    checked = check_rows(frame)
    assert checked.reasons == ["age: 40.5 not an integer", "age: missing value"]
    assert checked.valid["age"].tolist() == [40]


def test_a_boolean_column_is_a_whole_file_problem() -> None:
    frame = pd.DataFrame([dict(zip(FEATURES, row(), strict=False))])
    frame["age"] = True
    with pytest.raises(PipelineError, match="column 'age': expected integers, got dtype bool"):
        check_rows(frame)


def test_underscore_column_names_are_accepted() -> None:
    frame = pd.DataFrame(columns=["age", "education_num", "native_country", "id"])
    assert list(normalise_columns(frame).columns) == [
        "age",
        "education-num",
        "native-country",
        "id",
    ]
