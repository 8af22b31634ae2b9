"""The prediction log and /metrics under a real server: several workers on SQLite, and a
PostgreSQL that goes away mid-load and comes back."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from census_pipeline.api.schemas import EXAMPLE_RECORD
from census_pipeline.config import Params
from census_pipeline.predlog.database import make_engine, sqlite_url
from census_pipeline.predlog.tables import predictions

from .postgres import PostgresServer
from .service import get_json, get_text, running_service

pytestmark = pytest.mark.slow


def metric_totals(text: str) -> dict[str, float]:
    """Each sample name summed over its labels (parsed by prometheus-client's own parser)."""
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    return totals


def eventually(check: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.1)


def row_count(url: str) -> int:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            query = select(func.count()).select_from(predictions)
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def post_fresh(url: str, path: str, body: Any) -> httpx.Response:
    # A new connection each time, so the kernel spreads requests over the workers.
    return httpx.post(f"{url}{path}", json=body, timeout=30)


def test_several_workers_log_every_record_and_metrics_add_up(
    carded_project: Params, tmp_path: Path
) -> None:
    log_url = sqlite_url(tmp_path / "log.sqlite")
    env = {"CENSUS_API_DATABASE_URL": log_url, "CENSUS_API_LOG_FLUSH_SECONDS": "0.05"}
    model_dir = carded_project.paths.model_dir
    record, batch = EXAMPLE_RECORD, [EXAMPLE_RECORD] * 50
    with running_service(model_dir, tmp_path / "server.log", workers=3, env=env) as url:
        with ThreadPoolExecutor(8) as pool:
            singles = list(pool.map(lambda _: post_fresh(url, "/predict", record), range(240)))
            batches = list(pool.map(lambda _: post_fresh(url, "/predict/batch", batch), range(6)))
        assert all(r.status_code == 200 for r in singles + batches)
        ids = {r.json()["id"] for r in singles} | {p["id"] for r in batches for p in r.json()}
        assert len(ids) == 540
        # Ids carry each worker's prefix: the load really was spread over several processes.
        assert len({i.split("-")[0] for i in ids}) >= 2
        eventually(lambda: row_count(log_url) == 540)

        def counted() -> bool:
            # Any worker answers a scrape; each must parse and show every worker's counts.
            totals = metric_totals(get_text(f"{url}/metrics"))
            return (
                totals.get("census_predictions_total") == 540
                and totals.get("census_prediction_log_written_total") == 540
            )

        eventually(counted)
        for _ in range(6):
            totals = metric_totals(get_text(f"{url}/metrics"))
            assert totals["census_predictions_total"] == 540
            assert totals["census_prediction_probability_count"] == 540
            assert totals["census_prediction_log_dropped_total"] == 0
    assert row_count(log_url) == 540


def _timed_predictions(client: httpx.Client, url: str, count: int) -> tuple[list[str], list[float]]:
    ids, seconds = [], []
    for _ in range(count):
        started = time.perf_counter()
        response = client.post(f"{url}/predict", json=EXAMPLE_RECORD)
        seconds.append(time.perf_counter() - started)
        assert response.status_code == 200
        ids.append(response.json()["id"])
    return ids, seconds


def _log_state(url: str) -> tuple[str, int]:
    state = get_json(f"{url}/ready")["prediction_log"]
    return state["state"], state["queued"]


def test_postgres_going_away_costs_log_rows_not_predictions(
    carded_project: Params, tmp_path: Path
) -> None:
    database = PostgresServer()
    try:
        database.start()
        env = {
            "CENSUS_API_DATABASE_URL": database.url,
            "CENSUS_API_LOG_FLUSH_SECONDS": "0.05",
            "CENSUS_API_LOG_QUEUE_CAPACITY": "300",
        }
        model_dir = carded_project.paths.model_dir
        with (
            running_service(model_dir, tmp_path / "server.log", env=env) as url,
            httpx.Client(timeout=10) as client,
        ):
            before_ids, before = _timed_predictions(client, url, 300)
            eventually(lambda: row_count(database.url) == 300)

            database.stop()
            _, during = _timed_predictions(client, url, 1000)
            # Every prediction answered (asserted above), no slower than with the database up.
            assert statistics.median(during) < 2 * statistics.median(before) + 0.002
            assert max(during) < 0.5
            ready = get_json(f"{url}/ready")
            assert ready["prediction_log"]["state"] == "unavailable"
            eventually(lambda: metric_totals(get_text(f"{url}/metrics")).get(
                "census_prediction_log_dropped_total", 0) >= 700)  # fmt: skip

            database.start()
            # Back and with its backlog written: the queue has room for what comes next.
            eventually(lambda: _log_state(url) == ("writing", 0))
            after_ids, _ = _timed_predictions(client, url, 100)
            # The queue's 300 plus the 100 sent after the restart.
            eventually(lambda: row_count(database.url) == 300 + 300 + 100)
        engine = make_engine(database.url)
        with engine.connect() as connection:
            stored = set(connection.execute(select(predictions.c.id)).scalars())
        engine.dispose()
        assert set(after_ids) <= stored and set(before_ids) <= stored
    finally:
        database.destroy()
