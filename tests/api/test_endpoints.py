"""The read-only endpoints: welcome, probes, model facts, card and the OpenAPI document."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.files import read_json, sha256_file

from .service_samples import settings_for


def test_welcome_says_what_the_service_does_and_where_the_docs_are(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    body = response.json()
    assert "predict" in body["message"].lower()
    assert body["docs"] == "/docs"
    assert client.get(body["docs"]).status_code == 200
    assert client.get(body["openapi"]).status_code == 200
    assert "POST /predict" in body["endpoints"]


def test_health_answers_without_a_model() -> None:
    # No lifespan: the process is alive although nothing is loaded.
    bare = TestClient(create_app(settings_for(Path("/nonexistent"))))
    assert bare.get("/health").json() == {"status": "ok"}


def test_ready_is_503_until_the_model_is_loaded(served_dir: Path) -> None:
    app = create_app(settings_for(served_dir))
    not_started = TestClient(app)
    response = not_started.get("/ready")
    assert response.status_code == 503
    assert "not loaded" in response.json()["detail"]
    with TestClient(app) as started:
        ready = started.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert ready.json()["blessed"] is True


def test_model_reports_version_digests_threshold_metrics_and_verdict(
    client: TestClient, served_dir: Path
) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    info = response.json()
    metadata = read_json(served_dir / "model.json")
    verdict = read_json(served_dir / "verdict.json")
    assert info["model_version"] == metadata["model_version"]
    assert info["model_sha256"] == sha256_file(served_dir / "model.txt")
    assert info["metadata_sha256"] == sha256_file(served_dir / "model.json")
    assert info["train_data_sha256"] == metadata["train_data_sha256"]
    assert info["threshold"] == metadata["threshold"]
    assert info["features"] == metadata["feature_names"]
    assert info["blessed"] is True
    assert info["headline_metrics"]["roc_auc"] == verdict["headline_metrics"]["roc_auc"]
    assert info["verdict"]["model_sha256"] == metadata["model_sha256"]
    assert [c["name"] for c in info["verdict"]["checks"]] == [c["name"] for c in verdict["checks"]]


def test_model_card_is_served_as_html(client: TestClient, served_dir: Path) -> None:
    response = client.get("/model-card")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == (served_dir / "model_card.html").read_text(encoding="utf-8")
    assert read_json(served_dir / "model.json")["model_version"] in response.text


def test_missing_model_card_is_a_clear_404(model_copy: Path) -> None:
    (model_copy / "model_card.html").unlink()
    with TestClient(create_app(settings_for(model_copy))) as client:
        response = client.get("/model-card")
        assert client.get("/ready").status_code == 200  # the card is optional
    assert response.status_code == 404
    assert "census-pipeline card" in response.json()["detail"]


@pytest.mark.parametrize("damage", ["folder", "not-utf-8"])
def test_unreadable_model_card_is_a_warning_and_a_404_not_a_crash(
    model_copy: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    card = model_copy / "model_card.html"
    card.unlink()
    if damage == "folder":
        card.mkdir()
    else:
        card.write_bytes(b"<html>\xff\xfe caf\xe9</html>")
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        TestClient(create_app(settings_for(model_copy))) as client,
    ):
        assert client.get("/ready").status_code == 200
        response = client.get("/model-card")
    assert response.status_code == 404
    assert "no readable model card" in response.json()["detail"]
    (warning,) = [r.getMessage() for r in caplog.records if "model card" in r.getMessage()]
    assert "cannot read the model card" in warning and str(card) in warning


def test_every_json_endpoint_documents_its_response_model(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            content = operation["responses"]["200"]["content"]
            if path in ("/model-card", "/monitoring"):
                assert "text/html" in content
            elif path == "/metrics":
                assert any(kind.startswith("text/plain") for kind in content), content
            elif path == "/monitoring/report.json":
                # The monitor's own report, served as written (docs/monitoring.md).
                assert "application/json" in content
            else:
                assert "$ref" in str(content["application/json"]["schema"]), (method, path)


def test_openapi_shows_the_hyphenated_keys_and_an_example(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    record = schemas["CensusRecord"]
    assert {"education-num", "marital-status", "native-country"} <= set(record["properties"])
    assert record["additionalProperties"] is False
    assert record["examples"][0]["education-num"] == 13
    for path, schema in [
        ("/predict", {"$ref": "#/components/schemas/CensusRecord"}),
        (
            "/predict/batch",
            {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/components/schemas/CensusRecord"},
            },
        ),
    ]:
        body = client.get("/openapi.json").json()["paths"][path]["post"]["requestBody"]
        assert body["content"]["application/json"]["schema"] == schema
        assert body["content"]["application/json"]["example"]


def test_bare_endpoint_exists_only_when_enabled(served_dir: Path, client: TestClient) -> None:
    assert "/bench/bare" in client.get("/openapi.json").json()["paths"]
    default = TestClient(create_app(settings_for(served_dir)))
    assert "/bench/bare" not in default.get("/openapi.json").json()["paths"]
    assert default.post("/bench/bare", json={}).status_code == 404
