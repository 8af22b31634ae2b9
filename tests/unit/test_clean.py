"""Clean: typed tables of the validated rows, duplicates out of training only, raw untouched."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from census_samples import ROWS, course_csv, crafted_project, row, uci_data, uci_test

from census_pipeline.clean import clean
from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_file
from census_pipeline.schema import CATEGORY_DOMAINS, COLUMNS, LABELS, NUMERIC
from census_pipeline.validate import validate


def _validated(
    root: Path,
    train: bytes,
    test: bytes | None = None,
    share: float = 0.01,
    name: str = "census.csv",
) -> Params:
    overrides: dict[str, object] = {"data.max_quarantine_share": share}
    params = crafted_project(root, train, test=test, train_name=name, overrides=overrides)
    validate(params)
    return params


def test_tables_are_typed_with_full_domains(tmp_path: Path) -> None:
    params = _validated(tmp_path, course_csv())
    clean(params)
    for path in (params.paths.clean_train, params.paths.clean_test):
        table = pd.read_parquet(path)
        assert list(table.columns) == list(COLUMNS)
        for numeric in NUMERIC:
            assert table[numeric].dtype == "int64"
        for name, domain in CATEGORY_DOMAINS.items():
            assert isinstance(table[name].dtype, pd.CategoricalDtype)
            assert tuple(table[name].cat.categories) == domain
        assert tuple(table["salary"].cat.categories) == LABELS
        assert table["salary"].tolist() == [r[-1] for r in ROWS]


def test_question_marks_become_missing_not_strings(tmp_path: Path) -> None:
    params = _validated(tmp_path, course_csv())
    clean(params)
    train = pd.read_parquet(params.paths.clean_train)
    assert train[["workclass", "occupation", "native-country"]].iloc[2].isna().all()
    assert train["workclass"].notna().sum() == len(ROWS) - 1
    assert train.loc[0, "age"] == 39 and train.loc[0, "workclass"] == "State-gov"


def test_test_labels_lose_their_dot(tmp_path: Path) -> None:
    params = _validated(tmp_path, uci_data(), test=uci_test(), name="adult.data")
    clean(params)
    test = pd.read_parquet(params.paths.clean_test)
    assert set(test["salary"]) == set(LABELS)


def test_duplicates_removed_from_training_only(tmp_path: Path) -> None:
    params = _validated(
        tmp_path, course_csv([*ROWS, ROWS[0], ROWS[2], ROWS[2]]), test=uci_test([*ROWS, ROWS[1]])
    )
    result = clean(params)
    train = pd.read_parquet(params.paths.clean_train)
    test = pd.read_parquet(params.paths.clean_test)
    assert result.train_duplicates_removed == 3
    assert result.train_rows == len(train) == len(ROWS)
    assert not train.duplicated().any()
    assert len(test) == result.test_rows == len(ROWS) + 1
    report = json.loads(params.paths.data_report.read_text())
    assert report["splits"]["train"]["exact_duplicates"] == 3


def test_quarantined_rows_are_excluded(tmp_path: Path) -> None:
    params = _validated(
        tmp_path,
        course_csv([row(age="abc"), *ROWS, row(salary="?")]),
        share=0.5,
    )
    result = clean(params)
    train = pd.read_parquet(params.paths.clean_train)
    assert result.quarantined_excluded == {"train": 2, "test": 0}
    assert train["age"].tolist() == [int(r[0]) for r in ROWS]


def test_raw_files_are_never_modified(tmp_path: Path) -> None:
    params = _validated(tmp_path, course_csv([*ROWS, ROWS[0]]))
    raw = sorted(params.paths.raw_dir.iterdir())
    before = {path.name: sha256_file(path) for path in raw}
    clean(params)
    assert {path.name: sha256_file(path) for path in raw} == before


def test_clean_refuses_without_a_data_report(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv())
    with pytest.raises(PipelineError, match=r"data_report.json: not found \(run .*validate"):
        clean(params)


def test_clean_refuses_a_report_of_other_raw_files_and_leaves_no_tables(tmp_path: Path) -> None:
    params = _validated(tmp_path, course_csv())
    clean(params)
    crafted_project(tmp_path, course_csv([*ROWS, ROWS[1]]))  # new raw bytes, old report
    with pytest.raises(PipelineError, match=r"describes train sha256 [0-9a-f]{64}, expected"):
        clean(params)
    assert not params.paths.clean_train.exists()
    assert not params.paths.clean_test.exists()


def test_clean_after_failed_validation_refuses(tmp_path: Path) -> None:
    params = crafted_project(tmp_path, course_csv([*ROWS, row(age="abc")]))
    with pytest.raises(PipelineError):
        validate(params)
    with pytest.raises(PipelineError, match="run `census-pipeline validate` first"):
        clean(params)
    assert not params.paths.clean_train.exists()
