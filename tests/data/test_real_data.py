"""Expectations on the real census data, after ingest, validate and clean in a temp project."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import pytest

from census_pipeline.config import Params
from census_pipeline.files import sha256_file
from census_pipeline.ingest import COURSE_TRAIN, UCI_TEST, UCI_TRAIN
from census_pipeline.schema import CATEGORY_DOMAINS, COLUMNS, LABELS, NUMERIC, NUMERIC_RANGES


@pytest.fixture(scope="module")
def report(clean_project: Params) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(clean_project.paths.data_report.read_text())
    return payload


@pytest.fixture(scope="module")
def train(clean_project: Params) -> pd.DataFrame:
    return pd.read_parquet(clean_project.paths.clean_train)


@pytest.fixture(scope="module")
def test(clean_project: Params) -> pd.DataFrame:
    return pd.read_parquet(clean_project.paths.clean_test)


def test_raw_files_are_the_known_ones(clean_project: Params) -> None:
    manifest = json.loads(clean_project.paths.raw_manifest.read_text())
    known = {f.name: f.sha256 for f in (COURSE_TRAIN, UCI_TRAIN, UCI_TEST)}
    for split in ("train", "test"):
        entry = manifest[split]
        assert entry["sha256"] == known[entry["file"]]
        assert sha256_file(clean_project.paths.raw_dir / entry["file"]) == entry["sha256"]


def test_known_row_counts(report: dict[str, Any]) -> None:
    assert report["splits"]["train"]["rows"] == 32_561
    assert report["splits"]["test"]["rows"] == 16_281


def test_known_missing_counts_in_training(report: dict[str, Any]) -> None:
    missing = report["splits"]["train"]["missing"]
    assert missing["workclass"] == 1_836
    assert missing["occupation"] == 1_843
    assert missing["native-country"] == 583
    assert sum(missing.values()) == 1_836 + 1_843 + 583


def test_known_duplicates_and_no_quarantine(report: dict[str, Any]) -> None:
    assert report["splits"]["train"]["exact_duplicates"] == 24
    for split in ("train", "test"):
        assert report["splits"][split]["quarantined_rows"] == 0


def test_clean_tables_have_the_expected_rows(train: pd.DataFrame, test: pd.DataFrame) -> None:
    assert len(train) == 32_561 - 24
    assert not train.duplicated().any()
    assert len(test) == 16_281  # the official test set keeps its duplicates


def test_clean_tables_are_typed(train: pd.DataFrame, test: pd.DataFrame) -> None:
    for table in (train, test):
        assert tuple(table.columns) == COLUMNS
        for numeric in NUMERIC:
            low, high = NUMERIC_RANGES[numeric]
            assert table[numeric].dtype == "int64"
            assert table[numeric].between(low, high).all()
        for name, domain in CATEGORY_DOMAINS.items():
            assert tuple(table[name].cat.categories) == domain
        assert tuple(table["salary"].cat.categories) == LABELS
        assert table["salary"].notna().all()


def test_label_balance_matches_the_published_shares(report: dict[str, Any]) -> None:
    # UCI's adult.names: 23.93% of the 48,842 records earn more than 50K.
    train = report["splits"]["train"]["labels"][">50K"]["rows"]
    test = report["splits"]["test"]["labels"][">50K"]["rows"]
    assert (train + test) / (32_561 + 16_281) == pytest.approx(0.2393, abs=0.0005)
