"""Fuzz every operation of a real server with schemathesis, all checks, and count what it found.

Starts `census-pipeline serve` on a free port with every optional route switched on (the bare
baseline, the prediction log and feedback, a monitoring folder) on a private copy of the model
folder, runs `st run` against its OpenAPI document with every check and a fixed seed, and
reports the number of requests sent and of failures by check. The run passes when there is no
failure at all: no 5xx, no response outside its documented schema, no schema-valid request
refused and no schema-invalid one accepted (docs/benchmarks.md, "Service hardening").

    python benchmarks/fuzz_api.py [--model-dir models] [--max-examples 300] [--seed 20261128]

The CI test (tests/api/test_fuzz.py) runs the same checks in-process with fewer examples.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench_api import free_port, wait_ready

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--max-examples", type=int, default=300, help="per operation")
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--min-requests", type=int, default=5000)
    parser.add_argument("--allow-unblessed", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    parser.add_argument("--st-output", type=Path, help="write schemathesis' full report here")
    parser.add_argument("--events", type=Path, help="keep schemathesis' NDJSON events here")
    return parser.parse_args()


def start_server(models: Path, port: int, log: Path, unblessed: bool) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    env.update(
        CENSUS_API_MODEL_DIR=str(models),
        CENSUS_API_MODEL_CARD_PATH=str(models / "model_card.html"),
        CENSUS_API_ENABLE_BARE_ENDPOINT="true",
        CENSUS_API_PREDICTION_LOG="true",
        CENSUS_API_MONITORING_DIR=str(models / "monitoring"),
    )
    if unblessed:
        env["CENSUS_API_ALLOW_UNBLESSED"] = "true"
    command = [str(BIN / "census-pipeline"), "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=sink)


def fuzz(url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    events = args.events or work / "events.ndjson"
    command = [
        str(BIN / "st"), "run", f"{url}/openapi.json", "--checks", "all",
        "--max-examples", str(args.max_examples), "--seed", str(args.seed), "--workers", "1",
        "--suppress-health-check", "all", "--generation-database", "none", "--no-color",
        "--report", "ndjson", "--report-ndjson-path", str(events),
        "--continue-on-failure", "--request-timeout", "30",
    ]  # fmt: skip
    started = time.monotonic()
    # In the scratch folder: st keeps a cache of what it found under its working directory.
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=work)
    if args.st_output:
        args.st_output.write_text(result.stdout + result.stderr, encoding="utf-8")
    summary = summarise(events)
    summary.update(
        st_exit_code=result.returncode,
        seconds=round(time.monotonic() - started, 1),
        output_tail=result.stdout.strip().splitlines()[-25:],
    )
    return summary


def summarise(events: Path) -> dict[str, Any]:
    """Requests sent, operations covered, and failures by check, from st's NDJSON events."""
    requests, statuses, failures = 0, Counter[str](), Counter[str]()
    operations: set[str] = set()
    for line in events.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        for name, payload in event.items():
            if name != "ScenarioFinished":
                continue
            recorder = payload.get("recorder", {})
            label = recorder.get("label")
            if label:
                operations.add(label)
            for interactions in recorder.get("interactions", {}).values():
                response = interactions.get("response") or {}
                requests += 1
                if response:
                    statuses[str(response.get("status_code"))[0] + "xx"] += 1
            for check_list in recorder.get("checks", {}).values():
                for check in check_list:
                    if str(check.get("status", "")).lower() in ("failure", "error"):
                        failures[check.get("name", "?")] += 1
    return {
        "requests": requests,
        "operations": sorted(operations),
        "statuses": dict(sorted(statuses.items())),
        "failures_by_check": dict(failures),
    }


def main() -> int:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="fuzz-api-") as tmp:
        work = Path(tmp)
        models = Path(shutil.copytree(args.model_dir, work / "models"))
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log = work / "server.log"
        process = start_server(models, port, log, args.allow_unblessed)
        try:
            wait_ready(process, url, log)
            summary = fuzz(url, args, work)
        finally:
            process.terminate()
            process.wait(timeout=30)
        summary["server_tracebacks"] = log.read_text(encoding="utf-8").count("Traceback")
    summary["config"] = {"max_examples": args.max_examples, "seed": args.seed}
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    clean = not summary["failures_by_check"] and summary["st_exit_code"] == 0
    enough = summary["requests"] >= args.min_requests
    return 0 if clean and enough and not summary["server_tracebacks"] else 1


if __name__ == "__main__":
    sys.exit(main())
