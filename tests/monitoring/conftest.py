"""A PostgreSQL server per test session (started once, on a free port; see postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()
