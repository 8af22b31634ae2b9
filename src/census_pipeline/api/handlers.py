"""Exception handlers: every error is `{"detail": ..., "errors": [...]}` and none shows a trace.

Client mistakes (validation, HTTP errors) keep their 4xx status with a message that names the
field. Anything else is a bug of ours: it is logged with its traceback on the server and the
client gets a generic 500 so internals never leak.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

logger = logging.getLogger("census_pipeline.api")

# A 10,000-record batch full of mistakes must not produce a megabyte of errors.
MAX_REPORTED_ERRORS = 20


def _field(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _error_item(error: Any) -> dict[str, str]:
    loc, message = tuple(error.get("loc", ())), str(error.get("msg", ""))
    if error["type"] == "json_invalid":
        # The parser's position (in `loc` for FastAPI, in the text for pydantic) is all there is.
        reason = error.get("ctx", {}).get("error", "")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        message = f"not valid JSON: {reason}{where}" if reason else "not valid JSON"
        loc = loc[:1]
    return {"field": _field(loc), "message": message, "type": error["type"]}


def _error_items(errors: Sequence[Any]) -> list[dict[str, str]]:
    return [_error_item(e) for e in errors[:MAX_REPORTED_ERRORS]]


def _summary(items: list[dict[str, str]], total: int) -> str:
    first = items[0] if items else {"field": "body", "message": "invalid request"}
    more = f" (and {total - 1} more)" if total > 1 else ""
    return f"invalid request: {first['field']}: {first['message']}{more}"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    items = _error_items(errors)
    return JSONResponse(
        status_code=422, content={"detail": _summary(items, len(errors)), "errors": items}
    )


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return JSONResponse(
        status_code=exc.status_code,
        content={"detail": str(exc.detail)},
        headers=getattr(exc, "headers", None),
    )


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
