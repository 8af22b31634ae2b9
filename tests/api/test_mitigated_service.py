"""A model mitigated with group thresholds, trained on the real data, answers identically through
`/predict`, `/predict/batch`, the Predictor and batch scoring on Dask (`batch.score`, what
`census-pipeline predict` runs) as well as the Predictor's CSV helper.

The mitigated model labels each record at its group's threshold, so every path must look at the
record's sex and race the same way; the test rows cover every race x sex group, missing values
and unknown categories included.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import make_project
from fastapi.testclient import TestClient

from census_pipeline.batch import Engine, score
from census_pipeline.config import Params
from census_pipeline.predict import Predictor
from census_pipeline.schema import FEATURES
from census_pipeline.train import read_clean_table, train

from .service_samples import bless, settings_for, started_client


@pytest.fixture(scope="module")
def mitigated_dir(clean_project: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("mitigated")
    params = make_project(
        root, {"fairness.mitigation": "group_thresholds", "train.tuning_grid": {}}
    )
    shutil.copytree(clean_project.paths.clean_dir, params.paths.clean_dir)
    train(params)
    bless(params.paths.model_dir)
    return params.paths.model_dir


@pytest.fixture(scope="module")
def rows(clean_project: Params) -> pd.DataFrame:
    """Test rows from every race x sex group (missing workclass or occupation included)."""
    test = read_clean_table(clean_project.paths.clean_test)
    picked = pd.concat(
        [
            test.groupby(["race", "sex"], observed=True).head(15),
            test[test["occupation"].isna()].head(5),
        ]
    )
    return picked[list(FEATURES)].reset_index(drop=True)


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for row in frame.astype(object).to_dict("records"):
        out.append({str(k): (None if pd.isna(v) else v) for k, v in row.items()})
    return out


@pytest.fixture(scope="module")
def client(mitigated_dir: Path) -> Iterator[TestClient]:
    with started_client(settings_for(mitigated_dir)) as started:
        yield started


def test_every_path_gives_the_same_labels_and_thresholds(
    mitigated_dir: Path, rows: pd.DataFrame, client: TestClient, tmp_path: Path
) -> None:
    records = as_records(rows)
    single = [client.post("/predict", json=r).json() for r in records]
    batch = client.post("/predict/batch", json=records).json()
    # Each answer carries its own log id (the request's, or the batch's plus the position);
    # everything the model decides must be the same on both paths.
    assert [_decided(a) for a in single] == [_decided(a) for a in batch]
    with Predictor.load(mitigated_dir) as predictor:
        assert predictor.rule.by_group
        direct = predictor.predict_many(records)
        frame = pd.DataFrame(records)
    labels = [answer["label"] for answer in single]
    assert labels == direct.labels
    assert [a["threshold"] for a in single] == direct.thresholds.tolist()
    assert [a["probability"] for a in single] == pytest.approx(direct.probabilities.tolist())
    # Batch scoring on a (one-worker) Dask cluster, from Parquet: the same labels, bit-equal
    # probabilities.
    frame.to_parquet(tmp_path / "rows.parquet")
    score(
        str(tmp_path / "rows.parquet"), str(tmp_path / "batch"), model_dir=mitigated_dir,
        engine=Engine(workers=1),
    )  # fmt: skip
    batch_scored = pd.read_parquet(tmp_path / "batch")
    assert batch_scored["label"].astype(str).tolist() == labels
    assert batch_scored["probability"].tolist() == [a["probability"] for a in single]
    # The groups really are labelled at different thresholds.
    assert len({a["threshold"] for a in single}) >= 4


def _decided(answer: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in answer.items() if key != "id"}
