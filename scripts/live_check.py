#!/usr/bin/env python3
"""Call a running deployment of the prediction service: GET / and POST /predict.

    scripts/live_check.py --url https://census.example.com [--api-key KEY]

Prints each status code and response body and exits non-zero if either call fails, so it can
serve as a post-deploy smoke test. The API key may also come from CENSUS_API_API_KEY. Standard
library only, so any Python 3 runs it (no virtual environment, nothing to install).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

# The second row of the course's census.csv.
RECORD: dict[str, Any] = {
    "age": 50,
    "workclass": "Self-emp-not-inc",
    "fnlgt": 83311,
    "education": "Bachelors",
    "education-num": 13,
    "marital-status": "Married-civ-spouse",
    "occupation": "Exec-managerial",
    "relationship": "Husband",
    "race": "White",
    "sex": "Male",
    "capital-gain": 0,
    "capital-loss": 0,
    "hours-per-week": 13,
    "native-country": "United-States",
}


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True, help="Base URL, e.g. http://127.0.0.1:8000")
    parser.add_argument("--api-key", default=os.environ.get("CENSUS_API_API_KEY"))
    parser.add_argument("--timeout", type=float, default=10.0, help="Seconds per request.")
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 400


def _call(url: str, timeout: float, headers: dict[str, str], payload: Any = None) -> Answer:
    """One request; an HTTP error status is an answer, an unreachable server an OSError."""
    data = None if payload is None else json.dumps(payload).encode("utf-8")
    if data is not None:
        headers = {**headers, "Content-Type": "application/json"}
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Answer(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.read())


def _show(name: str, answer: Answer) -> bool:
    print(f"{name}: status {answer.status}")
    try:
        print(json.dumps(json.loads(answer.body), indent=2))
    except ValueError:
        print(answer.body[:500].decode("utf-8", "replace"))
    return answer.ok


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    base = args.url.rstrip("/")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    try:
        root_ok = _show("GET /", _call(f"{base}/", args.timeout, {}))
        predict = _call(f"{base}/predict", args.timeout, headers, RECORD)
        predict_ok = _show("POST /predict", predict)
    except OSError as exc:
        print(f"error: could not reach {base}: {exc}", file=sys.stderr)
        return 2
    if not (root_ok and predict_ok):
        print("live check FAILED", file=sys.stderr)
        return 1
    print("live check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
