"""Rows per second through the Open Inference Protocol vs /predict/batch, in the same run.

One uvicorn worker pinned to core 0 (started as in bench_api.py, under the `serve` install's
modules only), wrk pinned to core 1, one connection. Every round times both routes back to back,
in alternating order, on the same 1,000 rows of the clean test table: POST /predict/batch with
the rows as a JSON list of records, and POST /v2/models/census/infer with the rows as 14 JSON
tensors (one per field). The ratio is taken within each round; the report gives medians.
Before timing, the two answers are checked to carry the same probabilities.

On a shared machine wall-clock rates swing with the neighbours' load, so each run also reads
the server's CPU time (utime + stime of its process, from /proc) and reports rows per
CPU-second: what the server costs per row, whoever else wanted the core meanwhile.

    python benchmarks/bench_oip.py [--model-dir models] [--duration 5] [--rounds 6]

Needs `wrk` (Debian: apt-get install wrk) and `taskset`, a trained and gated model, and the
clean test table (`make pipeline`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from bench_api import (
    BATCH_SIZE,
    REPO,
    load_records,
    lua_post,
    markdown_table,
    server,
    verdict,
    wrk,
)

from census_pipeline.schema import FEATURES, NUMERIC_RANGES

BAR = 0.90  # OIP rows/s at least 90 % of /predict/batch's


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--test-table", type=Path, default=None, help="default: params paths")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--allow-unblessed", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def inference_request(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The rows as OIP tensors; a missing category is an empty string (the protocol has no null)."""
    return {
        "inputs": [
            {
                "name": name,
                "datatype": "INT64" if name in NUMERIC_RANGES else "BYTES",
                "shape": [len(records)],
                "data": ["" if r[name] is None else r[name] for r in records],
            }
            for name in FEATURES
        ]
    }


def post(url: str, body: bytes) -> Any:
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def check_same_answers(url: str, batch: bytes, oip: bytes) -> None:
    expected = [p["probability"] for p in post(f"{url}/predict/batch", batch)]
    answer = post(f"{url}/v2/models/census/infer", oip)
    outputs = {out["name"]: out["data"] for out in answer["outputs"]}
    if outputs["probability"] != expected:
        raise SystemExit("the OIP route and /predict/batch disagree on the probabilities")


def cpu_seconds(pid: int) -> float:
    """The process's user + system CPU time so far (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _loadavg() -> float:
    """The 1-minute load average: how busy the shared machine was (2.0 = both cores)."""
    return float(Path("/proc/loadavg").read_text(encoding="utf-8").split()[0])


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    records = load_records(args.test_table, BATCH_SIZE)
    batch_body = json.dumps(records)
    oip_body = json.dumps(inference_request(records))
    scripts = {
        "batch": lua_post(work / "batch.lua", batch_body),
        "oip": lua_post(work / "oip.lua", oip_body),
    }
    paths = {"batch": "/predict/batch", "oip": "/v2/models/census/infer"}
    unblessed = {"CENSUS_API_ALLOW_UNBLESSED": "true"} if args.allow_unblessed else {}
    load_before = _loadavg()
    runs: dict[str, list[float]] = {
        "batch": [], "oip": [], "ratio": [], "batch_cpu": [], "oip_cpu": [], "cpu_ratio": []
    }  # fmt: skip
    with server(args.model_dir, unblessed, work / "server.log") as (url, pid):
        check_same_answers(url, batch_body.encode(), oip_body.encode())
        for name in ("batch", "oip"):
            wrk(url + paths[name], scripts[name], 1, 2)  # warm-up
        for i in range(args.rounds):
            order = ["batch", "oip"] if i % 2 == 0 else ["oip", "batch"]
            for name in order:
                cpu = cpu_seconds(pid)
                rate = wrk(url + paths[name], scripts[name], 1, args.duration).requests_per_s
                rows = rate * args.duration * BATCH_SIZE
                runs[name].append(rate * BATCH_SIZE)
                runs[f"{name}_cpu"].append(rows / (cpu_seconds(pid) - cpu))
            runs["ratio"].append(runs["oip"][-1] / runs["batch"][-1])
            runs["cpu_ratio"].append(runs["oip_cpu"][-1] / runs["batch_cpu"][-1])
    return {
        "batch_rows_per_s": statistics.median(runs["batch"]),
        "oip_rows_per_s": statistics.median(runs["oip"]),
        "ratio": statistics.median(runs["ratio"]),
        "batch_rows_per_cpu_s": statistics.median(runs["batch_cpu"]),
        "oip_rows_per_cpu_s": statistics.median(runs["oip_cpu"]),
        "cpu_ratio": statistics.median(runs["cpu_ratio"]),
        "loadavg_before_after": [load_before, _loadavg()],
        "body_bytes": {"batch": len(batch_body), "oip": len(oip_body)},
        "runs": {name: [round(v, 3) for v in values] for name, values in runs.items()},
        "config": {"duration_s": args.duration, "rounds": args.rounds, "rows": BATCH_SIZE},
    }


def report(results: dict[str, Any]) -> str:
    r = results
    met = verdict(r["ratio"] >= BAR)
    cpu_met = verdict(r["cpu_ratio"] >= BAR)
    rows = [
        ("POST /predict/batch (1,000 rows), 1 conn.", f"{r['batch_rows_per_s']:,.0f} rows/s",
         "baseline", ""),
        ("POST /v2/models/census/infer (1,000 rows), 1 conn.", f"{r['oip_rows_per_s']:,.0f} rows/s",
         f"{r['ratio']:.0%} of /predict/batch (bar >= {BAR:.0%})", met),
        ("POST /predict/batch, per server CPU-second", f"{r['batch_rows_per_cpu_s']:,.0f} rows",
         "baseline", ""),
        ("POST /v2/models/census/infer, per server CPU-second",
         f"{r['oip_rows_per_cpu_s']:,.0f} rows", f"{r['cpu_ratio']:.0%} of /predict/batch",
         cpu_met),
        ("request body, records / tensors",
         f"{r['body_bytes']['batch']:,} / {r['body_bytes']['oip']:,} bytes", "", ""),
        ("load average before / after", " / ".join(f"{x:.2f}" for x in r["loadavg_before_after"]),
         "2 cores", ""),
    ]  # fmt: skip
    return markdown_table(rows)


def main() -> int:
    args = parse_args()
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} on PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="bench-oip-") as tmp:
        results = measure(args, Path(tmp))
    print(report(results))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
