"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter

from census_pipeline.api.deps import ModelDep
from census_pipeline.api.schemas import ErrorResponse, Health, Readiness

router = APIRouter(tags=["operations"])


@router.get("/health", response_model=Health, summary="The process is alive")
async def health() -> Health:
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="The model is loaded",
    responses={503: {"model": ErrorResponse, "description": "Model not loaded yet."}},
)
async def ready(model: ModelDep) -> Readiness:
    return Readiness(model_version=model.version, blessed=model.info.blessed)
