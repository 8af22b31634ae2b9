"""The prediction log and the feedback table.

Revision ID: 0001
Revises:
Create Date: 2026-11-28

Written out column by column rather than from the current metadata, so this revision creates
the same tables whatever later revisions change.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NUMERIC = ("age", "fnlgt", "education_num", "capital_gain", "capital_loss", "hours_per_week")
CATEGORICAL = (
    "workclass", "education", "marital_status", "occupation", "relationship", "race", "sex",
    "native_country",
)  # fmt: skip
ORDER = (
    "age", "workclass", "fnlgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week",
    "native_country",
)  # fmt: skip


def _feature(name: str) -> sa.Column[object]:
    kind = sa.Integer() if name in NUMERIC else sa.String(64)
    return sa.Column(name, kind, nullable=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("route", sa.String(16), nullable=False),
        sa.Column("model_version", sa.String(64), nullable=False),
        *(_feature(name) for name in ORDER),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("redacted", sa.String(400), nullable=True),
        sa.Column("pseudonyms", sa.Text, nullable=True),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_table(
        "feedback",
        sa.Column(
            "prediction_id",
            sa.String(64),
            sa.ForeignKey("predictions.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("label", sa.String(8), nullable=False),
        sa.Column("received_at", sa.Float, nullable=False),
    )
    op.create_index("ix_feedback_received_at", "feedback", ["received_at"])


def downgrade() -> None:
    op.drop_index("ix_feedback_received_at", table_name="feedback")
    op.drop_table("feedback")
    op.drop_index("ix_predictions_created_at", table_name="predictions")
    op.drop_table("predictions")
