"""Contract mismatches and bounds found by fuzzing and by hostile clients (issue 13), in-process.

The same behaviours against a real uvicorn server (stalled bodies, header cap, connection
limit, SIGTERM) are in tests/e2e/test_hostile_clients.py.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from starlette.types import Message

from census_pipeline.api.main import create_app
from census_pipeline.api.middleware import BodyLimits, RequestGuard
from census_pipeline.predict import Predictor

from .service_samples import HIGH_EARNER, LOW_EARNER, settings_for

NULLABLE = ("workclass", "occupation", "native-country")


def _post_raw(client: TestClient, path: str, body: bytes, **headers: str) -> httpx.Response:
    response: httpx.Response = client.post(path, content=body, headers=headers)
    return response


# --- explanations keep `value: null` on both routes --------------------------------------


def _records_with_nulls() -> Iterator[dict[str, Any]]:
    for base in (LOW_EARNER, HIGH_EARNER):
        for age in (30, 40, 45, 19, 60):
            for field in NULLABLE:
                yield {**base, "age": age, field: None}


def test_an_explained_null_value_is_kept_on_predict_as_on_batch(client: TestClient) -> None:
    for record in _records_with_nulls():
        single = client.post("/predict?explain=true", json=record).json()
        nulls = [e for e in single["explanation"] if e["feature"] in NULLABLE]
        nulls = [e for e in nulls if record[e["feature"]] is None]
        if nulls:
            break
    else:
        pytest.fail("no sample record has a null field among its top contributions")
    assert all("value" in e for e in single["explanation"])
    assert nulls[0]["value"] is None
    (batch,) = client.post("/predict/batch?explain=true", json=[record]).json()
    batch.pop("id", None), single.pop("id", None)  # each prediction's own id
    assert batch == single


def test_a_plain_prediction_has_no_explanation_key(client: TestClient) -> None:
    assert "explanation" not in client.post("/predict", json=LOW_EARNER).json()


# --- whole numbers: the schema says integer, so 79.0 is one ------------------------------


@pytest.mark.parametrize("age", [19.0, 1.9e1])
def test_a_whole_number_written_as_a_float_is_an_integer(client: TestClient, age: float) -> None:
    as_float = client.post("/predict", json={**LOW_EARNER, "age": age})
    assert as_float.status_code == 200, as_float.text
    as_int = client.post("/predict", json=LOW_EARNER).json()
    assert as_float.json()["probability"] == as_int["probability"]


@pytest.mark.parametrize("age", [19.5, "19", True])
def test_fractions_strings_and_booleans_stay_type_errors(client: TestClient, age: Any) -> None:
    response = client.post("/predict", json={**LOW_EARNER, "age": age})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.age"


def test_openapi_numbers_are_integers_with_their_ranges(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]["CensusRecord"]
    assert schema["properties"]["age"]["type"] == "integer"


# --- /model-card's 404 is JSON, and documented as JSON -----------------------------------


def test_model_card_404_is_documented_as_the_json_it_is(model_copy: Path) -> None:
    (model_copy / "model_card.html").unlink()
    settings = settings_for(model_copy, model_card_path=model_copy / "model_card.html")
    with TestClient(create_app(settings)) as client:
        response = client.get("/model-card")
        spec = client.get("/openapi.json").json()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    documented = spec["paths"]["/model-card"]["get"]["responses"]["404"]["content"]
    assert list(documented) == ["application/json"]
    assert documented["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")


# --- duplicate keys and compressed bodies ------------------------------------------------


def test_a_field_given_twice_is_422_naming_it(client: TestClient) -> None:
    body = json.dumps(LOW_EARNER)[:-1] + ', "age": 60}'
    response = _post_raw(client, "/predict", body.encode(), **{"content-type": "application/json"})
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error == {
        "field": "body.age",
        "message": "'age' appears twice: give each field once",
        "type": "duplicate_key",
    }


def test_a_field_given_twice_in_a_batch_names_the_record(client: TestClient) -> None:
    repeated = json.dumps(LOW_EARNER, separators=(",", " : "))[:-1] + ' , "sex" : "Male"}'
    body = "[" + ", ".join([json.dumps(LOW_EARNER), json.dumps(HIGH_EARNER), repeated]) + "]"
    response = _post_raw(
        client, "/predict/batch", body.encode(), **{"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body.2.sex"


def test_spacing_around_colons_is_no_duplicate(client: TestClient) -> None:
    body = json.dumps([LOW_EARNER, HIGH_EARNER], separators=(" ,\n", " \t:  ")).encode()
    response = _post_raw(client, "/predict/batch", body, **{"content-type": "application/json"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
def test_a_compressed_body_is_415(client: TestClient, path: str) -> None:
    payload = LOW_EARNER if path == "/predict" else [LOW_EARNER]
    body = gzip.compress(json.dumps(payload).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    response = _post_raw(client, path, body, **headers)
    assert response.status_code == 415
    assert "gzip" in response.json()["detail"]
    identity = {"content-type": "application/json", "content-encoding": "identity"}
    plain = _post_raw(client, path, json.dumps(payload).encode(), **identity)
    assert plain.status_code == 200


# --- per-route body limits and the explain batch limit -----------------------------------


def test_predict_takes_kilobytes_and_batches_take_more(served_dir: Path) -> None:
    settings = settings_for(served_dir, max_record_body_bytes=2048)
    padded = json.dumps(LOW_EARNER, indent=200).encode()  # valid JSON, over 2 KiB
    assert len(padded) > 2048
    with TestClient(create_app(settings)) as client:
        response = _post_raw(client, "/predict", padded, **{"content-type": "application/json"})
        assert response.status_code == 413
        assert (
            "2048 bytes for /predict (CENSUS_API_MAX_RECORD_BODY_BYTES)"
            in (response.json()["detail"])
        )
        batch = b"[" + padded + b"]"
        ok = _post_raw(client, "/predict/batch", batch, **{"content-type": "application/json"})
        assert ok.status_code == 200


def test_the_default_record_limit_is_kilobytes() -> None:
    from census_pipeline.api.settings import Settings

    limit = Settings.model_fields["max_record_body_bytes"].default
    assert 1024 <= limit <= 64 * 1024
    assert limit < Settings.model_fields["max_body_bytes"].default // 100


def test_explained_batches_have_their_own_smaller_limit(served_dir: Path) -> None:
    settings = settings_for(served_dir, max_batch_size=10, max_explain_batch_size=3)
    with TestClient(create_app(settings)) as client:
        assert client.post("/predict/batch", json=[LOW_EARNER] * 4).status_code == 200
        assert client.post("/predict/batch?explain=true", json=[LOW_EARNER] * 3).status_code == 200
        response = client.post("/predict/batch?explain=true", json=[LOW_EARNER] * 4)
    assert response.status_code == 413
    assert "CENSUS_API_MAX_EXPLAIN_BATCH_SIZE" in response.json()["detail"]


# --- explanations run off the event loop, one LightGBM thread each, bounded --------------


def test_contributions_ask_lightgbm_for_one_thread(
    served_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictor = Predictor.load(served_dir)
    seen: list[Any] = []
    booster = predictor._booster
    original = booster.predict

    def spy(data: Any, **options: Any) -> Any:
        seen.append(options.get("num_threads"))
        return original(data, **options)

    monkeypatch.setattr(booster, "predict", spy)
    # One record goes through LightGBM's single-row C call, configured with num_threads=1
    # (`_FastSingleRow`): Booster.predict is not called at all.
    predictor.contributions_one(LOW_EARNER)
    predictor.contributions_many([LOW_EARNER, HIGH_EARNER])
    assert seen == [1]


def test_explanations_leave_the_event_loop_free_and_are_bounded(
    served_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, peak, threads = 0, 0, set()
    lock = threading.Lock()
    original = Predictor.contributions_one

    def slow(self: Predictor, record: Any) -> Any:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            threads.add(threading.current_thread().name)
        time.sleep(0.2)  # a stand-in for an expensive explanation, holding its thread
        with lock:
            running -= 1
        return original(self, record)

    monkeypatch.setattr(Predictor, "contributions_one", slow)
    app = create_app(settings_for(served_dir, explain_concurrency=2))

    async def scenario() -> tuple[list[int], float]:
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            explaining = [
                asyncio.ensure_future(client.post("/predict?explain=true", json=LOW_EARNER))
                for _ in range(6)
            ]
            await asyncio.sleep(0.05)
            started = time.perf_counter()
            health = await client.get("/health")
            waited = time.perf_counter() - started
            assert health.status_code == 200
            answers = await asyncio.gather(*explaining)
            return [a.status_code for a in answers], waited

    statuses, waited = asyncio.run(scenario())
    assert statuses == [200] * 6
    assert peak == 2, "explanations must be bounded by CENSUS_API_EXPLAIN_CONCURRENCY"
    assert all(name.startswith("explain") for name in threads), threads
    # Six 0.2 s explanations two at a time take 0.6 s; /health did not wait for them.
    assert waited < 0.15


# --- the body deadline, and the memory of a stalled body ---------------------------------


def test_a_stalled_body_is_answered_408_and_its_memory_released() -> None:
    chunk_bytes = 4 * 1024 * 1024
    answered: list[Message] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:  # pragma: no cover
        raise AssertionError("a stalled body must not reach the app")

    limits = BodyLimits(
        default_bytes=8 * chunk_bytes,
        timeout_s=0.3,
        per_path={},
        settings={},
        default_setting="CENSUS_API_MAX_BODY_BYTES",
    )
    router = APIRouter()
    router.add_api_route("/upload", lambda: None, methods=["POST"])
    guard = RequestGuard(app, router.routes, limits)
    sent = 0

    async def receive() -> Message:
        nonlocal sent
        if sent == 0:
            sent += 1
            return {"type": "http.request", "body": b"x" * chunk_bytes, "more_body": True}
        await asyncio.sleep(3600)  # the client stalls
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        answered.append(message)

    scope = {"type": "http", "method": "POST", "path": "/upload", "headers": []}
    tracemalloc.start()
    try:
        started = time.perf_counter()
        asyncio.run(guard(scope, receive, send))
        elapsed = time.perf_counter() - started
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert 0.3 <= elapsed < 1.0
    assert answered[0]["status"] == 408
    assert (b"connection", b"close") in answered[0]["headers"]
    assert "0.3 s" in json.loads(answered[1]["body"])["detail"]
    assert held < chunk_bytes / 4, f"{held} bytes still held after the stalled body was dropped"
