"""The Open Inference Protocol v2 routes: metadata, inference, and every refusal as `{"error"}`.

In-process (TestClient) against the session's real model; tests/e2e/test_oip_client.py drives a
real server with the real tritonclient.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.config import Params
from census_pipeline.predlog.database import sqlite_url
from census_pipeline.schema import CATEGORICAL, FEATURES, NUMERIC

from .oip_samples import (
    binary_outputs,
    binary_request,
    infer_body,
    spoiled,
    table_records,
    tensor,
)
from .service_samples import HIGH_EARNER, LOW_EARNER, settings_for

INFER = "/v2/models/census/infer"
KEY = "k3y-for-oip-tests-0123456789"


@pytest.fixture(scope="module")
def records(carded_project: Params) -> list[dict[str, Any]]:
    return table_records(carded_project.paths.clean_test, 1000)


@pytest.fixture(scope="module")
def version(client: TestClient) -> str:
    answer: str = client.get("/ready").json()["model_version"]
    return answer


def test_server_metadata_and_health(client: TestClient) -> None:
    meta = client.get("/v2").json()
    assert meta["name"] == "census-pipeline" and meta["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200


def test_model_metadata_lists_one_tensor_per_field(client: TestClient, version: str) -> None:
    meta = client.get("/v2/models/census").json()
    assert meta["name"] == "census" and meta["versions"] == [version]
    inputs = {t["name"]: t for t in meta["inputs"]}
    assert list(inputs) == list(FEATURES)
    assert all(inputs[name]["datatype"] == "BYTES" for name in CATEGORICAL)
    assert all(inputs[name]["datatype"] == "INT64" for name in NUMERIC)
    assert all(t["shape"] == [-1] for t in meta["inputs"])
    assert meta["outputs"] == [
        {"name": "probability", "datatype": "FP64", "shape": [-1]},
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
    ]
    assert client.get(f"/v2/models/census/versions/{version}").json() == meta


def test_model_and_version_readiness(client: TestClient, version: str) -> None:
    assert client.get("/v2/models/census/ready").status_code == 200
    assert client.get(f"/v2/models/census/versions/{version}/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2/models/adult"),
        ("GET", "/v2/models/adult/ready"),
        ("GET", "/v2/models/census/versions/0.0.0+000000000000"),
        ("GET", "/v2/models/census/versions/0.0.0+000000000000/ready"),
        ("POST", "/v2/models/adult/infer"),
        ("POST", "/v2/models/census/versions/0.0.0+000000000000/infer"),
    ],
)
def test_unknown_model_or_version_is_404(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json=infer_body([LOW_EARNER]))
    assert response.status_code == 404
    error = response.json()["error"]
    assert ("'adult'" in error) or ("0.0.0+000000000000" in error)


def test_infer_answers_what_predict_batch_answers(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    answer = client.post(INFER, json=infer_body(records, id="req-7"))
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "req-7" and body["model_name"] == "census"
    outputs = {out["name"]: out for out in body["outputs"]}
    assert outputs["probability"]["datatype"] == "FP64"
    assert outputs["label"]["datatype"] == "BYTES"
    assert outputs["probability"]["shape"] == outputs["label"]["shape"] == [1000]
    batch = client.post("/predict/batch", json=records).json()
    assert outputs["probability"]["data"] == [p["probability"] for p in batch]
    assert outputs["label"]["data"] == [p["label"] for p in batch]
    assert any(r["workclass"] is None for r in records), "no missing values in the sample"


def test_infer_by_version_and_a_chosen_output(client: TestClient, version: str) -> None:
    path = f"/v2/models/census/versions/{version}/infer"
    body = infer_body([HIGH_EARNER, LOW_EARNER], outputs=[{"name": "label"}])
    answer = client.post(path, json=body).json()
    assert answer["model_version"] == version and "id" not in answer
    assert answer["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [2], "data": [">50K", "<=50K"]}
    ]


def test_n_by_1_tensors_flat_or_nested_are_accepted(client: TestClient) -> None:
    flat = infer_body([HIGH_EARNER, LOW_EARNER])
    nested = spoiled(flat)
    for t in flat["inputs"]:
        t["shape"] = [2, 1]
    for t in nested["inputs"]:
        t["shape"], t["data"] = [2, 1], [[value] for value in t["data"]]
    expected = client.post(INFER, json=infer_body([HIGH_EARNER, LOW_EARNER])).json()
    assert client.post(INFER, json=flat).json() == expected
    assert client.post(INFER, json=nested).json() == expected


@pytest.mark.parametrize("missing", ["", None])
def test_a_missing_category_follows_predicts_rule(client: TestClient, missing: str | None) -> None:
    body = infer_body([LOW_EARNER])
    tensor(body, "occupation")["data"] = [missing]
    answer = client.post(INFER, json=body)
    expected = client.post("/predict", json={**LOW_EARNER, "occupation": None}).json()
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"][0]["data"] == [expected["probability"]]
    tensor(body, "education")["data"] = [missing]
    refused = client.post(INFER, json=body)
    assert refused.status_code == 400
    assert "input tensor 'education' element 0" in refused.json()["error"]


def _set(name: str, index: int, value: Any) -> Callable[[dict[str, Any]], None]:
    def spoil(body: dict[str, Any]) -> None:
        tensor(body, name)["data"][index] = value

    return spoil


def _datatype(body: dict[str, Any]) -> None:
    tensor(body, "age")["datatype"] = "FP32"


def _ragged(body: dict[str, Any]) -> None:
    t = tensor(body, "hours-per-week")
    t["data"].pop()
    t["shape"] = [len(t["data"])]


def _unknown(body: dict[str, Any]) -> None:
    body["inputs"].append({"name": "salary", "datatype": "BYTES", "shape": [3], "data": ["a"] * 3})


def _missing(body: dict[str, Any]) -> None:
    body["inputs"] = [t for t in body["inputs"] if t["name"] != "race"]


def _shape(body: dict[str, Any]) -> None:
    tensor(body, "sex")["shape"] = [4]


def _two_d(body: dict[str, Any]) -> None:
    tensor(body, "sex")["shape"] = [1, 3]


def _twice(body: dict[str, Any]) -> None:
    body["inputs"].append(dict(tensor(body, "age")))


def _output(body: dict[str, Any]) -> None:
    body["outputs"] = [{"name": "explanation"}]


@pytest.mark.parametrize(
    ("spoil", "words"),
    [
        (_datatype, ["input tensor 'age'", "datatype FP32", "expected INT64"]),
        (_ragged, ["differ in length", "'hours-per-week' has 2", "3"]),
        (_unknown, ["unknown input tensor 'salary'"]),
        (_missing, ["missing input tensor", "race"]),
        (_set("education", 2, "Bachelor"), ["input tensor 'education' element 2", "'Bachelor'"]),
        (_set("age", 1, 400), ["input tensor 'age' element 1", "less than or equal to 100"]),
        (_set("age", 1, 40.5), ["input tensor 'age' element 1", "integer"]),
        (_set("age", 2, "40"), ["input tensor 'age' element 2", "integer"]),
        (_set("capital-gain", 0, None), ["input tensor 'capital-gain' element 0", "missing"]),
        (_shape, ["input tensor 'sex'", "shape [4]", "3 data elements"]),
        (_two_d, ["input tensor 'sex'", "shape [1, 3]", "expected [N]"]),
        (_twice, ["'age' is sent twice"]),
        (_output, ["unknown output tensor 'explanation'"]),
    ],
)
def test_bad_requests_are_400_naming_the_problem(
    client: TestClient, spoil: Callable[[dict[str, Any]], None], words: list[str]
) -> None:
    body = spoiled(infer_body([HIGH_EARNER, LOW_EARNER, HIGH_EARNER]))
    spoil(body)
    answer = client.post(INFER, json=body)
    assert answer.status_code == 400, answer.text
    assert list(answer.json()) == ["error"]
    for word in words:
        assert word in answer.json()["error"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{", ["invalid inference request", "JSON"]),
        (b"[]", ["invalid inference request"]),
        (b'{"inputs": []}', ["inputs"]),
        (
            b'{"inputs": [{"name": "age", "shape": [1], "datatype": "INT65", "data": [1]}]}',
            ["datatype"],
        ),
        (
            b'{"inputs": [{"name": "age", "shape": [0], "datatype": "INT64", "data": []}]}',
            ["missing"],
        ),
    ],
)
def test_malformed_envelopes_are_400(client: TestClient, content: bytes, words: list[str]) -> None:
    answer = client.post(INFER, content=content)
    assert answer.status_code == 400, answer.text
    assert all(word in answer.json()["error"] for word in words), answer.json()


def test_empty_tensors_are_400(client: TestClient) -> None:
    answer = client.post(INFER, json=infer_body([]))
    assert answer.status_code == 400
    assert "empty" in answer.json()["error"]


def test_over_the_batch_limit_is_413_like_predict_batch(client: TestClient) -> None:
    answer = client.post(INFER, json=infer_body([LOW_EARNER] * 10_001))
    assert answer.status_code == 413
    assert "10001 records is over the limit of 10000" in answer.json()["error"]
    assert client.post(INFER, json=infer_body([LOW_EARNER] * 10_000)).status_code == 200


def test_binary_tensors_answer_what_json_tensors_answer(
    client: TestClient, records: list[dict[str, Any]]
) -> None:
    body = infer_body(records[:200])
    expected = client.post(INFER, json=body).json()["outputs"]
    content, headers = binary_request(body, FEATURES)
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["outputs"] == expected  # JSON outputs: none asked in binary
    mixed, headers = binary_request(body, ["age", "education", "native-country"])
    assert client.post(INFER, content=mixed, headers=headers).json()["outputs"] == expected


def test_binary_outputs_when_asked(client: TestClient, records: list[dict[str, Any]]) -> None:
    body = infer_body(records[:50], parameters={"binary_data_output": True})
    expected = client.post("/predict/batch", json=records[:50]).json()
    answer = client.post(INFER, json=body)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    outputs = binary_outputs(answer.content, length)
    assert outputs["probability"] == [p["probability"] for p in expected]
    assert outputs["label"] == [p["label"] for p in expected]
    # An output's own parameter wins over the request's.
    body["outputs"] = [{"name": "label", "parameters": {"binary_data": False}}]
    assert client.post(INFER, json=body).json()["outputs"][0]["data"] == outputs["label"]


def _binary_spoiled(change: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]]) -> Any:
    body = infer_body([LOW_EARNER, HIGH_EARNER])
    return change(*binary_request(body, ["age", "sex"]))


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda c, h: (c, {**h, "Inference-Header-Content-Length": "x"}), ["expected the JSON"]),
        (lambda c, h: (c, {**h, "Inference-Header-Content-Length": "99999"}), ["at most"]),
        (lambda c, h: (c + b"\0", h), ["1 bytes after the JSON header belong to no input"]),
        (lambda c, h: (c[:-3], h), ["input tensor 'sex'", "does not fit"]),
        (lambda c, h: (c.replace(b"Female", b"Fem\xffle"), h), ["'sex' element 0: not UTF-8"]),
        (lambda c, h: (c.replace(b"Male", b"Mail"), h), ["input tensor 'sex' element 1", "'Mail'"]),
    ],
)
def test_bad_binary_framing_is_400(
    client: TestClient, change: Callable[..., tuple[bytes, dict[str, str]]], words: list[str]
) -> None:
    content, headers = _binary_spoiled(change)
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 400, answer.text
    assert all(word in answer.json()["error"] for word in words), answer.json()


def test_an_int64_chunk_of_odd_size_is_400(client: TestClient) -> None:
    body = infer_body([LOW_EARNER])
    content, headers = binary_request(body, [])
    header = json.loads(content)
    tensor(header, "age")["parameters"] = {"binary_data_size": 5}
    del tensor(header, "age")["data"]
    raw = json.dumps(header).encode()
    headers = {"Inference-Header-Content-Length": str(len(raw))}
    answer = client.post(INFER, content=raw + b"12345", headers=headers)
    assert "5 bytes is no INT64 array" in answer.json()["error"]


def test_a_tensor_without_data_is_400(client: TestClient) -> None:
    body = infer_body([LOW_EARNER])
    del tensor(body, "race")["data"]
    answer = client.post(INFER, json=body)
    assert answer.status_code == 400 and "'race' has no data" in answer.json()["error"]


def test_any_content_type_is_read_as_json(client: TestClient) -> None:
    # tritonclient sends no Content-Type at all.
    content = json.dumps(infer_body([LOW_EARNER])).encode()
    for headers in ({}, {"content-type": "application/octet-stream"}):
        assert client.post(INFER, content=content, headers=headers).status_code == 200


def test_a_compressed_body_is_415(client: TestClient) -> None:
    import gzip

    content = gzip.compress(json.dumps(infer_body([LOW_EARNER])).encode())
    answer = client.post(INFER, content=content, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 415
    assert "'gzip' is not supported" in answer.json()["error"]


@pytest.fixture(scope="module")
def keyed(served_dir: Path) -> Iterator[TestClient]:
    app = create_app(settings_for(served_dir, api_key=KEY, oip_model_name="adult"))
    with TestClient(app) as started:
        yield started


def test_inference_needs_the_api_key_and_metadata_does_not(keyed: TestClient) -> None:
    path = "/v2/models/adult/infer"
    missing = keyed.post(path, json=infer_body([LOW_EARNER]))
    assert missing.status_code == 401 and "X-API-Key" in missing.json()["error"]
    assert keyed.post(path, content=b"nonsense").status_code == 401
    right = keyed.post(path, json=infer_body([LOW_EARNER]), headers={"X-API-Key": KEY})
    assert right.status_code == 200
    for open_path in ("/v2", "/v2/health/ready", "/v2/models/adult", "/v2/models/adult/ready"):
        assert keyed.get(open_path).status_code == 200, open_path


def test_the_model_name_is_a_setting(keyed: TestClient) -> None:
    assert keyed.get("/v2/models/adult").json()["name"] == "adult"
    assert keyed.get("/v2/models/census").status_code == 404


def test_body_limit_covers_the_oip_routes(served_dir: Path, version: str) -> None:
    app = create_app(settings_for(served_dir, max_body_bytes=4096))
    body = infer_body([LOW_EARNER] * 40)
    with TestClient(app) as small:
        for path in (INFER, f"/v2/models/census/versions/{version}/infer"):
            answer = small.post(path, json=body)
            assert answer.status_code == 413, path
            assert "4096 bytes" in answer.json()["error"]


def test_openapi_documents_the_oip_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/v2/models/{model_name}",
        "/v2/models/{model_name}/ready",
        "/v2/models/{model_name}/versions/{model_version}",
        "/v2/models/{model_name}/versions/{model_version}/ready",
    ):
        assert "get" in paths[path], path
    for path in (
        "/v2/models/{model_name}/infer",
        "/v2/models/{model_name}/versions/{model_version}/infer",
    ):
        post = paths[path]["post"]
        schema = post["requestBody"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/InferenceRequest"}
        assert {"200", "400", "404", "413"} <= set(post["responses"])
    assert "RequestInput" in spec["components"]["schemas"]


def test_the_documented_example_request_is_answered(client: TestClient) -> None:
    from census_pipeline.api.schemas import EXAMPLE_RECORD

    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v2/models/{model_name}/infer"]["post"]["requestBody"]
    example = body["content"]["application/json"]["example"]
    answer = client.post(INFER, json=example)
    assert answer.status_code == 200, answer.text
    expected = client.post("/predict", json=EXAMPLE_RECORD).json()["probability"]
    assert answer.json()["outputs"][0]["data"] == [expected]


def test_inference_is_logged_like_a_batch(served_dir: Path, tmp_path: Path) -> None:
    from .test_monitoring import logged, wait_logged

    url = sqlite_url(tmp_path / "log.sqlite")
    settings = settings_for(served_dir, database_url=url, log_flush_seconds=0.02)
    with TestClient(create_app(settings)) as logging_client:
        answer = logging_client.post(INFER, json=infer_body([LOW_EARNER, HIGH_EARNER]))
        wait_logged(logging_client, 2)
    request_id = answer.headers["X-Request-ID"]
    rows = logged(url)
    probabilities = answer.json()["outputs"][0]["data"]
    for index, record in enumerate([LOW_EARNER, HIGH_EARNER]):
        row = rows[f"{request_id}:{index}"]
        assert row["route"] == "oip" and row["age"] == record["age"]
        assert row["probability"] == probabilities[index]
