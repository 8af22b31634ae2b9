"""Prometheus metrics for the service, correct with several worker processes.

The request path only appends a small tuple to a deque (tens of nanoseconds, thread-safe); a
background thread, and every /metrics scrape, moves what accumulated into prometheus-client's
metrics. Under `census-pipeline serve` the client runs in its multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `serve`): each worker writes its values to files there and
/metrics, answered by any worker, adds them up. A scrape sees other workers' counts at most
`FLUSH_SECONDS` late.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from time import perf_counter
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from census_pipeline.predlog.writer import LogStatus

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FLUSH_SECONDS = 1.0
CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
PROBABILITY_BUCKETS = tuple(i / 10 for i in range(1, 11))


def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Telemetry:
    """The service's metrics: cheap event recording, batched application, text exposition."""

    def __init__(self, known_paths: Iterable[str]) -> None:
        self.known_paths = frozenset(known_paths)
        self._events: deque[tuple[Any, ...]] = deque()
        self._registry = CollectorRegistry()
        # In multiprocess mode the values live in files, whatever registry a metric names.
        registry = None if multiprocess_mode() else self._registry
        self.requests = Counter(
            "census_http_requests", "HTTP requests by route and status.",
            ["route", "method", "status"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "census_http_request_duration_seconds", "Time to answer, by route.",
            ["route"], buckets=LATENCY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.predictions = Counter(
            "census_predictions", "Records scored, by predicted label.", ["label"],
            registry=registry,
        )  # fmt: skip
        self.probability = Histogram(
            "census_prediction_probability", "Predicted probability of >50K.",
            buckets=PROBABILITY_BUCKETS, registry=registry,
        )  # fmt: skip
        self.feedback = Counter(
            "census_feedback", "Ground-truth labels received, by outcome (stored or unknown id).",
            ["outcome"], registry=registry,
        )  # fmt: skip
        self.log_written = Counter(
            "census_prediction_log_written", "Records written to the prediction log.",
            registry=registry,
        )  # fmt: skip
        self.log_dropped = Counter(
            "census_prediction_log_dropped",
            "Records not logged because the queue was full (database slow or away).",
            registry=registry,
        )  # fmt: skip
        self.log_queue = Gauge(
            "census_prediction_log_queue_depth", "Records waiting to be written.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.log_available = Gauge(
            "census_prediction_log_available",
            "1 when every worker's log writer reaches its database, else 0.",
            registry=registry, multiprocess_mode="livemin",
        )  # fmt: skip
        self.model = Gauge(
            "census_model_info", "The served model (value 1; the labels say which).",
            ["version", "sha256", "blessed"], registry=registry, multiprocess_mode="livemax",
        )  # fmt: skip
        self._log_seen = (0, 0)
        self._log_status: Callable[[], LogStatus] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- recording (request path) -------------------------------------------------------------

    def request(self, path: str, method: str, status: int, seconds: float) -> None:
        self._events.append(("r", path, method, status, seconds))

    def scored(self, labels: Sequence[str], probabilities: Sequence[float]) -> None:
        self._events.append(("p", labels, probabilities))

    def feedback_received(self, stored: int, unknown: int) -> None:
        self._events.append(("f", stored, unknown))

    # --- wiring -------------------------------------------------------------------------------

    def serve_model(self, version: str, sha256: str, blessed: bool) -> None:
        self.model.labels(version, sha256, str(blessed).lower()).set(1)

    def watch_log(self, status: Callable[[], LogStatus] | None) -> None:
        self._log_status = status

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="metrics-flush", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(FLUSH_SECONDS * 2)
        self.flush()
        if multiprocess_mode():
            # Drop this process's live gauges (queue depth, model) from the aggregate.
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            self.flush()

    # --- applying and exposing ----------------------------------------------------------------

    def flush(self) -> None:
        """Apply the recorded events and the log writer's counters to the metrics."""
        with self._lock:
            while self._events:
                self._apply(self._events.popleft())
            self._apply_log()

    def _apply(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "r":
            _, path, method, status, seconds = event
            route = path if path in self.known_paths else "other"
            self.requests.labels(route, method, str(status)).inc()
            self.latency.labels(route).observe(seconds)
        elif kind == "p":
            _, labels, probabilities = event
            for label in set(labels):
                self.predictions.labels(label).inc(labels.count(label))
            for probability in probabilities:
                self.probability.observe(probability)
        else:
            _, stored, unknown = event
            self.feedback.labels("stored").inc(stored)
            self.feedback.labels("unknown").inc(unknown)

    def _apply_log(self) -> None:
        if self._log_status is None:
            return
        status = self._log_status()
        written, dropped = self._log_seen
        self.log_written.inc(status.written - written)
        self.log_dropped.inc(status.dropped - dropped)
        self._log_seen = (status.written, status.dropped)
        self.log_queue.set(status.queued)
        self.log_available.set(0 if status.state == "unavailable" else 1)

    def exposition(self) -> bytes:
        """The metrics in Prometheus' text format: every worker's, in multiprocess mode."""
        self.flush()
        if multiprocess_mode():
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self._registry)


class RequestMetrics:
    """ASGI middleware recording each HTTP request's route, status and duration."""

    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # what the client sees if the app fails before starting a response

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            # The matched route's template (/v2/models/{name}/infer), so labels stay few.
            path = getattr(scope.get("route"), "path", None) or "other"
            self.telemetry.request(path, scope["method"], status, perf_counter() - started)
