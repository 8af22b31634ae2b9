"""Predictions: one record, or a batch.

`POST /predict` is `async def` and scores inline: the predictor's single-record fast path takes
tens of microseconds, less than a hop to the thread pool would cost. A batch takes milliseconds,
so it runs in the thread pool to keep the event loop free for other requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from census_pipeline.api.deps import ModelDep, SettingsDep
from census_pipeline.api.schemas import EXAMPLE_RECORD, CensusRecord, ErrorResponse, Prediction

router = APIRouter(
    prefix="/predict",
    tags=["prediction"],
    responses={
        401: {"model": ErrorResponse, "description": "API key missing or wrong (when set)."},
        413: {"model": ErrorResponse, "description": "Body or batch over the size limit."},
        415: {"model": ErrorResponse, "description": "Body is not JSON."},
        422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
    },
)

ExplainQuery = Annotated[
    bool, Query(description="Add the features that pushed this prediction most.")
]


@router.post(
    "",
    response_model=Prediction,
    response_model_exclude_none=True,
    summary="Predict for one record",
)
async def predict(
    record: Annotated[CensusRecord, Body(examples=[EXAMPLE_RECORD])],
    model: ModelDep,
    explain: ExplainQuery = False,
) -> Prediction:
    return model.predict_one(record, explain=explain)


@router.post(
    "/batch",
    response_model=list[Prediction],
    response_model_exclude_none=True,
    summary="Predict for a list of records",
)
async def predict_batch(
    records: Annotated[list[CensusRecord], Body(min_length=1, examples=[[EXAMPLE_RECORD]])],
    model: ModelDep,
    settings: SettingsDep,
    explain: ExplainQuery = False,
) -> list[Prediction]:
    if len(records) > settings.max_batch_size:
        raise HTTPException(
            413,
            f"batch of {len(records)} records is over the limit of {settings.max_batch_size}: "
            "split it into smaller batches",
        )
    return await run_in_threadpool(model.predict_many, records, explain)
