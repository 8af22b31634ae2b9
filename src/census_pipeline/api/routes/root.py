"""`GET /`: what this service is and where to read about it."""

from __future__ import annotations

from fastapi import APIRouter

from census_pipeline.api.schemas import Welcome

router = APIRouter(tags=["service"])

_WELCOME = Welcome(
    message=(
        "Census income prediction service: POST one census record to /predict (or a list to "
        "/predict/batch) to learn whether the model predicts a salary above 50K a year."
    ),
    docs="/docs",
    openapi="/openapi.json",
    endpoints={
        "POST /predict": "predict for one record (?explain=true for the top contributions)",
        "POST /predict/batch": "predict for a list of records",
        "GET /model": "model version, digests, threshold, metrics and gate verdict",
        "GET /model-card": "the model card (HTML)",
        "GET /health": "the process is alive",
        "GET /ready": "the model is loaded and the service can predict",
    },
)


@router.get("/", response_model=Welcome, summary="Welcome")
async def welcome() -> Welcome:
    return _WELCOME
