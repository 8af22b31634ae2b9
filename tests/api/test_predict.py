"""Predictions through HTTP, checked against the predictor itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.files import read_json
from census_pipeline.predict import Predictor

from .service_samples import HIGH_EARNER, LOW_EARNER, settings_for, underscored


@pytest.fixture(scope="module")
def predictor(served_dir: Path) -> Predictor:
    return Predictor.load(served_dir)


def test_high_earner_is_predicted_above_50k(client: TestClient, served_dir: Path) -> None:
    response = client.post("/predict", json=HIGH_EARNER)
    assert response.status_code == 200
    body = response.json()
    metadata = read_json(served_dir / "model.json")
    assert body["label"] == ">50K"
    assert body["probability"] >= body["threshold"] == metadata["threshold"]
    assert body["model_version"] == metadata["model_version"]
    assert "explanation" not in body


def test_low_earner_is_predicted_at_most_50k(client: TestClient) -> None:
    response = client.post("/predict", json=LOW_EARNER)
    assert response.status_code == 200
    body = response.json()
    assert body["label"] == "<=50K"
    assert 0 <= body["probability"] < body["threshold"]


@pytest.mark.parametrize("record", [HIGH_EARNER, LOW_EARNER], ids=["high", "low"])
def test_probability_is_the_predictors(
    client: TestClient, predictor: Predictor, record: dict[str, Any]
) -> None:
    assert client.post("/predict", json=record).json()["probability"] == pytest.approx(
        predictor.probability_one(record), abs=1e-12
    )


def test_underscore_spellings_give_the_same_answer(client: TestClient) -> None:
    hyphenated = client.post("/predict", json=HIGH_EARNER).json()
    answer = client.post("/predict", json=underscored(HIGH_EARNER)).json()
    # Each prediction has its own id in the log (docs/monitoring.md); the rest is equal.
    assert answer.pop("id") != hyphenated.pop("id")
    assert answer == hyphenated


def test_missing_values_are_accepted_where_the_census_had_them(client: TestClient) -> None:
    record = {**LOW_EARNER, "workclass": None, "occupation": None, "native-country": None}
    response = client.post("/predict", json=record)
    assert response.status_code == 200
    assert response.json()["label"] == "<=50K"


def test_explain_lists_the_largest_contributions(client: TestClient, predictor: Predictor) -> None:
    response = client.post("/predict", params={"explain": "true"}, json=HIGH_EARNER)
    assert response.status_code == 200
    explanation = response.json()["explanation"]
    sizes = [abs(item["contribution"]) for item in explanation]
    assert len(explanation) == 5
    assert sizes == sorted(sizes, reverse=True)
    everything = predictor.contributions_one(HIGH_EARNER)
    assert max(abs(v) for v in everything.values()) == pytest.approx(sizes[0])
    for item in explanation:
        assert item["value"] == HIGH_EARNER[item["feature"]]
        assert item["contribution"] == pytest.approx(everything[item["feature"]])


def test_batch_answers_each_record_in_order(client: TestClient) -> None:
    records = [HIGH_EARNER, LOW_EARNER, underscored(HIGH_EARNER)]
    response = client.post("/predict/batch", json=records)
    assert response.status_code == 200
    singles = [client.post("/predict", json=record).json() for record in records]
    batch = response.json()
    assert [p["label"] for p in batch] == [">50K", "<=50K", ">50K"]
    for one, single in zip(batch, singles, strict=True):
        assert one["probability"] == pytest.approx(single["probability"], abs=1e-9)
        assert one["threshold"] == single["threshold"]
        assert one["model_version"] == single["model_version"]


def test_batch_can_explain_too(client: TestClient) -> None:
    response = client.post("/predict/batch?explain=true", json=[LOW_EARNER, HIGH_EARNER])
    assert response.status_code == 200
    assert all(len(p["explanation"]) == 5 for p in response.json())


def test_batch_explanations_equal_the_single_record_ones(client: TestClient) -> None:
    records = [HIGH_EARNER, LOW_EARNER, {**LOW_EARNER, "workclass": None, "age": 60}]
    batch = client.post("/predict/batch?explain=true", json=records).json()
    for record, answer in zip(records, batch, strict=True):
        single = client.post("/predict?explain=true", json=record).json()
        assert [e["feature"] for e in answer["explanation"]] == [
            e["feature"] for e in single["explanation"]
        ]
        for one, other in zip(answer["explanation"], single["explanation"], strict=True):
            assert one["value"] == other["value"]
            assert one["contribution"] == pytest.approx(other["contribution"], abs=1e-9)


def test_contributions_many_is_contributions_one_per_row(predictor: Predictor) -> None:
    records = [HIGH_EARNER, LOW_EARNER]
    matrix = predictor.contributions_many(records)
    assert matrix.shape == (2, len(predictor.feature_names))
    for record, row in zip(records, matrix, strict=True):
        single = predictor.contributions_one(record)
        assert row.tolist() == pytest.approx([single[name] for name in predictor.feature_names])
    assert predictor.contributions_many([]).shape == (0, len(predictor.feature_names))


def test_an_explained_batch_makes_one_contributions_call(
    served_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original_many = Predictor.contributions_many

    def counted_many(self: Predictor, records: Any) -> Any:
        calls.append("many")
        return original_many(self, records)

    def no_single(self: Predictor, record: Any) -> Any:  # pragma: no cover - must not run
        raise AssertionError("a batch must not explain record by record")

    monkeypatch.setattr(Predictor, "contributions_many", counted_many)
    monkeypatch.setattr(Predictor, "contributions_one", no_single)
    with TestClient(create_app(settings_for(served_dir))) as client:
        response = client.post("/predict/batch?explain=true", json=[LOW_EARNER] * 500)
    assert response.status_code == 200
    assert len(response.json()) == 500 and calls == ["many"]


def test_batch_over_the_limit_is_413(served_dir: Path) -> None:
    app: FastAPI = create_app(settings_for(served_dir, max_batch_size=2))
    with TestClient(app) as client:
        assert client.post("/predict/batch", json=[LOW_EARNER] * 2).status_code == 200
        response = client.post("/predict/batch", json=[LOW_EARNER] * 3)
    assert response.status_code == 413
    assert "limit of 2" in response.json()["detail"]


def test_bare_endpoint_validates_like_predict(client: TestClient) -> None:
    assert client.post("/bench/bare", json=HIGH_EARNER).status_code == 200
    assert client.post("/bench/bare", json={**HIGH_EARNER, "age": 7}).status_code == 422


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("false", False)])
def test_explain_flag_spellings(client: TestClient, value: str, expected: bool) -> None:
    response = client.post("/predict", params={"explain": value}, json=LOW_EARNER)
    assert response.status_code == 200
    assert ("explanation" in response.json()) is expected


def test_bad_explain_flag_is_422_naming_it(client: TestClient) -> None:
    response = client.post("/predict/batch?explain=maybe", json=[LOW_EARNER])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "query.explain"


def test_openapi_documents_the_explain_flag(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/predict", "/predict/batch"):
        parameters = paths[path]["post"]["parameters"]
        assert [(p["name"], p["in"], p["schema"]["type"]) for p in parameters] == [
            ("explain", "query", "boolean")
        ]
