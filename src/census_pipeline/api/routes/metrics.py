"""`GET /metrics`: Prometheus' text format, every worker's counts added up (docs/monitoring.md).

Open like /health: scrapers run inside the operator's network and the metrics hold no personal
data (counts, latencies, probabilities in buckets, the model version).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from census_pipeline.api.telemetry import CONTENT_TYPE, Telemetry

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text format."}},
)
def metrics(request: Request) -> Response:
    # A plain def: in multiprocess mode the exposition reads every worker's files.
    telemetry: Telemetry = request.app.state.telemetry
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE)
