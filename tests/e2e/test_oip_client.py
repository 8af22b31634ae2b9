"""The Open Inference Protocol as a standard client sees it: tritonclient against a real server.

The server is `census-pipeline serve` (what the Procfile and the container run) on a free port,
serving the session pipeline's blessed model; the client is NVIDIA's `tritonclient[http]`.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from api.oip_samples import table_records
from live_server import serving
from tritonclient.utils import InferenceServerException

from census_pipeline.config import Params
from census_pipeline.schema import FEATURES, NUMERIC_RANGES

ROWS = 1000


@pytest.fixture(scope="module")
def server(carded_project: Params, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`host:port` of a real server on the session's model (the shared live-server helper)."""
    with serving(carded_project, tmp_path_factory.mktemp("oip-server")) as started:
        yield f"127.0.0.1:{started.port}"


@pytest.fixture(scope="module")
def client(server: str) -> Iterator[triton.InferenceServerClient]:
    with triton.InferenceServerClient(url=server, network_timeout=60.0) as started:
        yield started


@pytest.fixture(scope="module")
def records(carded_project: Params) -> list[dict[str, Any]]:
    return table_records(carded_project.paths.clean_test, ROWS)


def _inputs(records: list[dict[str, Any]], binary: bool = False) -> list[triton.InferInput]:
    """One tensor per field, from numpy columns as a client would build them."""
    inputs = []
    for name in FEATURES:
        if name in NUMERIC_RANGES:
            column = np.array([r[name] for r in records], dtype=np.int64)
            tensor = triton.InferInput(name, [len(records)], "INT64")
        else:
            # No null in the protocol: a missing category travels as an empty string.
            values = [(r[name] or "").encode() for r in records]
            column = np.array(values, dtype=np.object_)
            tensor = triton.InferInput(name, [len(records)], "BYTES")
        tensor.set_data_from_numpy(column, binary_data=binary)
        inputs.append(tensor)
    return inputs


def _predict_each(server: str, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`/predict`'s answer for each record, over one kept-alive connection."""
    host, port = server.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    answers = []
    try:
        for record in records:
            body = json.dumps(record)
            connection.request(
                "POST", "/predict", body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            assert response.status == 200
            answers.append(json.loads(response.read()))
    finally:
        connection.close()
    return answers


@pytest.mark.slow
def test_health_and_metadata_through_tritonclient(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("census")
    assert not client.is_model_ready("adult")
    metadata = client.get_model_metadata("census")
    version = metadata["versions"][0]
    assert client.is_model_ready("census", model_version=version)
    assert [t["name"] for t in metadata["inputs"]] == list(FEATURES)
    assert {t["name"]: t["datatype"] for t in metadata["outputs"]} == {
        "probability": "FP64",
        "label": "BYTES",
    }
    assert client.get_server_metadata()["name"] == "census-pipeline"


@pytest.mark.slow
def test_infer_on_1000_test_records_equals_predict(
    client: triton.InferenceServerClient, server: str, records: list[dict[str, Any]]
) -> None:
    assert any(r["occupation"] is None for r in records), "no missing values in the sample"
    outputs = [
        triton.InferRequestedOutput("probability", binary_data=False),
        triton.InferRequestedOutput("label", binary_data=False),
    ]
    result = client.infer("census", _inputs(records), outputs=outputs, request_id="batch-1")
    probabilities = result.as_numpy("probability")
    assert probabilities.dtype == np.float64 and probabilities.shape == (ROWS,)
    expected = _predict_each(server, records)
    assert probabilities.tolist() == [answer["probability"] for answer in expected]
    labels = [str(label) for label in result.as_numpy("label")]
    assert labels == [answer["label"] for answer in expected]
    assert len(set(labels)) == 2
    assert result.get_response()["id"] == "batch-1"


@pytest.mark.slow
def test_binary_tensors_answer_what_json_tensors_answer(
    client: triton.InferenceServerClient, records: list[dict[str, Any]]
) -> None:
    # Triton's binary tensor extension both ways; with no output named, tritonclient asks for
    # every output in binary.
    as_json = client.infer("census", _inputs(records), outputs=[
        triton.InferRequestedOutput("probability", binary_data=False),
        triton.InferRequestedOutput("label", binary_data=False),
    ])  # fmt: skip
    version = client.get_model_metadata("census")["versions"][0]
    as_binary = client.infer("census", _inputs(records, binary=True), model_version=version)
    assert "data" not in as_binary.get_output("probability")
    assert as_binary.as_numpy("probability").tolist() == as_json.as_numpy("probability").tolist()
    labels = [label.decode() for label in as_binary.as_numpy("label")]
    assert labels == [str(label) for label in as_json.as_numpy("label")]


def _refusal(client: triton.InferenceServerClient, inputs: list[triton.InferInput]) -> Any:
    with pytest.raises(InferenceServerException) as caught:
        client.infer("census", inputs)
    return caught.value


@pytest.mark.slow
def test_refusals_reach_the_client_as_protocol_errors(
    client: triton.InferenceServerClient, records: list[dict[str, Any]]
) -> None:
    spoiled = [dict(r) for r in records[:5]]
    spoiled[3]["education"] = "Bachelor"
    bad = _refusal(client, _inputs(spoiled))
    assert bad.status() == "400"
    assert "input tensor 'education' element 3" in bad.message()

    wrong_type = _inputs(records[:5])
    wrong_type[0] = triton.InferInput("age", [5], "FP64")
    wrong_type[0].set_data_from_numpy(np.full(5, 40.0), binary_data=False)
    assert "datatype FP64, expected INT64" in _refusal(client, wrong_type).message()

    too_many = _refusal(client, _inputs(records[:1] * 10_001))
    assert too_many.status() == "413"
    assert "over the limit of 10000" in too_many.message()
