"""The body guard, which runs before FastAPI routes or parses anything.

Plain ASGI (not `BaseHTTPMiddleware`) so the per-request cost stays a few microseconds. It
guards the routes that take a body (every POST, PUT or PATCH route of the app, found when the
middleware stack is built, so routers added by any module are covered): anything else goes
straight to the app, so an unknown path is a 404 and a wrong method a 405. On those routes the
body is buffered here and replayed to the app, under two bounds:

- a size limit per route (`/predict` takes one record, a few hundred bytes, so it gets a limit
  of kilobytes; batch routes get megabytes): a client cannot make the service hold more than the
  route's limit of one request in memory, whatever its `Content-Length` claims, and a chunked
  upload is counted as it streams in (413);
- a deadline for the whole body (408): a client that stops sending half-way would otherwise hold
  its connection and the part it sent for as long as it liked. When the deadline passes, the
  part read so far is dropped and the connection closed.

That is why 413 and 408 come before the API key check; the content type and encoding (415) are
checked by the routes, after the key (`body.read_json_body`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


async def send_error(send: Send, status: int, detail: str, key: str = "detail") -> None:
    """Answer with the service's error shape (`{key: detail}`) without going through the app."""
    body = json.dumps({key: detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # The unread rest of the body would otherwise be parsed as the next request.
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """How much body a route may send, and how long it may take to send it."""

    default_bytes: int
    timeout_s: float
    # Tighter limits for some routes, by path (the route's template, e.g. "/predict").
    per_path: Mapping[str, int]
    # The setting an operator changes, named in the 413 (by path; the default's otherwise).
    settings: Mapping[str, str]
    default_setting: str
    # Routes whose protocol names its errors' key otherwise (by path: the Open Inference
    # Protocol's `{"error": ...}`); the service's own `{"detail": ...}` elsewhere.
    error_keys: Mapping[str, str] = field(default_factory=dict)


class RequestGuard:
    """Refuse bodies over their route's limit (413) or slower than the deadline (408)."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute], limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits
        # Static paths are looked up in a dict (the hot path); templated ones by their regex.
        self.static: dict[tuple[str, str], int] = {}
        self.templated: list[tuple[str, re.Pattern[str], str, int]] = []
        # Included routers are kept nested by FastAPI; its own iterator gives each route with
        # its full path, as OpenAPI and routing see it.
        for context in iter_route_contexts(routes):
            path, methods = context.path, getattr(context.original_route, "methods", None)
            if not path or not methods:
                continue
            limit = limits.per_path.get(path, limits.default_bytes)
            for method in set(methods) & BODY_METHODS:
                if "{" in path:
                    self.templated.append((method, compile_path(path)[0], path, limit))
                else:
                    self.static[(method, path)] = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        found = self._limit(scope["method"], scope["path"])
        if found is None:
            await self.app(scope, receive, send)
            return
        template, limit = found
        key = self.limits.error_keys.get(template, "detail")
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await send_error(send, 413, self._too_large(template, limit), key)
            return
        try:
            async with asyncio.timeout(self.limits.timeout_s):
                body = await self._read_body(receive, limit)
        except TimeoutError:
            await send_error(send, 408, self._too_slow(), key)
            return
        except asyncio.CancelledError:
            # The server cancels what still runs when its graceful shutdown times out: a body
            # still arriving then gets a clear answer rather than an error logged as ours.
            message = "shutting down: the request body did not arrive in time"
            await send_error(send, 503, message, key)
            return
        if body is None:
            await send_error(send, 413, self._too_large(template, limit), key)
            return
        await self.app(scope, _replay(body, receive), send)

    def _limit(self, method: str, path: str) -> tuple[str, int] | None:
        limit = self.static.get((method, path))
        if limit is not None:
            return path, limit
        for route_method, pattern, template, templated_limit in self.templated:
            if route_method == method and pattern.match(path):
                return template, templated_limit
        return None

    def _too_large(self, template: str, limit: int) -> str:
        setting = self.limits.settings.get(template, self.limits.default_setting)
        return f"request body larger than the limit of {limit} bytes for {template} ({setting})"

    def _too_slow(self) -> str:
        return (
            f"request body not received within {self.limits.timeout_s:g} s: "
            "the connection is closed"
        )

    @staticmethod
    async def _read_body(receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None as soon as it passes the limit."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                # Client went away; let the app see the disconnect like it would have.
                return b"".join(chunks)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands over the buffered body once, then defers to the real one."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if delivered:
            return await receive()
        delivered = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
