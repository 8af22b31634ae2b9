"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request

from census_pipeline.api.deps import ModelDep
from census_pipeline.api.schemas import ErrorResponse, Health, PredictionLogState, Readiness
from census_pipeline.predlog.writer import PredictionLog

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
async def ready(model: ModelDep, request: Request) -> Readiness:
    # The log's state is reported, never a reason to be unready: predictions work without it.
    log: PredictionLog | None = getattr(request.app.state, "prediction_log", None)
    state = None
    if log is not None:
        status = log.status()
        state = PredictionLogState(
            state=status.state,
            queued=status.queued,
            written=status.written,
            dropped=status.dropped,
            last_error=status.last_error,
        )
    return Readiness(model_version=model.version, blessed=model.info.blessed, prediction_log=state)
