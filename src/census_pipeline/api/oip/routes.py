"""The Open Inference Protocol v2 REST endpoints (`/v2/...`), beside the service's own routes.

Standard clients (tritonclient, KServe and Seldon gateways, load tools) speak this protocol. The
routes are a thin layer: model metadata comes from the served model, inference goes through the
adapter in `tensors.py` to the same validation and the same predictor as `/predict/batch`. Every
error, including the API key's 401 and the 503 before the model is loaded, is answered in the
protocol's shape `{"error": "..."}` by `OipRoute`.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from time import perf_counter
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from census_pipeline import __version__
from census_pipeline.api.deps import served_model
from census_pipeline.api.loading import ServedModel
from census_pipeline.api.oip import binary, tensors
from census_pipeline.api.oip.schemas import (
    InferenceError,
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from census_pipeline.api.settings import Settings
from census_pipeline.api.tracking import REQUEST_ID_HEADER, tracker

SERVER_NAME = "census-pipeline"
ERROR_KEY = "error"  # the protocol's errors are {"error": "..."}
BINARY_HEADER = b"inference-header-content-length"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": InferenceError, "description": "The request breaks the protocol or a rule."},
    401: {"model": InferenceError, "description": "API key missing or wrong (when set)."},
    404: {"model": InferenceError, "description": "No such model or version."},
    408: {"model": InferenceError, "description": "Body not received within the deadline."},
    413: {"model": InferenceError, "description": "Body or batch over the size limit."},
    415: {"model": InferenceError, "description": "A compressed body (Content-Encoding)."},
    503: {"model": InferenceError, "description": "Model not loaded yet."},
}


def error_response(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse({ERROR_KEY: message}, status_code=status, headers=headers)


class OipRoute(APIRoute):
    """Answers every failure of its endpoint, dependencies included, as `{"error": ...}`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except tensors.InferenceFailure as exc:
                return error_response(exc.status, exc.message)
            except HTTPException as exc:
                return error_response(exc.status_code, str(exc.detail), exc.headers)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
                where = ".".join(str(part) for part in first["loc"])
                return error_response(400, f"invalid request: {where}: {first['msg']}")

        return answer


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _model(request: Request, model_name: str, model_version: str | None = None) -> ServedModel:
    """The served model when the path names it (and its version); 404 otherwise."""
    name = _settings(request).oip_model_name
    if model_name != name:
        message = f"unknown model '{model_name}': this server has '{name}'"
        raise tensors.InferenceFailure(404, message)
    model = served_model(request)
    if model_version is not None and model_version != model.version:
        raise tensors.InferenceFailure(
            404,
            f"unknown version '{model_version}' of model '{name}': it has {model.version}",
        )
    return model


# Routes without a body: the server and its model, read by anyone (like /health and /model).
public = APIRouter(prefix="/v2", tags=["open inference protocol"], route_class=OipRoute)
# Inference: the API key applies, and so do the body-size guard's limits.
inference = APIRouter(
    prefix="/v2", tags=["open inference protocol"], route_class=OipRoute, responses=_ERRORS
)


@public.get("", response_model=ServerMetadata, summary="Server metadata")
async def server_metadata() -> dict[str, Any]:
    return {"name": SERVER_NAME, "version": __version__, "extensions": [binary.EXTENSION]}


@public.get("/health/live", response_model=ServerLive, summary="The server is alive")
async def live() -> dict[str, bool]:
    return {"live": True}


@public.get(
    "/health/ready", response_model=ServerReady, summary="The server is ready to infer",
    responses=_ERRORS,
)  # fmt: skip
async def ready(request: Request) -> dict[str, bool]:
    served_model(request)
    return {"ready": True}


@public.get(
    "/models/{model_name}", response_model=ModelMetadata, summary="Model metadata",
    responses=_ERRORS,
)  # fmt: skip
async def model_metadata(request: Request, model_name: str) -> dict[str, Any]:
    return tensors.model_metadata(_model(request, model_name), model_name)


