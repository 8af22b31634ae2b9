"""Filling a prediction log with scored census rows, as the service would have logged them.

Written straight through the log's tables (one executemany per chunk) so tests and benchmarks
can set up thousands to millions of records in seconds; the service's own path is tested
separately (tests/api/test_monitoring.py, test_service_logging.py).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.predict import Predictor
from census_pipeline.predlog.database import make_engine, upgrade
from census_pipeline.predlog.tables import FEATURE_COLUMNS, feedback, predictions
from census_pipeline.schema import FEATURES, LABEL, NEGATIVE_LABEL, POSITIVE_LABEL

CHUNK = 50_000


def scored(frame: pd.DataFrame, predictor: Predictor) -> tuple[NDArray[np.float64], list[str]]:
    result = predictor.predict_frame(frame)
    return result.probabilities, result.labels


def write_log(
    url: str,
    frame: pd.DataFrame,
    probabilities: NDArray[np.float64],
    labels: list[str],
    *,
    prefix: str = "t",
    created_at: float | None = None,
    feedback_rows: NDArray[np.int64] | None = None,
    model_version: str = "test",
) -> list[str]:
    """Log every row of `frame` with its score; store the true label (`salary`) as feedback
    for `feedback_rows`. Returns the record ids, in row order."""
    engine = make_engine(url)
    upgrade(engine)
    moment = time.time() if created_at is None else created_at
    ids = [f"{prefix}-{i:x}" for i in range(len(frame))]
    # NaN is the one value not equal to itself: a missing category becomes NULL.
    columns = {
        FEATURE_COLUMNS[f]: [v if v == v else None for v in frame[f].astype(object).tolist()]
        for f in FEATURES
    }
    rows: list[dict[str, Any]] = [
        {
            "id": ids[i], "request_id": ids[i], "created_at": moment, "route": "predict",
            "model_version": model_version, "probability": float(probabilities[i]),
            "label": labels[i], "latency_ms": 0.1,
            **{column: values[i] for column, values in columns.items()},
        }
        for i in range(len(frame))
    ]  # fmt: skip
    with engine.begin() as connection:
        for start in range(0, len(rows), CHUNK):
            connection.execute(predictions.insert(), rows[start : start + CHUNK])
        if feedback_rows is not None and LABEL in frame:
            truth = frame[LABEL].astype(str).to_numpy()
            reports = [
                {"prediction_id": ids[i], "label": _label(truth[i]), "received_at": moment}
                for i in feedback_rows.tolist()
            ]
            for start in range(0, len(reports), CHUNK):
                connection.execute(feedback.insert(), reports[start : start + CHUNK])
    engine.dispose()
    return ids


def _label(value: str) -> str:
    return POSITIVE_LABEL if value.strip().rstrip(".") == POSITIVE_LABEL else NEGATIVE_LABEL
