"""A PostgreSQL server per test session (started once, on a free port; see postgres.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from census_pipeline.config import Params

from .postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="session")
def profiled_project(trained_project: Params) -> Params:
    """The session's trained model with its reference profile (the profile stage)."""
    from census_pipeline.profile import profile

    profile(trained_project)
    return trained_project