@public.get(
    "/models/{model_name}/versions/{model_version}", response_model=ModelMetadata,
    summary="Model metadata of a version", responses=_ERRORS,
)  # fmt: skip
async def version_metadata(request: Request, model_name: str, model_version: str) -> dict[str, Any]:
    return tensors.model_metadata(_model(request, model_name, model_version), model_name)


@public.get(
    "/models/{model_name}/ready", response_model=ModelReady, summary="The model is ready",
    responses=_ERRORS,
)  # fmt: skip
async def model_ready(request: Request, model_name: str) -> dict[str, Any]:
    _model(request, model_name)
    return {"name": model_name, "ready": True}


@public.get(
    "/models/{model_name}/versions/{model_version}/ready", response_model=ModelReady,
    summary="The model version is ready", responses=_ERRORS,
)  # fmt: skip
async def version_ready(request: Request, model_name: str, model_version: str) -> dict[str, Any]:
    _model(request, model_name, model_version)
    return {"name": model_name, "ready": True}


_INFER_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {"$ref": "#/components/schemas/InferenceRequest"},
                "example": tensors.example_request(),
            }
        },
    }
}
# With binary outputs (Triton's extension), the JSON header and then the outputs' bytes.
_BINARY_ANSWER: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        "description": "The answer; with binary outputs asked for, the header "
        "Inference-Header-Content-Length gives the JSON part's length.",
    }
}


@inference.post(
    "/models/{model_name}/infer", response_model=InferenceResponse, summary="Infer",
    openapi_extra=_INFER_DOC, responses=_BINARY_ANSWER,
)  # fmt: skip
async def infer(request: Request, model_name: str) -> Response:
    return await _infer(request, _model(request, model_name), model_name)


@inference.post(
    "/models/{model_name}/versions/{model_version}/infer", response_model=InferenceResponse,
    summary="Infer with a version", openapi_extra=_INFER_DOC, responses=_BINARY_ANSWER,
)  # fmt: skip
async def version_infer(request: Request, model_name: str, model_version: str) -> Response:
    return await _infer(request, _model(request, model_name, model_version), model_name)


async def _infer(request: Request, model: ServedModel, name: str) -> Response:
    """Any content type is read as JSON: tritonclient sends none. With Triton's binary tensor
    extension the header says where the JSON ends and the tensors' bytes begin. Logged and
    counted like a batch; row i's id (for /feedback) is `<X-Request-ID>:<i>`."""
    started = perf_counter()
    header_length = None
    for key, value in request.scope["headers"]:
        if key == BINARY_HEADER:
            header_length = value.decode("latin-1")
        elif key == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
            # As on /predict: a compressed body would dodge the size limit once inflated.
            raise tensors.InferenceFailure(
                415,
                f"Content-Encoding {value.decode('latin-1')!r} is not supported: "
                "send the body uncompressed",
            )
    body = await request.body()
    limit = _settings(request).max_batch_size
    track = tracker(request)
    request_id = track.request_id()

    def scored(records: list[dict[str, Any]], answers: list[dict[str, Any]]) -> None:
        track.many(request_id, records, answers, started, route="oip")

    answer, json_length = await run_in_threadpool(
        tensors.infer, model, name, body, limit, header_length, scored
    )
    headers = {REQUEST_ID_HEADER: request_id}
    if json_length is None:
        return Response(answer, media_type="application/json", headers=headers)
    headers[binary.HEADER] = str(json_length)
    return Response(answer, media_type="application/octet-stream", headers=headers)


def component_schemas() -> dict[str, Any]:
    """The request's schema and its parts, for the OpenAPI document's components: the route
    reads the body itself (see `_infer`), so FastAPI does not add them on its own."""
    schema = InferenceRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    parts: dict[str, Any] = schema.pop("$defs", {})
    return {**parts, "InferenceRequest": schema}


def body_paths() -> list[str]:
    """The inference routes' paths: the body guard answers their 413/408 as `{"error"}` too."""
    return [route.path for route in inference.routes if isinstance(route, APIRoute)]
