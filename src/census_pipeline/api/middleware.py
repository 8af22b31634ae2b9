"""The body-size guard, which runs before FastAPI routes or parses anything.

Plain ASGI (not `BaseHTTPMiddleware`) so the per-request cost stays a few microseconds. It
guards only the POST routes that take a body (the prediction routes): anything else goes straight
to the app, so an unknown path is a 404 and a wrong method a 405. On those routes the body is
buffered here, up to the limit, and replayed to the app: a client cannot make the service hold
more than `max_body_bytes` of one request in memory, whatever its `Content-Length` claims, and a
chunked upload is counted as it streams in. That is why 413 comes before the API key check; the
content type (415) is checked by the routes, after the key (`body.read_json_body`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection

from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send


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


async def send_error(send: Send, status: int, detail: str) -> None:
    """Answer with the service's error shape without going through the app."""
    body = json.dumps({"detail": detail}).encode()
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


class RequestGuard:
    """Refuse bodies over `max_body_bytes` (413) on the POST routes in `paths`."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, paths: Collection[str]) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.paths = frozenset(path for path in paths if "{" not in path)
        # Routes with path parameters (`/v2/models/{model_name}/infer`), matched like the router.
        self.templates: tuple[re.Pattern[str], ...] = tuple(
            compile_path(path)[0] for path in paths if "{" in path
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or not self._guards(scope["path"]):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await send_error(send, 413, self._too_large())
            return
        body = await self._read_body(receive)
        if body is None:
            await send_error(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    def _guards(self, path: str) -> bool:
        return path in self.paths or any(template.match(path) for template in self.templates)

    def _too_large(self) -> str:
        return f"request body larger than the limit of {self.max_body_bytes} bytes"

    async def _read_body(self, receive: Receive) -> bytes | None:
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
            if size > self.max_body_bytes:
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
