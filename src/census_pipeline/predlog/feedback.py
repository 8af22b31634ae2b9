"""Ground truth for logged predictions: a client reports the true label of a record by its id.

A label is stored only for an id the log holds (anything else is reported back as unknown, so
the route can answer 404 for that item); a second report for the same id replaces the first.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from sqlalchemy import Engine, Insert, select
from sqlalchemy.dialects import postgresql, sqlite

from census_pipeline.predlog.database import upgrade
from census_pipeline.predlog.tables import feedback, predictions

# Ids per IN (...) list: well under SQLite's and PostgreSQL's limits on bound parameters.
_CHUNK = 1000


class FeedbackStore:
    """The service's way in: migrates the tables on first use, as the writer does, so feedback
    does not depend on which of them reached the database first."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._migrated = False
        self._lock = threading.Lock()

    def record(self, reports: Sequence[tuple[str, str]]) -> list[bool]:
        with self._lock:
            if not self._migrated:
                upgrade(self.engine)
                self._migrated = True
        return record_feedback(self.engine, reports)


def record_feedback(
    engine: Engine, reports: Sequence[tuple[str, str]], now: float | None = None
) -> list[bool]:
    """Store (record id, true label) pairs; for each, whether its id was found in the log."""
    received = time.time() if now is None else now
    latest = dict(reports)  # the last report of an id in one call wins, as across calls
    with engine.begin() as connection:
        known: set[str] = set()
        ids = list(latest)
        for start in range(0, len(ids), _CHUNK):
            chunk = ids[start : start + _CHUNK]
            query = select(predictions.c.id).where(predictions.c.id.in_(chunk))
            known.update(connection.execute(query).scalars())
        rows = [
            {"prediction_id": rid, "label": label, "received_at": received}
            for rid, label in latest.items()
            if rid in known
        ]
        if rows:
            connection.execute(_upsert(engine), rows)
    return [rid in known for rid, _ in reports]


def _upsert(engine: Engine) -> Insert:
    if engine.dialect.name == "postgresql":
        pg = postgresql.insert(feedback)
        return pg.on_conflict_do_update(
            index_elements=["prediction_id"],
            set_={"label": pg.excluded.label, "received_at": pg.excluded.received_at},
        )
    lite = sqlite.insert(feedback)
    return lite.on_conflict_do_update(
        index_elements=["prediction_id"],
        set_={"label": lite.excluded.label, "received_at": lite.excluded.received_at},
    )
