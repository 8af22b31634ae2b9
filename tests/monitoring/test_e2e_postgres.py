"""End to end on real parts: `census-pipeline serve` (uvicorn) logging to a real PostgreSQL,
10,000 predictions (single and batch), feedback for 2,000, then `monitor` on that database."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from sqlalchemy import func, select

from census_pipeline.config import Params
from census_pipeline.monitor import monitor
from census_pipeline.predlog.database import make_engine
from census_pipeline.predlog.tables import feedback, predictions
from census_pipeline.schema import FEATURES

from .postgres import PostgresServer
from .service import running_service

pytestmark = pytest.mark.slow
TOTAL, SINGLES, BATCH = 10_000, 500, 1_000
FEEDBACK = 2_000


@pytest.fixture(scope="module")
def records(profiled_project: Params) -> tuple[list[dict[str, Any]], list[str]]:
    """The first 10,000 test rows as the service's JSON records, and their true labels."""
    frame = pd.read_parquet(profiled_project.paths.clean_test).head(TOTAL)
    plain = frame[list(FEATURES)].astype(object)
    rows = [
        {k: (None if v != v else v) for k, v in zip(FEATURES, row, strict=True)}
        for row in plain.itertuples(index=False)
    ]
    return json.loads(json.dumps(rows, default=int)), frame["salary"].astype(str).tolist()


@pytest.fixture
def database() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def count(url: str, table: Any) -> int:
    engine = make_engine(url)
    with engine.connect() as connection:
        found = int(connection.execute(select(func.count()).select_from(table)).scalar_one())
    engine.dispose()
    return found


def wait_for_rows(url: str, expected: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while (found := count(url, predictions)) < expected:
        assert time.monotonic() < deadline, f"{found} rows of {expected}"
        time.sleep(0.2)


def test_ten_thousand_predictions_are_ten_thousand_rows_and_monitor_sees_the_feedback(
    carded_project: Params,
    profiled_project: Params,
    records: tuple[list[dict[str, Any]], list[str]],
    database: PostgresServer,
    tmp_path: Path,
) -> None:
    bodies, truth = records
    env = {"CENSUS_API_DATABASE_URL": database.url, "CENSUS_API_LOG_FLUSH_SECONDS": "0.05"}
    model_dir = carded_project.paths.model_dir
    ids: list[str] = []
    with (
        running_service(model_dir, tmp_path / "server.log", env=env) as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        for body in bodies[:SINGLES]:
            answer = client.post("/predict", json=body)
            assert answer.status_code == 200
            ids.append(answer.json()["id"])
        for start in range(SINGLES, TOTAL, BATCH):
            answer = client.post("/predict/batch", json=bodies[start : start + BATCH])
            assert answer.status_code == 200
            ids += [p["id"] for p in answer.json()]
        assert len(set(ids)) == TOTAL
        wait_for_rows(database.url, TOTAL)
        chosen = list(range(0, TOTAL, TOTAL // FEEDBACK))
        reports = [{"id": ids[i], "label": truth[i].rstrip(".")} for i in chosen]
        stored = client.post("/feedback", json=reports)
        assert stored.status_code == 200 and stored.json()["stored"] == FEEDBACK
    assert count(database.url, predictions) == TOTAL  # exactly: no loss, no duplicate
    assert count(database.url, feedback) == FEEDBACK

    quality = monitor(profiled_project, database.url, since="1h").report["quality"]
    engine = make_engine(database.url)
    with engine.connect() as connection:
        query = select(predictions.c.probability, predictions.c.label, feedback.c.label).join(
            feedback, feedback.c.prediction_id == predictions.c.id
        )
        rows = connection.execute(query).all()
    engine.dispose()
    scores = np.array([r[0] for r in rows])
    predicted = np.array([r[1] == ">50K" for r in rows])
    actual = np.array([r[2] == ">50K" for r in rows])
    expected = {
        "accuracy": accuracy_score(actual, predicted),
        "precision": precision_score(actual, predicted),
        "recall": recall_score(actual, predicted),
        "f1": f1_score(actual, predicted),
        "roc_auc": roc_auc_score(actual, scores),
    }
    assert quality["feedback_rows"] == FEEDBACK
    for metric, value in expected.items():
        assert quality["overall"][metric]["value"] == pytest.approx(value, abs=1e-12), metric
