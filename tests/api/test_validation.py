"""Strict input: every client mistake is a 4xx naming the problem, never a 500 or a trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.schema import CATEGORY_DOMAINS, NULLABLE, NUMERIC_RANGES

from .service_samples import LOW_EARNER, settings_for


def _without(field: str) -> dict[str, Any]:
    return {k: v for k, v in LOW_EARNER.items() if k != field}


def _assert_clean_error(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    assert isinstance(body["detail"], str) and body["detail"]
    return body


def _fields(body: dict[str, Any]) -> list[str]:
    return [error["field"] for error in body["errors"]]


BAD_RECORDS = [
    pytest.param(_without("education-num"), "body.education-num", "missing", id="missing"),
    pytest.param({**LOW_EARNER, "age": "19"}, "body.age", "int_type", id="age-as-string"),
    pytest.param({**LOW_EARNER, "age": 19.5}, "body.age", "int_type", id="age-as-float"),
    pytest.param({**LOW_EARNER, "hours-per-week": True}, "body.hours-per-week", "int_type",
                 id="bool-for-int"),
    pytest.param({**LOW_EARNER, "age": 400}, "body.age", "less_than_equal", id="age-too-big"),
    pytest.param({**LOW_EARNER, "capital-gain": -1}, "body.capital-gain", "greater_than_equal",
                 id="negative-gain"),
    pytest.param({**LOW_EARNER, "education": "Kindergarten"}, "body.education", "literal_error",
                 id="unknown-category"),
    pytest.param({**LOW_EARNER, "sex": "male"}, "body.sex", "literal_error", id="wrong-case"),
    pytest.param({**LOW_EARNER, "race": None}, "body.race", "literal_error", id="null-not-allowed"),
    pytest.param({**LOW_EARNER, "race": 3}, "body.race", "literal_error", id="number-for-category"),
    pytest.param({**LOW_EARNER, "salary": ">50K"}, "body.salary", "extra_forbidden",
                 id="unknown-field"),
]  # fmt: skip


@pytest.mark.parametrize(("record", "field", "kind"), BAD_RECORDS)
def test_bad_record_is_422_naming_the_field(
    client: TestClient, record: dict[str, Any], field: str, kind: str
) -> None:
    body = _assert_clean_error(client.post("/predict", json=record), 422)
    assert body["errors"][0] == {"field": field, "message": body["errors"][0]["message"],
                                 "type": kind}  # fmt: skip
    assert field in body["detail"]


def test_only_the_census_nullable_fields_accept_null(client: TestClient) -> None:
    for field in CATEGORY_DOMAINS:
        status = client.post("/predict", json={**LOW_EARNER, field: None}).status_code
        assert status == (200 if field in NULLABLE else 422), field


def test_range_bounds_themselves_are_accepted(client: TestClient) -> None:
    for field, (low, high) in NUMERIC_RANGES.items():
        for value in (low, high):
            response = client.post("/predict", json={**LOW_EARNER, field: value})
            assert response.status_code == 200, (field, value)


def test_several_mistakes_are_all_named(client: TestClient) -> None:
    record = {**_without("age"), "sex": "X", "colour": "blue"}
    body = _assert_clean_error(client.post("/predict", json=record), 422)
    assert set(_fields(body)) == {"body.age", "body.sex", "body.colour"}
    assert "(and 2 more)" in body["detail"]


def test_batch_error_names_the_record(client: TestClient) -> None:
    records = [LOW_EARNER, {**LOW_EARNER, "age": 4}]
    body = _assert_clean_error(client.post("/predict/batch", json=records), 422)
    assert _fields(body) == ["body.1.age"]


def test_a_batch_full_of_mistakes_reports_a_bounded_list(client: TestClient) -> None:
    body = _assert_clean_error(client.post("/predict/batch", json=[{"age": 1}] * 500), 422)
    assert len(body["errors"]) == 20
    assert "more" in body["detail"]


def _post_raw(client: TestClient, path: str, content: bytes, **headers: str) -> Any:
    return client.post(path, content=content, headers=headers)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b'{"age": 39,', "body"),
        (b"not json", "body"),
        (b"", "body"),
        (b"[1, 2]", "body"),
        (b"null", "body"),
        (b'"a string"', "body"),
    ],
    ids=["truncated", "garbage", "empty", "array", "null", "string"],
)
def test_malformed_bodies_are_422(client: TestClient, content: bytes, field: str) -> None:
    response = _post_raw(client, "/predict", content, **{"content-type": "application/json"})
    body = _assert_clean_error(response, 422)
    assert _fields(body)[0] == field


def test_object_where_a_batch_is_expected_is_422(client: TestClient) -> None:
    _assert_clean_error(client.post("/predict/batch", json=LOW_EARNER), 422)


def test_empty_batch_is_422(client: TestClient) -> None:
    _assert_clean_error(client.post("/predict/batch", json=[]), 422)


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_non_json_bodies_are_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/predict", content=json.dumps(LOW_EARNER).encode(), headers=headers)
    body = _assert_clean_error(response, 415)
    assert "application/json" in body["detail"]


def test_json_with_charset_is_fine(client: TestClient) -> None:
    response = _post_raw(
        client,
        "/predict",
        json.dumps(LOW_EARNER).encode(),
        **{"content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


@pytest.fixture
def small_limit_client(served_dir: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(served_dir, max_body_bytes=2048))
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def test_the_size_guard_leaves_other_paths_to_routing(small_limit_client: TestClient) -> None:
    big = b"x" * 10_000
    _assert_clean_error(small_limit_client.post("/nope", content=big), 404)


def test_body_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    response = small_limit_client.post("/predict/batch", json=[LOW_EARNER] * 20)
    body = _assert_clean_error(response, 413)
    assert "2048 bytes" in body["detail"]
    assert small_limit_client.post("/predict/batch", json=[LOW_EARNER] * 2).status_code == 200


def test_streamed_body_over_the_limit_is_413(small_limit_client: TestClient) -> None:
    # A generator body is sent without Content-Length: the guard must count what arrives.
    def chunks() -> Iterator[bytes]:
        yield b"["
        for i in range(20):
            yield (b"," if i else b"") + json.dumps(LOW_EARNER).encode()
        yield b"]"

    response = small_limit_client.post(
        "/predict/batch", content=chunks(), headers={"content-type": "application/json"}
    )
    _assert_clean_error(response, 413)


def test_a_lying_content_length_is_refused_before_reading(small_limit_client: TestClient) -> None:
    response = _post_raw(
        small_limit_client,
        "/predict",
        b"{}",
        **{"content-type": "application/json", "content-length": "999999999"},
    )
    _assert_clean_error(response, 413)


def test_unknown_paths_and_methods_are_4xx(client: TestClient) -> None:
    _assert_clean_error(client.get("/nope"), 404)
    _assert_clean_error(client.get("/predict"), 405)
    # The body guard covers the prediction routes only: routing answers everything else.
    _assert_clean_error(
        client.post("/nope", content=b"hi", headers={"content-type": "text/plain"}), 404
    )
    _assert_clean_error(client.post("/health", content=b"hi"), 405)
    _assert_clean_error(client.put("/predict", json=LOW_EARNER), 405)
    _assert_clean_error(client.post("/predict?explain=maybe", json=LOW_EARNER), 422)
