"""The background writer: the service hands it scored records; it inserts them in batches.

Never on the request path. `submit` only appends to a bounded in-memory queue and returns: when
the queue is full the records are dropped and counted, so a slow or dead database costs
predictions nothing but their log rows. One thread per process drains the queue in batches,
migrates the tables when it connects, reconnects with exponential back-off after a failure, and
retries the batch it was writing (inserts skip ids already present, so a retry never doubles a
row). Its state and counters are what /ready and /metrics report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, delete

from census_pipeline.predlog.database import make_engine, redact, upgrade
from census_pipeline.predlog.privacy import Redaction
from census_pipeline.predlog.tables import FEATURE_COLUMNS, predictions

logger = logging.getLogger("census_pipeline.predlog")

RETENTION_CHECK_S = 3600.0


@dataclass(frozen=True, slots=True)
class Scored:
    """What one request scored: built on the request path, so it only holds references.

    A single prediction's record id is its request id; a batch's records are
    `<request id>:<index>` (0-based, in the order sent), the ids each answer carries.
    """

    request_id: str
    created_at: float
    route: str
    model_version: str
    records: Sequence[Mapping[str, Any]]
    probabilities: Sequence[float]
    labels: Sequence[str]
    latency_ms: float

    @property
    def single(self) -> bool:
        return self.route == "predict"

    def record_id(self, index: int) -> str:
        return self.request_id if self.single else f"{self.request_id}:{index}"


@dataclass(frozen=True)
class WriterSettings:
    capacity: int = 100_000
    batch_size: int = 1_000
    flush_seconds: float = 0.2
    min_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    retention_days: float | None = None


@dataclass(frozen=True)
class LogStatus:
    state: str  # "starting", "writing", "unavailable" or "stopped"
    queued: int
    written: int
    dropped: int
    reconnects: int
    last_error: str | None


class PredictionLog:
    """A bounded queue plus the thread that writes it to the database at `url`."""

    def __init__(
        self,
        url: str,
        settings: WriterSettings | None = None,
        redaction: Redaction | None = None,
        engine_factory: Callable[[str], Engine] = make_engine,
    ) -> None:
        self.url = url
        self.settings = settings or WriterSettings()
        self.redaction = redaction or Redaction()
        self._engine_factory = engine_factory
        self._engine: Engine | None = None
        self._queue: deque[Scored] = deque()
        self._retry: list[tuple[Any, ...]] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._state = "starting"
        self._last_error: str | None = None
        self.written = 0
        self.dropped = 0
        self.reconnects = 0
        self._next_retention = 0.0

    # --- the request side ------------------------------------------------------------------

    def submit(self, scored: Scored) -> bool:
        """Queue one request's records; False (and counted as dropped) when the queue is full."""
        size = len(scored.records)
        with self._lock:
            if self._queued + size > self.settings.capacity or self._stopping.is_set():
                self.dropped += size
                return False
            self._queue.append(scored)
            self._queued += size
        if self._queued >= self.settings.batch_size:
            self._wake.set()
        return True

    def status(self) -> LogStatus:
        return LogStatus(
            state=self._state,
            queued=self._queued,
            written=self.written,
            dropped=self.dropped,
            reconnects=self.reconnects,
            last_error=self._last_error,
        )

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking records, write what is queued (for up to `timeout_s`), release the pool."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self._queued:
            logger.warning("prediction log closed with %d records not written", self._queued)
        self._state = "stopped"
        if self._engine is not None:
            self._engine.dispose()

    # --- the writer thread ----------------------------------------------------------------

    def _run(self) -> None:
        backoff = self.settings.min_backoff_s
        while not (self._stopping.is_set() and not self._queued):
            try:
                self._step()
                backoff = self.settings.min_backoff_s
            except Exception as exc:  # any database failure: log once per outage, back off
                self._fail(exc)
                if self._stopping.wait(backoff):
                    return  # shutting down with the database away: nothing more to try
                backoff = min(backoff * 2, self.settings.max_backoff_s)

    def _step(self) -> None:
        engine = self._connect()
        if not self._retry:
            delay = self._gather_delay()
            if delay > 0 and not self._stopping.is_set():
                self._wake.wait(delay)
                self._wake.clear()
            self._retry = self._take()
        if self._retry:
            with engine.begin() as connection:
                insert_rows(connection, self._retry)
            with self._lock:
                self._queued -= len(self._retry)
            self.written += len(self._retry)
            self._retry = []
        self._state = "writing"
        self._apply_retention(engine)

    def _gather_delay(self) -> float:
        """How long to wait for more records before writing: until a batch is full or the
        oldest queued record has waited `flush_seconds`. Each write costs round trips (a ping,
        BEGIN, COMMIT), so writing whatever a few requests queued meanwhile cost more than the
        rows themselves; a backlog (after an outage) is old, so it is written at once."""
        with self._lock:
            if self._queued >= self.settings.batch_size:
                return 0.0
            if not self._queue:
                return self.settings.flush_seconds
            oldest = self._queue[0].created_at
        return self.settings.flush_seconds - (time.time() - oldest)

    def _connect(self) -> Engine:
        if self._engine is None:
            engine = self._engine_factory(self.url)
            try:
                upgrade(engine)
            except Exception:
                engine.dispose()
                raise
            self._engine = engine
            if self._last_error is not None:
                self.reconnects += 1
                logger.warning("prediction log: database %s is back", redact(self.url))
        return self._engine

    def _fail(self, exc: Exception) -> None:
        message = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if self._state != "unavailable":
            logger.warning(
                "prediction log: database %s unavailable (%s); predictions go on, records "
                "queue up and are dropped when the queue is full",
                redact(self.url),
                message,
            )
        self._state = "unavailable"
        self._last_error = message
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _take(self) -> list[tuple[Any, ...]]:
        """Rows for up to about one batch of records (whole requests, never split)."""
        taken: list[Scored] = []
        count = 0
        with self._lock:
            while self._queue and count < self.settings.batch_size:
                scored = self._queue.popleft()
                taken.append(scored)
                count += len(scored.records)
        return [row for scored in taken for row in self._rows(scored)]

    def _rows(self, scored: Scored) -> list[tuple[Any, ...]]:
        """One tuple per record, in `COLUMNS` order."""
        redaction = self.redaction
        redacted = redaction.redacted
        hidden = redaction.omit | redaction.hashed
        features = [f for f in FEATURE_COLUMNS if f not in hidden]
        model, route, request = scored.model_version, scored.route, scored.request_id
        rows = []
        for index, (record, probability, label) in enumerate(
            zip(scored.records, scored.probabilities, scored.labels, strict=True)
        ):
            values = dict.fromkeys(FEATURE_COLUMNS)
            for feature in features:
                values[feature] = record.get(feature)
            rows.append((
                scored.record_id(index), request, scored.created_at, route, model,
                *values.values(), probability, label, scored.latency_ms, redacted,
                redaction.pseudonyms(record),
            ))  # fmt: skip
        return rows

    def _apply_retention(self, engine: Engine) -> None:
        days = self.settings.retention_days
        now = time.time()
        if days is None or now < self._next_retention:
            return
        self._next_retention = now + RETENTION_CHECK_S
        deleted = delete_older_than(engine, now - days * 86_400)
        if deleted:
            logger.info("prediction log: retention removed %d records", deleted)


