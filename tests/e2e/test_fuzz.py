"""Every operation the service publishes, fuzzed by schemathesis from its own OpenAPI document.

Against a real `census-pipeline serve` process with every optional route switched on. All of
schemathesis' checks run, so a case fails on a 5xx, on a response its schema does not describe
(status, content type, body, headers), on a schema-valid request that is refused and on a
schema-invalid one that is accepted. The seed is fixed, so CI replays the same cases; the longer
run of benchmarks/fuzz_api.py (over 5,000 requests) is recorded in docs/benchmarks.md. The
operations are read from the served document, so routes added later are fuzzed as soon as they
land: a new route that breaks its contract fails here, named with a curl command to reproduce.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable
from live_server import Server, serving
from schemathesis import APIOperation, GenerationMode
from schemathesis.core.result import Err

from census_pipeline.config import Params

SEED = 20261128
EXAMPLES_PER_OPERATION = 12


@pytest.fixture(scope="module")
def fuzzed_server(
    carded_project: Params, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The service with every optional route on, on a private copy of the model folder (the
    prediction log and the monitoring report write beside it)."""
    work = tmp_path_factory.mktemp("fuzz")
    models = Path(shutil.copytree(carded_project.paths.model_dir, work / "models"))
    shutil.copy2(carded_project.paths.model_card_html, models / "model_card.html")
    with serving(
        carded_project,
        work,
        model_dir=models,
        settings={
            "model_card_path": str(models / "model_card.html"),
            "enable_bare_endpoint": "true",
            "prediction_log": "true",
            "monitoring_dir": str(work / "monitoring"),
        },
    ) as server:
        yield server


def _operations(server: Server) -> list[APIOperation[Any, Any, Any, Any]]:
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        # A part the fuzzer cannot read is a failure here, not an operation quietly left out.
        if isinstance(result, Err):
            raise AssertionError(f"unusable OpenAPI: {result.err()}")
        operations.append(result.ok())
    return operations


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_its_contract(fuzzed_server: Server, mode: GenerationMode) -> None:
    # One Hypothesis run per operation inside this test: the operations are only known once the
    # server runs (schemathesis' own lazy pytest parametrisation does not run on this pytest).
    failures: dict[str, str] = {}
    for operation in _operations(fuzzed_server):

        @seed(SEED)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            phases=[Phase.explicit, Phase.generate],  # no shrinking: the first failure is shown
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def keeps_its_contract(case: schemathesis.Case[Any]) -> None:
            case.call_and_validate(base_url=fuzzed_server.url)

        try:
            keeps_its_contract()
        except Unsatisfiable:
            # Negative mode on an operation with nothing to get wrong (no parameters, no body,
            # or only free-form strings): there is no schema-invalid request to send.
            continue
        except (Exception, BaseExceptionGroup) as exc:  # every failing operation is named
            failures[f"{operation.method.upper()} {operation.path}"] = _summary(exc)
    assert not failures, "\n".join(f"{where}: {why}" for where, why in failures.items())


def _summary(exc: BaseException) -> str:
    """The failed checks' titles and the curl command that reproduces them."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    titles = [line for line in lines if line.startswith("- ")]
    curl = [line for line in lines if line.startswith("curl ")]
    return " | ".join(titles + curl) or " | ".join(lines)[:800]


@pytest.mark.slow
def test_the_fuzzed_operations_are_all_the_servers(fuzzed_server: Server) -> None:
    import json
    import urllib.request

    with urllib.request.urlopen(f"{fuzzed_server.url}/openapi.json", timeout=10) as response:
        document = json.load(response)
    published = {(m.upper(), p) for p, item in document["paths"].items() for m in item}
    fuzzed = {(op.method.upper(), op.path) for op in _operations(fuzzed_server)}
    assert fuzzed == published
    assert {("POST", "/predict"), ("POST", "/predict/batch"), ("POST", "/bench/bare")} <= fuzzed
