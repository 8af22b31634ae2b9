"""The service's monitoring hooks on a real SQLite log: ids, feedback, /ready, /metrics,
/monitoring. (Several workers and PostgreSQL: tests/monitoring.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from census_pipeline.api.main import create_app
from census_pipeline.predlog.database import make_engine, sqlite_url
from census_pipeline.predlog.tables import feedback, predictions

from .service_samples import HIGH_EARNER, LOW_EARNER, settings_for

KEY = "a-test-key-long-enough"


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return sqlite_url(tmp_path / "log.sqlite")


@pytest.fixture
def logging_client(served_dir: Path, log_url: str) -> Iterator[TestClient]:
    settings = settings_for(served_dir, database_url=log_url, log_flush_seconds=0.02)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def wait_logged(client: TestClient, count: int) -> None:
    deadline = time.monotonic() + 10
    while client.get("/ready").json()["prediction_log"]["written"] < count:
        assert time.monotonic() < deadline, client.get("/ready").json()
        time.sleep(0.02)


def logged(url: str) -> dict[str, dict[str, Any]]:
    with make_engine(url).connect() as connection:
        return {r.id: dict(r._mapping) for r in connection.execute(select(predictions))}


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_each_prediction_is_logged_under_the_id_it_answers_with(
    logging_client: TestClient, log_url: str
) -> None:
    one = logging_client.post("/predict", json=HIGH_EARNER)
    batch = logging_client.post("/predict/batch", json=[LOW_EARNER, HIGH_EARNER])
    assert one.headers["X-Request-ID"] == one.json()["id"]
    batch_id = batch.headers["X-Request-ID"]
    assert [p["id"] for p in batch.json()] == [f"{batch_id}:0", f"{batch_id}:1"]
    wait_logged(logging_client, 3)
    rows = logged(log_url)
    row = rows[one.json()["id"]]
    assert row["probability"] == one.json()["probability"] and row["label"] == ">50K"
    assert row["capital_gain"] == HIGH_EARNER["capital-gain"] and row["route"] == "predict"
    assert row["model_version"] == one.json()["model_version"] and row["latency_ms"] > 0
    assert rows[f"{batch_id}:0"]["age"] == LOW_EARNER["age"]
    assert rows[f"{batch_id}:1"]["probability"] == batch.json()[1]["probability"]


def test_feedback_stores_labels_and_answers_404_per_unknown_item(
    logging_client: TestClient, log_url: str
) -> None:
    batch = logging_client.post("/predict/batch", json=[LOW_EARNER, HIGH_EARNER]).json()
    wait_logged(logging_client, 2)
    single = logging_client.post("/feedback", json={"id": batch[0]["id"], "label": "<=50K"})
    assert single.status_code == 200 and single.json()["stored"] == 1
    unknown = logging_client.post("/feedback", json={"id": "no-such-id", "label": ">50K"})
    assert unknown.status_code == 404 and "no-such-id" in unknown.json()["detail"]
    mixed = logging_client.post(
        "/feedback", json=[{"id": batch[1]["id"], "label": ">50K"}, {"id": "x", "label": ">50K"}]
    )
    assert mixed.status_code == 200
    assert [r["status"] for r in mixed.json()["results"]] == [200, 404]
    bad = logging_client.post("/feedback", json={"id": batch[1]["id"], "label": "rich"})
    assert bad.status_code == 422
    with make_engine(log_url).connect() as connection:
        stored = dict(connection.execute(select(feedback.c.prediction_id, feedback.c.label)).all())
    assert stored == {batch[0]["id"]: "<=50K", batch[1]["id"]: ">50K"}


def test_feedback_needs_the_api_key_when_one_is_set(served_dir: Path, log_url: str) -> None:
    settings = settings_for(served_dir, database_url=log_url, api_key=KEY)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        body = {"id": "whatever", "label": ">50K"}
        assert client.post("/feedback", json=body).status_code == 401
        answer = client.post("/feedback", json=body, headers={"X-API-Key": KEY})
        assert answer.status_code == 404


def test_ready_reports_the_log_and_stays_ready_when_its_database_is_away(
    served_dir: Path,
) -> None:
    dead = "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1"
    settings = settings_for(
        served_dir, database_url=dead, log_queue_capacity=2, log_flush_seconds=0.02
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while client.get("/ready").json()["prediction_log"]["state"] != "unavailable":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        answers = [client.post("/predict", json=HIGH_EARNER) for _ in range(4)]
        assert all(a.status_code == 200 for a in answers)
        ready = client.get("/ready")
        assert ready.status_code == 200
        state = ready.json()["prediction_log"]
        assert (state["queued"], state["dropped"], state["written"]) == (2, 2, 0)
        samples = metric_samples(client.get("/metrics").text)
        assert samples[("census_prediction_log_dropped_total", ())] == 2
        assert samples[("census_prediction_log_available", ())] == 0
        feedback = client.post("/feedback", json={"id": answers[0].json()["id"], "label": ">50K"})
        assert feedback.status_code == 503


def test_metrics_parse_and_count_requests_predictions_and_the_log(
    logging_client: TestClient,
) -> None:
    logging_client.post("/predict", json=HIGH_EARNER)
    logging_client.post("/predict/batch", json=[LOW_EARNER, LOW_EARNER, HIGH_EARNER])
    logging_client.post("/predict", json={"age": 400})
    wait_logged(logging_client, 4)
    response = logging_client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    assert samples[("census_predictions_total", (("label", ">50K"),))] == 2
    assert samples[("census_predictions_total", (("label", "<=50K"),))] == 2
    assert samples[("census_prediction_probability_count", ())] == 4
    ok = (("method", "POST"), ("route", "/predict"), ("status", "200"))
    assert samples[("census_http_requests_total", ok)] == 1
    refused = (("method", "POST"), ("route", "/predict"), ("status", "422"))
    assert samples[("census_http_requests_total", refused)] == 1
    assert samples[("census_prediction_log_written_total", ())] == 4
    info = [key for key in samples if key[0] == "census_model_info"]
    assert len(info) == 1 and samples[info[0]] == 1


def test_logging_off_stores_nothing_and_has_no_feedback(served_dir: Path, tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "never.sqlite")
    settings = settings_for(served_dir, database_url=url, prediction_log=False)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        answer = client.post("/predict", json=HIGH_EARNER)
        assert answer.status_code == 200 and answer.json()["id"]
        assert client.get("/ready").json()["prediction_log"] is None
        assert client.post("/feedback", json={"id": "a", "label": ">50K"}).status_code == 404
    assert not (tmp_path / "never.sqlite").exists()


def test_monitoring_serves_the_latest_report_when_configured(
    served_dir: Path, tmp_path: Path, client: TestClient
) -> None:
    assert client.get("/monitoring").status_code == 404
    folder = tmp_path / "monitoring"
    settings = settings_for(served_dir, prediction_log=False, monitoring_dir=folder)
    with TestClient(create_app(settings), raise_server_exceptions=False) as configured:
        assert "census-pipeline monitor" in configured.get("/monitoring").json()["detail"]
        folder.mkdir()
        (folder / "report.html").write_text("<h1>Drift</h1>", encoding="utf-8")
        (folder / "report.json").write_text('{"alerts": []}', encoding="utf-8")
        assert configured.get("/monitoring").text == "<h1>Drift</h1>"
        assert configured.get("/monitoring/report.json").json() == {"alerts": []}