# The INSERT's columns, in the order `_rows` builds each tuple.
COLUMNS = (
    "id", "request_id", "created_at", "route", "model_version", *FEATURE_COLUMNS.values(),
    "probability", "label", "latency_ms", "redacted", "pseudonyms",
)  # fmt: skip


def _insert_sql(paramstyle: str) -> str:
    """INSERT that skips ids already there (a batch retried after a lost commit reply), in the
    driver's own placeholder style (SQLite: ?, psycopg: %s)."""
    mark = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {predictions.name} ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join([mark] * len(COLUMNS))}) ON CONFLICT (id) DO NOTHING"
    )


def insert_rows(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Rows in `COLUMNS` order, straight to the driver: SQLAlchemy's per-row parameter
    handling cost more CPU than the database's work, and the writer shares the worker's core
    and GIL with the requests.

    PostgreSQL gets the rows by COPY (psycopg formats them in C: about a seventh of the CPU of
    `executemany`) inside a savepoint; COPY cannot skip ids already there, so when a retried
    batch meets its own earlier rows, the savepoint is rolled back and the batch goes through
    the INSERT that skips them."""
    if connection.dialect.name == "postgresql":
        import psycopg

        try:
            with connection.begin_nested():
                _copy(connection, rows)
            return
        except psycopg.errors.UniqueViolation:
            pass
    connection.exec_driver_sql(_insert_sql(connection.dialect.paramstyle), rows)


def _copy(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(f"COPY {predictions.name} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    finally:
        cursor.close()


def delete_older_than(engine: Engine, cutoff: float) -> int:
    """Remove predictions logged before `cutoff` (UNIX seconds); their feedback goes with them
    (the foreign key cascades)."""
    with engine.begin() as connection:
        result = connection.execute(delete(predictions).where(predictions.c.created_at < cutoff))
        return int(result.rowcount or 0)
