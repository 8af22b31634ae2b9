"""Request guards that run before FastAPI parses anything: body size and content type.

Plain ASGI (not `BaseHTTPMiddleware`) so the per-request cost stays a few microseconds. The body
is buffered here, up to the limit, and replayed to the app: a client cannot make the service hold
more than `max_body_bytes` of one request in memory, whatever its `Content-Length` claims, and a
chunked upload is counted as it streams in.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _is_json(content_type: bytes | None) -> bool:
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
    """Refuse bodies over `max_body_bytes` (413) and bodies that are not JSON (415)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        if problem := self._check_headers(scope):
            await send_error(send, *problem)
            return
        body = await self._read_body(receive)
        if body is None:
            await send_error(send, 413, self._too_large())
            return
        await self.app(scope, _replay(body, receive), send)

    def _check_headers(self, scope: Scope) -> tuple[int, str] | None:
        declared = _header(scope, b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return 413, self._too_large()
        if not _is_json(_header(scope, b"content-type")):
            return 415, "request body must be JSON: send the header Content-Type: application/json"
        return None

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
