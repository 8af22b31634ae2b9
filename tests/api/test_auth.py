"""The optional API key guards the prediction endpoints only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app

from .service_samples import LOW_EARNER, settings_for

KEY = "k3y-for-tests-only-0123456789"


@pytest.fixture(scope="module")
def keyed(served_dir: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(served_dir, api_key=KEY, enable_bare_endpoint=True))
    with TestClient(app) as client:
        yield client


@pytest.mark.parametrize(
    ("path", "body"),
    [("/predict", LOW_EARNER), ("/predict/batch", [LOW_EARNER]), ("/bench/bare", LOW_EARNER)],
)
def test_prediction_endpoints_need_the_key(keyed: TestClient, path: str, body: object) -> None:
    missing = keyed.post(path, json=body)
    wrong = keyed.post(path, json=body, headers={"X-API-Key": KEY[:-1] + "X"})
    right = keyed.post(path, json=body, headers={"X-API-Key": KEY})
    assert missing.status_code == wrong.status_code == 401
    assert "X-API-Key" in missing.json()["detail"]
    assert KEY not in wrong.text
    assert right.status_code == 200


def test_key_is_checked_before_the_body(keyed: TestClient) -> None:
    # An anonymous client learns nothing about the schema from validation errors.
    assert keyed.post("/predict", json={"nonsense": 1}).status_code == 401


@pytest.mark.parametrize("path", ["/predict", "/predict/batch"])
@pytest.mark.parametrize("content_type", [None, "text/plain"])
def test_key_is_checked_before_the_content_type(
    keyed: TestClient, path: str, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    assert keyed.post(path, content=b"hello", headers=headers).status_code == 401
    with_key = keyed.post(path, content=b"hello", headers={**headers, "X-API-Key": KEY})
    assert with_key.status_code == 415


def test_other_endpoints_stay_open(keyed: TestClient) -> None:
    for path in ("/", "/health", "/ready", "/model", "/model-card", "/docs", "/openapi.json"):
        assert keyed.get(path).status_code == 200, path


def test_openapi_declares_the_key(keyed: TestClient) -> None:
    spec = keyed.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert any(s.get("in") == "header" and s.get("name") == "X-API-Key" for s in schemes.values())
    assert spec["paths"]["/predict"]["post"]["security"]


def test_without_a_key_set_no_header_is_needed(client: TestClient) -> None:
    assert client.post("/predict", json=LOW_EARNER).status_code == 200
    assert "securitySchemes" not in client.get("/openapi.json").json().get("components", {})
