"""Call a running deployment of the prediction service: GET / and POST /predict.

    python scripts/live_check.py --url https://census.example.com [--api-key KEY]

Prints each status code and response body and exits non-zero if either call fails, so it can
serve as a post-deploy smoke test. The API key may also come from CENSUS_API_API_KEY.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

import requests

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


def _show(name: str, response: requests.Response) -> bool:
    print(f"{name}: status {response.status_code}")
    try:
        print(json.dumps(response.json(), indent=2))
    except ValueError:
        print(response.text[:500])
    return response.ok


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    base = args.url.rstrip("/")
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    try:
        root_ok = _show("GET /", requests.get(f"{base}/", timeout=args.timeout))
        predict = requests.post(
            f"{base}/predict", json=RECORD, headers=headers, timeout=args.timeout
        )
        predict_ok = _show("POST /predict", predict)
    except requests.RequestException as exc:
        print(f"error: could not reach {base}: {exc}", file=sys.stderr)
        return 2
    if not (root_ok and predict_ok):
        print("live check FAILED", file=sys.stderr)
        return 1
    print("live check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
