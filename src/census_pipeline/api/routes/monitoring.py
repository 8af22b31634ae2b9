"""`GET /monitoring`: the latest drift and live-quality report, as `census-pipeline monitor`
wrote it (HTML; `/monitoring/report.json` for the JSON). Read on each request, so a scheduled
`monitor` run replacing the files (atomically) is served at once. 404 until configured
(`CENSUS_API_MONITORING_DIR`) and written.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import HTMLResponse, Response

from census_pipeline.api.settings import Settings

router = APIRouter(
    prefix="/monitoring",
    tags=["monitoring"],
    # The content spelled out: with `model=` FastAPI documents the HTML route's 404 as HTML,
    # but errors are JSON (found by schemathesis, as for /model-card).
    responses={
        404: {
            "description": "No report configured or written.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        }
    },
)

REPORT_HTML = "report.html"
REPORT_JSON = "report.json"


@router.get("", response_class=HTMLResponse, summary="The latest monitoring report (HTML)")
def report_html(request: Request) -> HTMLResponse:
    return HTMLResponse(_read(request, REPORT_HTML).decode("utf-8"))


@router.get("/report.json", summary="The latest monitoring report (JSON)")
def report_json(request: Request) -> Response:
    return Response(_read(request, REPORT_JSON), media_type="application/json")


def _read(request: Request, name: str) -> bytes:
    settings: Settings = request.app.state.settings
    if settings.monitoring_dir is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            "no monitoring report configured: set CENSUS_API_MONITORING_DIR to the folder "
            "`census-pipeline monitor` writes",
        )
    path: Path = settings.monitoring_dir / name
    try:
        return path.read_bytes()
    except OSError:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, "no monitoring report yet: run `census-pipeline monitor`"
        ) from None
