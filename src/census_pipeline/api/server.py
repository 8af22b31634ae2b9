"""How `census-pipeline serve` runs uvicorn: connection limits, a header cap and shutdown.

Imported by the `serve` command only (it imports uvicorn's HTTP protocol, which the app itself
never needs).

uvicorn parses HTTP with httptools when it is installed (`uvicorn[standard]`), and httptools
buffers a request's header block however large it grows: a 200 MB header cost 242 MB of memory.
uvicorn's own cap, `h11_max_incomplete_event_size`, applies to its pure-Python h11 parser only.
`HeaderCappedHttpToolsProtocol` keeps httptools (about a third faster than h11 for requests
this small) and enforces the same cap on it: a request line plus headers over
`max_header_bytes` is answered 431 and the connection closed. Without httptools, h11 is used
would be the fallback: it honours the cap itself (answering 400).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import uvicorn
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from census_pipeline.api.settings import Settings


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings that bound what clients can make a worker do."""
    return {
        "http": HeaderCappedHttpToolsProtocol,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
        "limit_concurrency": settings.limit_concurrency,
        "timeout_graceful_shutdown": settings.graceful_shutdown_s,
    }


def run(settings: Settings, host: str, port: int, workers: int) -> None:
    uvicorn.run(
        "census_pipeline.api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        **uvicorn_options(settings),
    )


class _HeadersTooLarge(Exception):
    """Raised from a parser callback; httptools turns it into a parser error."""


class HeaderCappedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with the request head capped.

    The head is measured two ways, because httptools hands a header to Python only once it
    is complete: exactly, from the URL and each complete header (a head over the cap is
    refused as soon as the header that passes it is parsed); and, while a head is still
    incomplete, by the bytes received since it began, so a single endless header is
    refused once more than the cap is buffered (at most one network read over it: the
    read in which the request began is not counted, as part of it may be the previous
    request's body).
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.max_head_bytes = config.h11_max_incomplete_event_size or 16 * 1024
        self.head_open = False
        self.head_count = 0  # requests begun on this connection
        self.head_size = 0  # exact: URL and complete headers
        self.head_received = 0  # bytes received while the head is incomplete
        self.head_refused = False

    def data_received(self, data: bytes) -> None:
        count = self.head_count
        open_before = self.head_open
        super().data_received(data)
        if self.head_refused or not self.head_open:
            return
        if open_before and count == self.head_count:  # the same head, still incomplete
            self.head_received += len(data)
            if self.head_received > self.max_head_bytes:
                self._refuse_head()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.head_open = True
        self.head_count += 1
        self.head_size = 0
        self.head_received = 0

    def on_url(self, url: bytes) -> None:
        self._grow(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value) + 4)  # ": " and CRLF
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.head_open = False
        super().on_headers_complete()

    def _grow(self, size: int) -> None:
        self.head_size += size
        if self.head_size > self.max_head_bytes:
            self.head_refused = True
            raise _HeadersTooLarge

    def send_400_response(self, msg: str) -> None:
        # uvicorn answers every parser error 400; ours is the header cap: say so.
        if self.head_refused:
            self._refuse_head()
        else:
            super().send_400_response(msg)

    def _refuse_head(self) -> None:
        self.head_refused = True
        if self.transport.is_closing():
            return
        body = json.dumps(
            {
                "detail": f"request line and headers larger than the limit of "
                f"{self.max_head_bytes} bytes (CENSUS_API_MAX_HEADER_BYTES)"
            }
        ).encode()
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self.transport.write(head + body)
        self.transport.close()
