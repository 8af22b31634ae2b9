"""The log's two tables, as SQLAlchemy Core metadata (the migrations create exactly these).

`predictions` holds one row per scored record: its stable id (what a client sends back to
/feedback), the request it came in, when (UNIX seconds, a float: filters and reads of a million
rows stay cheap on every database), the model, the validated inputs one typed column each, and
the answer. `feedback` holds the true label a client reported for a record, at most one per id.
"""

from __future__ import annotations

from typing import Final

from sqlalchemy import Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text

from census_pipeline.schema import FEATURES, NUMERIC_RANGES

metadata = MetaData()

# SQL column of each census feature: the course's names with underscores (no quoting needed).
FEATURE_COLUMNS: Final[dict[str, str]] = {name: name.replace("-", "_") for name in FEATURES}

ID_LENGTH: Final = 64


def _feature_column(feature: str) -> Column[object]:
    kind = Integer() if feature in NUMERIC_RANGES else String(64)
    return Column(FEATURE_COLUMNS[feature], kind, nullable=True)


predictions = Table(
    "predictions",
    metadata,
    Column("id", String(ID_LENGTH), primary_key=True),
    Column("request_id", String(ID_LENGTH), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("route", String(16), nullable=False),
    Column("model_version", String(64), nullable=False),
    *(_feature_column(feature) for feature in FEATURES),
    Column("probability", Float, nullable=False),
    Column("label", String(8), nullable=False),
    Column("latency_ms", Float, nullable=False),
    # Comma-separated features that were omitted or hashed by the personal-data setting; the
    # monitor leaves those out of the drift comparison.
    Column("redacted", String(400), nullable=True),
    # JSON object: feature -> keyed hash, for the features the setting hashes.
    Column("pseudonyms", Text, nullable=True),
    Index("ix_predictions_created_at", "created_at"),
)

feedback = Table(
    "feedback",
    metadata,
    Column(
        "prediction_id",
        String(ID_LENGTH),
        ForeignKey("predictions.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("label", String(8), nullable=False),
    Column("received_at", Float, nullable=False),
    Index("ix_feedback_received_at", "received_at"),
)
