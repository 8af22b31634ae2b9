"""Predictions: one record, or a batch.

`POST /predict` is `async def` and scores inline: validating the body and the predictor's
single-record fast path take tens of microseconds, less than a hop to the thread pool would
cost. A batch takes milliseconds, so it is validated and scored in the thread pool, keeping the
event loop free for other requests. Bodies are validated from the raw bytes (see `body.py`).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from census_pipeline.api.body import (
    RECORD_BODY_DOC,
    RECORDS,
    RECORDS_BODY_DOC,
    parse,
    read_json_body,
    read_record,
)
from census_pipeline.api.deps import SettingsDep, served_model
from census_pipeline.api.loading import ServedModel
from census_pipeline.api.schemas import ErrorResponse, Prediction
from census_pipeline.api.tracking import REQUEST_ID_HEADER, Tracker, tracker

router = APIRouter(
    prefix="/predict",
    tags=["prediction"],
    responses={
        401: {"model": ErrorResponse, "description": "API key missing or wrong (when set)."},
        413: {"model": ErrorResponse, "description": "Body or batch over the size limit."},
        415: {"model": ErrorResponse, "description": "Body is not JSON."},
        422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
        503: {"model": ErrorResponse, "description": "Model not loaded yet."},
    },
)

_FLAG = TypeAdapter(bool)

# `?explain=` is read by `_explain` below rather than declared as a FastAPI `Query` parameter:
# FastAPI's parameter machinery cost 15-18 µs per request, nearly what the prediction costs.
# This documents it exactly as FastAPI would have.
_EXPLAIN_DOC: dict[str, Any] = {
    "parameters": [
        {
            "name": "explain",
            "in": "query",
            "required": False,
            "description": "Add the features that pushed each prediction most.",
            "schema": {"type": "boolean", "default": False},
        }
    ]
}


def _explain(request: Request) -> bool:
    """`?explain=` as a boolean (true/false, 1/0, yes/no, on/off); anything else is a 422."""
    if not request.scope["query_string"]:
        return False
    value = request.query_params.get("explain")
    if value is None:
        return False
    try:
        return _FLAG.validate_python(value)
    except ValidationError as exc:
        errors = [{**e, "loc": ("query", "explain")} for e in exc.errors(include_url=False)]
        raise RequestValidationError(errors) from None


@router.post(
    "",
    response_model=Prediction,
    response_model_exclude_none=True,
    summary="Predict for one census record",
    openapi_extra={**RECORD_BODY_DOC, **_EXPLAIN_DOC},
)
async def predict(request: Request) -> Response:
    started = perf_counter()
    model = served_model(request)
    explain = _explain(request)
    record = await read_record(request)
    # The tracker adds the record's id, logs it and answers (docs/monitoring.md).
    return tracker(request).one(record, model.predict_one(record, explain=explain), started)


@router.post(
    "/batch",
    response_model=list[Prediction],
    response_model_exclude_none=True,
    summary="Predict for a list of census records",
    openapi_extra={**RECORDS_BODY_DOC, **_EXPLAIN_DOC},
)
async def predict_batch(request: Request, settings: SettingsDep) -> Response:
    started = perf_counter()
    model = served_model(request)
    explain = _explain(request)
    body = await read_json_body(request)
    track = tracker(request)
    request_id = track.request_id()
    answer = await run_in_threadpool(
        _score_batch, model, body, settings.max_batch_size, explain, (track, request_id, started)
    )
    return Response(answer, media_type="application/json", headers={REQUEST_ID_HEADER: request_id})


def _score_batch(
    model: ServedModel, body: bytes, limit: int, explain: bool, track: tuple[Tracker, str, float]
) -> bytes:
    """Parse, score and serialise in one go, off the event loop.

    The answer is serialised here (pydantic-core's `to_json`, a fraction of a millisecond for
    1,000 predictions) instead of by FastAPI against `list[Prediction]`, which would validate
    our own output again on the event loop: a quarter of the overhead the batch bar allows.
    """
    records: list[dict[str, Any]] = parse(RECORDS, body)
    if len(records) > limit:
        raise HTTPException(
            413,
            f"batch of {len(records)} records is over the limit of {limit}: "
            "split it into smaller batches",
        )
    answers = model.predict_many(records, explain=explain)
    tracking, request_id, started = track
    tracking.many(request_id, records, answers, started)
    return to_json(answers)
