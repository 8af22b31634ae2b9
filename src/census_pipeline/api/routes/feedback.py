"""Ground truth: `POST /feedback` stores the true label of logged predictions.

One item `{"id": ..., "label": ...}` answers 200, or 404 when no logged record has that id. A
list answers 200 with each item's own status (200 or 404), so one unknown id never loses the
others' labels. Records reach the log within about `CENSUS_API_LOG_FLUSH_SECONDS` of their
prediction: feedback sent sooner may find nothing yet (404) and can simply be sent again.
Mounted only when the prediction log is on; the API key rules of /predict apply.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter
from sqlalchemy.exc import SQLAlchemyError

from census_pipeline.api.body import parse, read_json_body
from census_pipeline.api.schemas import (
    ErrorResponse,
    FeedbackItem,
    FeedbackOutcome,
    FeedbackResult,
)
from census_pipeline.api.telemetry import Telemetry
from census_pipeline.predlog.feedback import FeedbackStore

logger = logging.getLogger("census_pipeline.api")

router = APIRouter(
    prefix="/feedback",
    tags=["monitoring"],
    responses={
        401: {"model": ErrorResponse, "description": "API key missing or wrong (when set)."},
        404: {"model": ErrorResponse, "description": "(one item) No logged record has this id."},
        408: {"model": ErrorResponse, "description": "Body not received within the deadline."},
        413: {"model": ErrorResponse, "description": "Body or list over the size limit."},
        415: {"model": ErrorResponse, "description": "Body is not JSON, or is compressed."},
        422: {"model": ErrorResponse, "description": "A field is missing, unknown or invalid."},
        503: {"model": ErrorResponse, "description": "The log's database is unavailable."},
    },
)

MAX_ITEMS = 10_000
_BODY = TypeAdapter(FeedbackItem | list[FeedbackItem])
_BODY_DOC = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "oneOf": [
                        {"$ref": "#/components/schemas/FeedbackItem"},
                        # No maxItems: the limit is operational and answered 413, like
                        # /predict/batch's; declared in the schema, schemathesis expects a
                        # list over it to be refused as invalid (422), not as too large.
                        {"type": "array", "minItems": 1,
                         "items": {"$ref": "#/components/schemas/FeedbackItem"}},
                    ]
                },
                "example": {"id": "3f9a1c0b7d2e-1a", "label": ">50K"},
            }
        },
    }
}  # fmt: skip


@router.post(
    "",
    response_model=FeedbackResult,
    summary="Report the true label of logged predictions",
    openapi_extra=_BODY_DOC,
)
async def post_feedback(request: Request) -> JSONResponse:
    from fastapi.concurrency import run_in_threadpool

    body = parse(_BODY, await read_json_body(request))
    items = [body] if isinstance(body, FeedbackItem) else body
    if not items:
        raise HTTPException(422, "send at least one {id, label} item")
    if len(items) > MAX_ITEMS:
        raise HTTPException(413, f"{len(items)} items is over the limit of {MAX_ITEMS}")
    store: FeedbackStore = request.app.state.feedback_store
    found = await run_in_threadpool(_store, store, items)
    telemetry: Telemetry = request.app.state.telemetry
    telemetry.feedback_received(sum(found), len(found) - sum(found))
    if isinstance(body, FeedbackItem) and not found[0]:
        raise HTTPException(status.HTTP_404_NOT_FOUND, _unknown(body.id))
    result = FeedbackResult(
        stored=sum(found),
        unknown=len(found) - sum(found),
        results=[
            FeedbackOutcome(id=item.id, status=200)
            if ok
            else FeedbackOutcome(id=item.id, status=404, detail=_unknown(item.id))
            for item, ok in zip(items, found, strict=True)
        ],
    )
    return JSONResponse(result.model_dump(exclude_none=True))


def _store(store: FeedbackStore, items: list[FeedbackItem]) -> list[bool]:
    try:
        return store.record([(item.id, item.label) for item in items])
    except SQLAlchemyError as exc:
        logger.warning("feedback not stored: %s", str(exc).splitlines()[0])
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            "the prediction log's database is unavailable: send the feedback again later",
        ) from None


def _unknown(record_id: str) -> str:
    return (
        f"no logged prediction has the id {record_id!r} (ids are the `id` of each prediction; "
        "a very recent one may not be written yet)"
    )
