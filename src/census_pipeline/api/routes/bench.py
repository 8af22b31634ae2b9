"""`POST /bench/bare`: the benchmark's baseline, off unless `CENSUS_API_ENABLE_BARE_ENDPOINT`.

It pays for everything `POST /predict` pays for except the prediction itself (same app,
middleware and body validation), so the ratio of their throughputs isolates the model's cost.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from census_pipeline.api.schemas import CensusRecord, Prediction

router = APIRouter(prefix="/bench", tags=["benchmark"])

_CONSTANT = Prediction(label="<=50K", probability=0.0, threshold=0.5, model_version="bare")


@router.post(
    "/bare",
    response_model=Prediction,
    response_model_exclude_none=True,
    summary="Validate a record and return a constant",
)
async def bare(record: Annotated[CensusRecord, Body()]) -> Prediction:
    return _CONSTANT
