"""Predictions: one record, or a batch.

`POST /predict` is `async def` and scores inline: validating the body and the predictor's
single-record fast path take tens of microseconds, less than a hop to the thread pool would
cost. A batch takes milliseconds, so it is validated and scored in the thread pool, keeping the
event loop free for other requests. Bodies are validated from the raw bytes (see `body.py`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic_core import to_json

from census_pipeline.api.body import RECORD_BODY_DOC, RECORDS, RECORDS_BODY_DOC, parse, read_record
from census_pipeline.api.deps import SettingsDep, served_model
from census_pipeline.api.loading import ServedModel
from census_pipeline.api.schemas import ErrorResponse, Prediction

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

ExplainQuery = Annotated[
    bool, Query(description="Add the features that pushed the prediction most.")
]


@router.post(
    "",
    response_model=Prediction,
    response_model_exclude_none=True,
    summary="Predict for one census record",
    openapi_extra=RECORD_BODY_DOC,
)
async def predict(request: Request, explain: ExplainQuery = False) -> dict[str, Any]:
    model = served_model(request)
    return model.predict_one(await read_record(request), explain=explain)


@router.post(
    "/batch",
    response_model=list[Prediction],
    response_model_exclude_none=True,
    summary="Predict for a list of census records",
    openapi_extra=RECORDS_BODY_DOC,
)
async def predict_batch(
    request: Request, settings: SettingsDep, explain: ExplainQuery = False
) -> Response:
    model = served_model(request)
    body = await request.body()
    answer = await run_in_threadpool(_score_batch, model, body, settings.max_batch_size, explain)
    return Response(answer, media_type="application/json")


def _score_batch(model: ServedModel, body: bytes, limit: int, explain: bool) -> bytes:
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
    return to_json(model.predict_many(records, explain=explain))
