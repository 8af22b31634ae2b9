"""Liveness and readiness probes for load balancers and orchestrators.

`/ready` turns 503 as soon as the worker gets SIGTERM (`lifecycle.drain_on_sigterm`), while
requests are still served, so a load balancer stops routing to it before it goes away.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request

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
    responses={
        503: {"model": ErrorResponse, "description": "Model not loaded yet, or shutting down."}
    },
)
async def ready(model: ModelDep, request: Request) -> Readiness:
    if request.app.state.draining:
        raise HTTPException(503, "shutting down")
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
