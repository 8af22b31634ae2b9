"""Hostile and careless clients against a real `census-pipeline serve` process (issue 13).

Raw sockets, so each test controls exactly what the server receives and when: a body that
stops half-way, a header that never ends, more connections than allowed, and a SIGTERM while
connections are idle, in flight and stalled. Each server runs with short deadlines (set through
the CENSUS_API_* settings) so the tests take seconds.
"""

from __future__ import annotations

import json
import signal
import socket
import time
from pathlib import Path

import pytest
from live_server import RECORD, Server, serving

from census_pipeline.config import Params


def _head(
    method: str, path: str, length: int | None = None, headers: dict[str, str] | None = None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    if length is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {length}"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP response (status, lower-cased headers, body), read off the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(status_line.split()[1]), headers, body


def _closed_by_server(sock: socket.socket, within_s: float) -> bool:
    sock.settimeout(within_s)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def _get(sock: socket.socket, path: str) -> tuple[int, dict[str, str], bytes]:
    sock.sendall(_head("GET", path))
    return _response(sock)


def _stall_wave(server: Server, part: bytes) -> tuple[list[int], float, float, bool]:
    """8 uploads send `part` of a declared 8 MB batch, then stall: their answers, when they
    came, the server's RSS while it held them, and whether the server closed them all."""
    sockets = [server.connect() for _ in range(8)]
    started = time.monotonic()
    for sock in sockets:
        sock.sendall(_head("POST", "/predict/batch", 8_000_000) + part)
    time.sleep(0.5)
    holding = server.rss_mb()
    answers = [_response(sock) for sock in sockets]
    answered_after = time.monotonic() - started
    closed = all(_closed_by_server(sock, 2) for sock in sockets)
    for sock in sockets:
        sock.close()
    assert "not received within 2 s" in json.loads(answers[0][2])["detail"]
    return [status for status, _, _ in answers], answered_after, holding, closed


@pytest.mark.slow
def test_stalled_uploads_are_closed_within_the_deadline_and_their_memory_released(
    carded_project: Params, tmp_path: Path
) -> None:
    # Issue 13: 32 stalled uploads held +250 MB, and one was kept 150 s. Two waves of 8 (3 MB
    # sent of a declared 8 MB): each is closed at the deadline, and the second reuses the
    # memory the first released instead of adding its own (RSS is the process's, so freed
    # memory shows as reuse rather than as a smaller RSS).
    part = b"[" + b" " * (3 * 1024 * 1024)
    with serving(carded_project, tmp_path, settings={"body_timeout_s": "2"}) as server:
        before = server.rss_mb()
        first = _stall_wave(server, part)
        after_first = server.rss_mb()
        second = _stall_wave(server, part)
        after_second = server.rss_mb()
        with server.connect() as sock:  # the server is still fine
            assert _get(sock, "/health")[0] == 200
    for statuses, answered_after, _, closed in (first, second):
        assert statuses == [408] * 8
        assert 1.5 < answered_after < 6, answered_after
        assert closed
    held = first[2] - before
    assert held > 8, (before, first[2])  # the uploads did reach the server ...
    assert after_second - after_first < held / 2, (before, first[2], after_first, after_second)


@pytest.mark.slow
def test_a_header_over_the_cap_is_refused(carded_project: Params, tmp_path: Path) -> None:
    with serving(carded_project, tmp_path, settings={"max_header_bytes": "8192"}) as server:
        with server.connect() as sock:
            assert _get(sock, "/health")[0] == 200
            sock.sendall(_head("GET", "/health", headers={"X-Padding": "a" * 6000}))
            assert _response(sock)[0] == 200  # under the cap
        with server.connect() as sock:
            sock.sendall(_head("GET", "/health", headers={"X-Padding": "a" * 20_000}))
            status, headers, body = _response(sock)
            assert status == 431 and headers["connection"] == "close"
            assert "8192 bytes (CENSUS_API_MAX_HEADER_BYTES)" in json.loads(body)["detail"]
            assert _closed_by_server(sock, 2)
        # A header that never ends: refused while it is still arriving.
        with server.connect() as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Endless: ")
            sent, status = 0, 0
            try:
                while sent < 50 * 1024 * 1024:
                    sock.sendall(b"a" * 65536)
                    sent += 65536
                    time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                status = _response(sock)[0]
            except (ConnectionError, OSError):
                status = 0  # reset before the answer could be read: refused all the same
            assert sent < 4 * 1024 * 1024, f"sent {sent} bytes of header before being refused"
            assert status in (431, 0)
        with server.connect() as sock:
            assert _get(sock, "/health")[0] == 200


@pytest.mark.slow
def test_connections_over_the_limit_get_503(carded_project: Params, tmp_path: Path) -> None:
    with serving(carded_project, tmp_path, settings={"limit_concurrency": "3"}) as server:
        idle = [server.connect() for _ in range(3)]
        time.sleep(0.2)
        with server.connect() as sock:
            assert _get(sock, "/health")[0] == 503
        for sock in idle:
            sock.close()
        time.sleep(0.2)
        with server.connect() as sock:
            assert _get(sock, "/health")[0] == 200


@pytest.mark.slow
def test_sigterm_drains_then_closes_cleanly_and_a_stalled_upload_does_not_hold_it(
    carded_project: Params, tmp_path: Path
) -> None:
    drain_s, graceful_s = 1.5, 2
    settings = {
        "drain_s": str(drain_s),
        "graceful_shutdown_s": str(graceful_s),
        "body_timeout_s": "120",
    }
    body = json.dumps(RECORD).encode()
    with serving(carded_project, tmp_path, settings=settings) as server:
        keep_alive = server.connect()
        assert _get(keep_alive, "/ready")[0] == 200
        stalled = server.connect()  # would hold its connection for the 120 s deadline
        stalled.sendall(_head("POST", "/predict/batch", 10_000) + b"[")
        in_flight = server.connect()  # half a record now, the rest once shutdown has begun
        in_flight.sendall(_head("POST", "/predict", len(body)) + body[:100])
        time.sleep(0.2)

        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.2)
        status, _, answer = _get(keep_alive, "/ready")
        assert status == 503 and json.loads(answer)["detail"] == "shutting down"
        assert _get(keep_alive, "/health")[0] == 200  # still serving during the drain
        with server.connect() as fresh:
            fresh.sendall(_head("POST", "/predict", len(body)) + body)
            assert _response(fresh)[0] == 200

        time.sleep(signalled + drain_s + 0.4 - time.monotonic())  # shutdown has begun
        assert _closed_by_server(keep_alive, 1)  # idle keep-alive: closed
        in_flight.sendall(body[100:])
        status, headers, answer = _response(in_flight)
        assert status == 200 and json.loads(answer)["label"] in ("<=50K", ">50K")
        assert headers["connection"] == "close"
        assert _closed_by_server(in_flight, 1)

        server.process.wait(timeout=drain_s + graceful_s + 5)
        exited_after = time.monotonic() - signalled
        for sock in (keep_alive, stalled, in_flight):
            sock.close()
    assert exited_after < drain_s + graceful_s + 2, exited_after
    log = server.log.read_text(encoding="utf-8")
    assert "/ready answers 503" in log
    assert "Traceback" not in log
