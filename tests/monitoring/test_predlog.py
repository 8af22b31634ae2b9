"""The prediction log on a real SQLite file: migrations, the writer, redaction, retention,
feedback. The writer's inserts (one statement per dialect) also run on a real PostgreSQL;
the service end to end on PostgreSQL: test_e2e_postgres.py."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, inspect, select

from census_pipeline.api.schemas import EXAMPLE_RECORD
from census_pipeline.predlog.database import (
    current_revision,
    head_revision,
    make_engine,
    sqlite_url,
    upgrade,
)
from census_pipeline.predlog.feedback import record_feedback
from census_pipeline.predlog.privacy import Redaction
from census_pipeline.predlog.tables import feedback, predictions
from census_pipeline.predlog.writer import (
    PredictionLog,
    Scored,
    WriterSettings,
    delete_older_than,
    insert_rows,
)

from .postgres import PostgresServer

HIGH_EARNER: dict[str, Any] = {**EXAMPLE_RECORD, "age": 45, "education-num": 16}
LOW_EARNER: dict[str, Any] = {**EXAMPLE_RECORD, "age": 19, "sex": "Female"}

FAST = WriterSettings(flush_seconds=0.02, min_backoff_s=0.01, max_backoff_s=0.05)


def scored(request_id: str, records: list[dict[str, Any]], route: str = "batch") -> Scored:
    n = len(records)
    return Scored(request_id, time.time(), route, "v1", records, [0.7] * n, [">50K"] * n, 1.5)


def wait_written(log: PredictionLog, count: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while log.status().written < count:
        assert time.monotonic() < deadline, log.status()
        time.sleep(0.01)


def rows(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        result = connection.execute(select(predictions).order_by(predictions.c.id))
        return [dict(row._mapping) for row in result]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "logs" / "predictions.sqlite")


@pytest.fixture(params=["sqlite", "postgresql"])
def writer_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both databases the writer inserts into (each has its own INSERT), empty each time."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "logs" / "predictions.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres")
    engine = make_engine(server.url)
    with engine.begin() as connection:
        connection.exec_driver_sql(
            "DROP TABLE IF EXISTS feedback, predictions, alembic_version CASCADE"
        )
    engine.dispose()
    return server.url


def test_migrations_create_the_tables_once_and_are_idempotent(url: str) -> None:
    engine = make_engine(url)
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    tables = set(inspect(engine).get_table_names())
    assert {"predictions", "feedback", "alembic_version"} <= tables
    columns = {c["name"] for c in inspect(engine).get_columns("predictions")}
    assert {"id", "request_id", "created_at", "education_num", "probability", "label"} <= columns
    with engine.connect() as connection:
        mode = connection.exec_driver_sql("PRAGMA journal_mode").scalar()
    assert mode == "wal"


def test_the_writer_logs_every_record_with_its_id_and_inputs(writer_url: str) -> None:
    url = writer_url
    log = PredictionLog(url, FAST)
    log.start()
    log.submit(scored("abc-1", [HIGH_EARNER], route="predict"))
    log.submit(scored("abc-2", [HIGH_EARNER, LOW_EARNER]))
    wait_written(log, 3)
    log.close()
    logged = rows(make_engine(url))
    assert [r["id"] for r in logged] == ["abc-1", "abc-2:0", "abc-2:1"]
    assert [r["request_id"] for r in logged] == ["abc-1", "abc-2", "abc-2"]
    assert logged[2]["age"] == LOW_EARNER["age"] and logged[2]["sex"] == "Female"
    assert logged[0]["education_num"] == 16 and logged[0]["route"] == "predict"
    assert logged[0]["redacted"] is None and logged[0]["pseudonyms"] is None
    assert log.status().dropped == 0 and log.status().state == "stopped"


def test_a_retried_batch_adds_only_the_rows_not_yet_written(writer_url: str) -> None:
    """A commit whose reply was lost is retried: the rows already there are skipped (on
    PostgreSQL, COPY's unique violation falls back to the skipping INSERT), nothing fails."""
    engine = make_engine(writer_url)
    upgrade(engine)
    log = PredictionLog(writer_url, FAST)
    first = log._rows(scored("r-1", [HIGH_EARNER, LOW_EARNER]))
    again = [*first, *log._rows(scored("r-2", [LOW_EARNER]))]
    with engine.begin() as connection:
        insert_rows(connection, first)
    with engine.begin() as connection:
        insert_rows(connection, again)
    assert [r["id"] for r in rows(engine)] == ["r-1:0", "r-1:1", "r-2:0"]
    engine.dispose()


def test_a_full_queue_drops_and_counts_without_blocking(url: str) -> None:
    log = PredictionLog(url, WriterSettings(capacity=5))  # not started: nothing drains
    assert log.submit(scored("a", [HIGH_EARNER] * 4))
    started = time.perf_counter()
    assert not log.submit(scored("b", [HIGH_EARNER] * 2))
    assert time.perf_counter() - started < 0.01
    assert log.submit(scored("c", [HIGH_EARNER]))
    assert (log.status().queued, log.status().dropped) == (5, 2)


def test_a_dead_database_never_blocks_submit_and_records_are_counted(tmp_path: Path) -> None:
    # Nothing listens on port 1: every connection attempt fails at once.
    log = PredictionLog(
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1",
        WriterSettings(capacity=3, flush_seconds=0.01, min_backoff_s=0.01, max_backoff_s=0.05),
    )
    log.start()
    deadline = time.monotonic() + 10
    while log.status().state != "unavailable":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    for i in range(5):
        log.submit(scored(f"r{i}", [HIGH_EARNER]))
    status = log.status()
    assert (status.queued, status.dropped, status.written) == (3, 2, 0)
    assert status.last_error is not None and "OperationalError" in status.last_error
    log.close(timeout_s=1)


def test_redaction_omits_and_hashes_chosen_fields(writer_url: str) -> None:
    url = writer_url
    key = b"a-secret-key-of-16+"
    redaction = Redaction.of(["fnlgt", "native-country"], ["age", "race"], key)
    log = PredictionLog(url, FAST, redaction)
    log.start()
    log.submit(scored("x", [HIGH_EARNER, {**HIGH_EARNER, "age": 46}]))
    wait_written(log, 2)
    log.close()
    first, second = rows(make_engine(url))
    for row in (first, second):
        assert row["fnlgt"] is None and row["native_country"] is None
        assert row["age"] is None and row["race"] is None
        assert row["redacted"] == "age,fnlgt,native-country,race"
        assert row["sex"] == "Male"
    one, two = json.loads(first["pseudonyms"]), json.loads(second["pseudonyms"])
    assert set(one) == {"age", "race"}
    assert one["race"] == two["race"] and one["age"] != two["age"]
    assert "45" not in first["pseudonyms"]


def test_redaction_refuses_unknown_fields_and_hashing_without_a_key() -> None:
    with pytest.raises(ValueError, match="not census features"):
        Redaction.of(["salary"], [], None)
    with pytest.raises(ValueError, match="needs a key"):
        Redaction.of([], ["age"], None)
    with pytest.raises(ValueError, match="not both"):
        Redaction.of(["age"], ["age"], b"k" * 16)


def test_feedback_is_stored_for_known_ids_only_and_the_last_report_wins(url: str) -> None:
    log = PredictionLog(url, FAST)
    log.start()
    log.submit(scored("q", [HIGH_EARNER, LOW_EARNER]))
    wait_written(log, 2)
    log.close()
    engine = make_engine(url)
    found = record_feedback(engine, [("q:0", ">50K"), ("nope", "<=50K"), ("q:1", ">50K")])
    assert found == [True, False, True]
    assert record_feedback(engine, [("q:1", "<=50K")]) == [True]
    with engine.connect() as connection:
        stored = dict(connection.execute(select(feedback.c.prediction_id, feedback.c.label)).all())
    assert stored == {"q:0": ">50K", "q:1": "<=50K"}


def test_retention_removes_old_records_and_their_feedback(url: str) -> None:
    log = PredictionLog(url, FAST)
    log.start()
    old = Scored("old", time.time() - 10 * 86_400, "predict", "v1", [HIGH_EARNER], [0.9],
                 [">50K"], 1.0)  # fmt: skip
    log.submit(old)
    log.submit(scored("new", [LOW_EARNER], route="predict"))
    wait_written(log, 2)
    log.close()
    engine = make_engine(url)
    record_feedback(engine, [("old", ">50K"), ("new", "<=50K")])
    assert delete_older_than(engine, time.time() - 86_400) == 1
    with engine.connect() as connection:
        assert connection.execute(select(predictions.c.id)).scalars().all() == ["new"]
        assert connection.execute(select(func.count()).select_from(feedback)).scalar() == 1


def test_the_writers_insert_names_every_column_of_the_table_in_order() -> None:
    from census_pipeline.predlog.writer import COLUMNS

    assert list(COLUMNS) == [column.name for column in predictions.columns]
