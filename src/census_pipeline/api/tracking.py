"""The prediction routes' hook into monitoring: request ids, the log, the prediction metrics.

Kept to what the request path can afford: an id from a per-process random prefix and a counter
(no uuid, no clock read beyond one), a reference to the validated records handed to the log's
queue, and one event for the metrics. Everything else happens on background threads.

Ids: a request's id is `<12 hex digits of this process>-<counter in hex>`, unique across workers
and restarts. `/predict` logs its record under the request id; `/predict/batch` logs record `i`
(0-based, in the order sent) as `<request id>:<i>`. Each prediction carries its id (`id`) and
every answer the header `X-Request-ID`; `/feedback` takes those ids.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Request, Response
from pydantic_core import to_json

from census_pipeline.api.telemetry import Telemetry
from census_pipeline.predlog.writer import PredictionLog, Scored

REQUEST_ID_HEADER = "X-Request-ID"


class Tracker:
    """One per worker process: made in the app's lifespan, after the model loaded."""

    def __init__(self, model_version: str, log: PredictionLog | None, telemetry: Telemetry):
        self.model_version = model_version
        self.log = log
        self.telemetry = telemetry
        self._prefix = os.urandom(6).hex()
        self._counter = itertools.count(1)

    def request_id(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"

    def one(self, record: Mapping[str, Any], answer: dict[str, Any], started: float) -> Response:
        """Log and count a single prediction; the answer with its id, as the response."""
        request_id = self.request_id()
        answer["id"] = request_id
        label, probability = answer["label"], answer["probability"]
        if self.log is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            self.log.submit(
                Scored(request_id, time.time(), "predict", self.model_version, (record,),
                       (probability,), (label,), latency_ms)
            )  # fmt: skip
        self.telemetry.scored((label,), (probability,))
        return Response(
            to_json(answer), media_type="application/json", headers={REQUEST_ID_HEADER: request_id}
        )

    def many(
        self,
        request_id: str,
        records: Sequence[Mapping[str, Any]],
        answers: list[dict[str, Any]],
        started: float,
        route: str = "batch",
    ) -> None:
        """Give each answer of a batch its id; log and count the batch (`route` is "batch",
        or "oip" for the Open Inference Protocol's inference, logged the same way)."""
        labels = [answer["label"] for answer in answers]
        probabilities = [answer["probability"] for answer in answers]
        for index, answer in enumerate(answers):
            answer["id"] = f"{request_id}:{index}"
        if self.log is not None:
            latency_ms = (time.perf_counter() - started) * 1000
            self.log.submit(
                Scored(request_id, time.time(), route, self.model_version, records,
                       probabilities, labels, latency_ms)
            )  # fmt: skip
        self.telemetry.scored(labels, probabilities)


def tracker(request: Request) -> Tracker:
    found: Tracker = request.app.state.tracker
    return found
