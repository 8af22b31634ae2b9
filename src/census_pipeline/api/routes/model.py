"""What is being served: model facts, the gate's verdict and the model card."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import HTMLResponse

from census_pipeline.api.deps import ModelDep, SettingsDep
from census_pipeline.api.schemas import ModelInfo

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo, summary="The served model and its gate verdict")
async def model_info(model: ModelDep) -> ModelInfo:
    return model.info


@router.get(
    "/model-card",
    response_class=HTMLResponse,
    summary="The model card (HTML)",
    responses={
        200: {"content": {"text/html": {}}, "description": "The rendered model card."},
        # Spelled out: with `model=` FastAPI would document it under the route's text/html.
        404: {
            "description": "No readable card for this model.",
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
            },
        },
    },
)
async def model_card(model: ModelDep, settings: SettingsDep) -> HTMLResponse:
    if model.card_html is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"no readable model card at {settings.model_card_path.name} (the start-up log says "
            "why): run `census-pipeline card` and restart the service",
        )
    return HTMLResponse(model.card_html)
