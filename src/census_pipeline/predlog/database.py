"""Engines for the log's database and the migrations that shape it.

SQLite (the default: a file, nothing to start) runs in WAL mode with a busy timeout, so each
worker process's one writer thread, the feedback route and a concurrent `monitor` read do not
fail on each other's locks: writers queue on the file lock, readers never block. PostgreSQL
(`postgresql+psycopg://...`) needs nothing special.

Migrations are Alembic revisions shipped inside this package and run from code with an open
connection, never from an ini file. Several workers may start at once, so an upgrade holds a
lock first: an advisory lock on PostgreSQL, a lock file beside the database on SQLite.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from census_pipeline.errors import PipelineError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Any constant identifies our lock among the database's advisory locks ("cens" in ASCII).
_ADVISORY_KEY = 0x63656E73
SQLITE_BUSY_TIMEOUT_MS = 10_000


def default_log_database(model_dir: Path) -> Path:
    """The SQLite log when no database is configured: `logs/predictions.sqlite` beside the
    model folder. The service writes there and `census-pipeline monitor` reads there."""
    return model_dir.parent / "logs" / "predictions.sqlite"


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path.expanduser().resolve()}"


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL, None for another database or an in-memory one."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def make_engine(url: str, **options: Any) -> Engine:
    """An engine for `url`; a malformed URL or a missing driver is a `PipelineError`."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite":
            return _sqlite_engine(url, **options)
        return create_engine(url, pool_pre_ping=True, **options)
    except (ArgumentError, ImportError, ValueError) as exc:
        raise PipelineError(f"database URL {redact(url)}: {exc}") from None


def redact(url: str) -> str:
    """The URL with its password hidden, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _sqlite_engine(url: str, **options: Any) -> Engine:
    file = sqlite_file(url)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **options)

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        if file is not None:
            cursor.execute("PRAGMA journal_mode = WAL")
            # In WAL mode NORMAL is durable against a process crash; only a power cut can lose
            # the last commits, which a monitoring log can afford.
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    return engine


@contextlib.contextmanager
def _sqlite_lock(engine: Engine) -> Iterator[None]:
    file = sqlite_file(engine.url.render_as_string(hide_password=False))
    if file is None:
        yield
        return
    with open(file.with_name(file.name + ".migrate-lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the database's tables to `revision` (idempotent; safe from several processes)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    lock = _sqlite_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext()
    with lock, engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, None before the first migration."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        revision: str | None = MigrationContext.configure(connection).get_current_revision()
        return revision


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
