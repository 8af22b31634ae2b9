"""Predictions: one record, or a batch.

`POST /predict` is `async def` and scores inline: validating the body and the predictor's
single-record fast path take tens of microseconds, less than a hop to the thread pool would
cost. A batch takes milliseconds, so it is validated and scored in the thread pool, keeping the
event loop free for other requests. Explanations cost about a hundred times a prediction: they
go to the explain pool (`lifecycle.py`), one LightGBM thread each, a bounded number at a time.
Bodies are validated from the raw bytes (see `body.py`); answers are serialised by
pydantic-core, so an explanation's `value: null` is kept on both routes alike.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from functools import partial
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
from census_pipeline.api.settings import Settings
from census_pipeline.api.tracking import REQUEST_ID_HEADER, Tracker, tracker

# What a route that takes a record or a batch may answer besides 200 (the bench route too).
BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "API key missing or wrong (when set)."},
    408: {"model": ErrorResponse, "description": "Body not received within the deadline."},
    413: {"model": ErrorResponse, "description": "Body or batch over the size limit."},
    415: {"model": ErrorResponse, "description": "Body is not JSON, or is compressed."},
    422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
    503: {"model": ErrorResponse, "description": "Model not loaded yet."},
}

router = APIRouter(prefix="/predict", tags=["prediction"], responses=BODY_ERRORS)

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
    summary="Predict for one census record",
    openapi_extra={**RECORD_BODY_DOC, **_EXPLAIN_DOC},
)
async def predict(request: Request) -> Response:
    started = perf_counter()
    model = served_model(request)
    explain = _explain(request)
    record = await read_record(request)
    explanation = None
    if explain:
        loop = asyncio.get_running_loop()
        explanation = await loop.run_in_executor(_pool(request), model.explain_one, record)
    # The tracker adds the record's id, logs it and answers (docs/monitoring.md).
    return tracker(request).one(record, model.predict_one(record, explanation), started)


@router.post(
    "/batch",
    response_model=list[Prediction],
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
    score = partial(_score_batch, model, body, settings, explain, (track, request_id, started))
    if explain:
        answer = await asyncio.get_running_loop().run_in_executor(_pool(request), score)
    else:
        answer = await run_in_threadpool(score)
    return Response(answer, media_type="application/json", headers={REQUEST_ID_HEADER: request_id})


def _pool(request: Request) -> Executor:
    pool: Executor = request.app.state.explain_pool
    return pool


def _score_batch(
    model: ServedModel,
    body: bytes,
    settings: Settings,
    explain: bool,
    track: tuple[Tracker, str, float],
) -> bytes:
    """Parse, score and serialise in one go, off the event loop.

    The answer is serialised here (pydantic-core's `to_json`, a fraction of a millisecond for
    1,000 predictions) instead of by FastAPI against `list[Prediction]`, which would validate
    our own output again on the event loop: a quarter of the overhead the batch bar allows.
    """
    records: list[dict[str, Any]] = parse(RECORDS, body)
    limit, name = (
        (settings.max_explain_batch_size, "CENSUS_API_MAX_EXPLAIN_BATCH_SIZE, with ?explain=true")
        if explain
        else (settings.max_batch_size, "CENSUS_API_MAX_BATCH_SIZE")
    )
    if len(records) > limit:
        raise HTTPException(
            413,
            f"batch of {len(records)} records is over the limit of {limit} ({name}): "
            "split it into smaller batches",
        )
    answers = model.predict_many(records, explain=explain)
    tracking, request_id, started = track
    tracking.many(request_id, records, answers, started)
    return to_json(answers)
