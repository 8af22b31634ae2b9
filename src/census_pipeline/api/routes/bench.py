"""`POST /bench/bare`: the benchmark's baseline, off unless `CENSUS_API_ENABLE_BARE_ENDPOINT`.

It pays for everything `POST /predict` pays for except the model (same app, middleware, body
validation and response serialisation), so the ratio of their throughputs isolates what
scoring costs.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from census_pipeline.api.body import RECORD_BODY_DOC, read_record
from census_pipeline.api.routes.predict import BODY_ERRORS
from census_pipeline.api.schemas import Prediction

router = APIRouter(prefix="/bench", tags=["benchmark"], responses=BODY_ERRORS)

_CONSTANT = {"label": "<=50K", "probability": 0.0, "threshold": 0.5, "model_version": "bare"}


@router.post(
    "/bare",
    response_model=Prediction,
    response_model_exclude_none=True,
    summary="Validate a record and return a constant",
    openapi_extra=RECORD_BODY_DOC,
)
async def bare(request: Request) -> dict[str, Any]:
    await read_record(request)
    return _CONSTANT
