"""Fuzzing the Open Inference Protocol routes from their own OpenAPI description (schemathesis).

Every request schemathesis makes up, valid or not, must get an answer the description promises:
never a 5xx, only documented status codes, and bodies in the documented shapes (`{"error"}` for
every refusal). The whole service's description is fuzzed elsewhere; this one dwells on `/v2`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from census_pipeline.api.main import create_app

from .service_samples import settings_for

# Per operation: the bodies of the two inference routes have far more room to go wrong.
EXAMPLES = {"GET": 20, "POST": 50}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


OPERATIONS = [
    ("GET", "/v2"),
    ("GET", "/v2/health/live"),
    ("GET", "/v2/health/ready"),
    ("GET", "/v2/models/{model_name}"),
    ("GET", "/v2/models/{model_name}/ready"),
    ("GET", "/v2/models/{model_name}/versions/{model_version}"),
    ("GET", "/v2/models/{model_name}/versions/{model_version}/ready"),
    ("POST", "/v2/models/{model_name}/infer"),
    ("POST", "/v2/models/{model_name}/versions/{model_version}/infer"),
]


@pytest.fixture(scope="module")
def oip_schema(served_dir: Path) -> Any:
    # A small batch limit keeps generated batches that pass validation quick to score.
    app = create_app(settings_for(served_dir, max_batch_size=50))
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_every_oip_route_is_fuzzed(oip_schema: Any) -> None:
    documented = {
        (method.upper(), path)
        for path, item in oip_schema.raw_schema["paths"].items()
        if path.startswith("/v2")
        for method in item
    }
    assert documented == set(OPERATIONS)


# Negative data (bodies that break the schema) exists only where there is a body.
CASES = [(method, path, GenerationMode.POSITIVE) for method, path in OPERATIONS] + [
    (method, path, GenerationMode.NEGATIVE) for method, path in OPERATIONS if method == "POST"
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_oip_routes_keep_their_promises(
    oip_schema: Any, method: str, path: str, mode: GenerationMode
) -> None:
    operation = oip_schema[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES[method],
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    fuzz()
