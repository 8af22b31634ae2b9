"""Load-test the prediction service with wrk, against baselines measured in the same run.

One uvicorn worker runs pinned to core 0, started the way the Procfile starts it
(`census-pipeline serve`, so with every limit of docs/api.md: body limits and deadline, header
cap, connection limit), under tests/api/slim_python.py so only the `serve` install's modules can
load (what a container has, so its RSS is the deployed one). wrk runs pinned to core 1. Every
round measures everything below; each ratio is taken within a round from two runs back to back
(so a neighbour's burst of work hits both sides alike) and the report gives medians over the
rounds:

- throughput of POST /predict vs POST /bench/bare (same app, same body validation, constant
  answer), 16 connections;
- explanations under load (issue 13): POST /predict?explain=true alone (16 connections) vs plain
  /predict; then, while 64 connections ask for explanations, GET /health's latency on one more
  connection and plain /predict's req/s on another, vs both measured unloaded in the same round;
- single-connection latency of POST /predict (wrk's p50 and p99);
- POST /predict/batch with 1,000 records of the clean test table in records/s, vs
  `Predictor.predict_many` on the same records in a process pinned to the same core;
- the server's resident memory (VmRSS, and the VmHWM peak) with the model loaded, after the load;
- the cost of uvicorn's access log: /predict throughput of a second server with
  CENSUS_API_ACCESS_LOG=true, its lines written to a file as a log collector would take them;
- how often the kernel preempted the server during each latency run (the machine is shared:
  other work on the server's core is what makes the latency tail).

    python benchmarks/bench_api.py [--model-dir models] [--duration 5] [--rounds 6]

Needs `wrk` (Debian: apt-get install wrk) and `taskset`, a trained and gated model, and the
clean test table (`make pipeline`). `--allow-unblessed` serves a model the gate has not blessed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SLIM_PYTHON = REPO / "tests" / "api" / "slim_python.py"
SERVER_CORE, CLIENT_CORE = "0", "1"
BATCH_SIZE = 1000
BARS = {
    "throughput_ratio": 0.75,
    "p50_ms": 2.0,
    "p99_ms": 5.0,
    "batch_ratio": 0.70,
    "rss_mb": 300,
    "explain_ratio": 0.2,
    "loaded_health_p99_ms": 20.0,
    "loaded_predict_ratio": 0.5,
}
EXPLAIN_CONNECTIONS = 64

# What the in-process baseline runs: load the predictor, then time predict_many on the records.
IN_PROCESS = """
import json, statistics, sys, time
from pathlib import Path
from census_pipeline.predict import Predictor

predictor = Predictor.load(Path(sys.argv[1]))
records = json.loads(Path(sys.argv[2]).read_text())
predictor.predict_many(records)
runs = []
deadline = time.perf_counter() + float(sys.argv[3])
while time.perf_counter() < deadline or len(runs) < 5:
    started = time.perf_counter()
    predictor.predict_many(records)
    runs.append(time.perf_counter() - started)
single = []
for record in records[:200]:
    started = time.perf_counter()
    predictor.probability_one(record)
    single.append(time.perf_counter() - started)
print(json.dumps({"batch_s": statistics.median(runs), "single_s": statistics.median(single)}))
"""


@dataclass
class WrkResult:
    requests_per_s: float
    latency_ms: dict[str, float]  # "50%" -> ms


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path, default=REPO / "models")
    parser.add_argument("--test-table", type=Path, default=None, help="default: params paths")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=6, help="each round measures everything")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--allow-unblessed", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def load_records(table: Path | None, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of the clean test table, as the service's JSON records."""
    import pandas as pd

    from census_pipeline.config import load_params
    from census_pipeline.schema import FEATURES

    path = table or load_params().paths.clean_test
    frame = pd.read_parquet(path).head(count)
    records = []
    for row in frame[list(FEATURES)].astype(object).itertuples(index=False):
        records.append({k: (None if pd.isna(v) else v) for k, v in zip(FEATURES, row, strict=True)})
    plain: list[dict[str, Any]] = json.loads(json.dumps(records, default=int))  # numpy ints
    return plain


def lua_post(path: Path, body: str) -> Path:
    """A wrk script that POSTs `body` as JSON (long bracket string, so no escaping needed)."""
    assert "]==]" not in body
    path.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f"wrk.body = [==[{body}]==]\n",
        encoding="utf-8",
    )
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# `census-pipeline serve` through the slim interpreter (the console script would bypass it).
SERVE = "import sys; from census_pipeline.cli import app; app(sys.argv[1:], prog_name='serve')"


@contextmanager
def server(model_dir: Path, env_extra: dict[str, str], log: Path) -> Iterator[tuple[str, int]]:
    """A `census-pipeline serve` worker on SERVER_CORE; yields its URL and PID, stops it."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    env.update(
        CENSUS_API_MODEL_DIR=str(model_dir),
        CENSUS_API_MODEL_CARD_PATH=str(model_dir / "model_card.html"),
        CENSUS_API_ENABLE_BARE_ENDPOINT="true",
        CENSUS_API_DRAIN_S="0",
    )
    env.update(env_extra)
    command = [
        "taskset", "-c", SERVER_CORE, sys.executable, str(SLIM_PYTHON), "-c", SERVE,
        "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, log)
        yield url, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise SystemExit(f"server not ready after 60 s:\n{log.read_text()}")


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, script: Path | None, connections: int, duration: int) -> WrkResult:
    output = subprocess.run(
        _wrk_command(url, script, connections, duration), capture_output=True, text=True, check=True
    ).stdout
    return _parse_wrk(url, output)


def _wrk_command(url: str, script: Path | None, connections: int, duration: int) -> list[str]:
    command = [
        "taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}", f"-d{duration}s",
        "--latency", "--timeout", "10s",
    ]  # fmt: skip
    return [*command, *(["-s", str(script)] if script else []), url]


def _parse_wrk(url: str, output: str) -> WrkResult:
    if "Non-2xx" in output or "Socket errors" in output:
        raise SystemExit(f"wrk saw failed requests against {url}:\n{output}")
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    latency = {
        pct: float(value) * _UNITS[unit]
        for pct, value, unit in re.findall(r"^\s+(\d+%)\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
    }
    if found := re.search(r"^\s+Latency(?:\s+([\d.]+)(us|ms|s)){3}", output, re.M):
        latency["max"] = float(found.group(1)) * _UNITS[found.group(2)]
    return WrkResult(rate, latency)


def in_process(model_dir: Path, records_file: Path, seconds: float) -> dict[str, float]:
    command = [
        "taskset", "-c", SERVER_CORE, sys.executable, str(SLIM_PYTHON), "-c", IN_PROCESS,
        str(model_dir), str(records_file), str(seconds),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    timings: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return timings


def involuntary_switches(pid: int) -> int:
    """Times the kernel took the server's core away: other work on the core, the latency tail."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    return int(re.search(r"^nonvoluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))  # type: ignore[union-attr]


def memory_mb(pid: int) -> dict[str, float]:
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    fields = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, re.M))
    return {name: int(kb) / 1024 for name, kb in fields.items()}


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    records = load_records(args.test_table, BATCH_SIZE)
    records_file = work / "records.json"
    records_file.write_text(json.dumps(records), encoding="utf-8")
    one = lua_post(work / "one.lua", json.dumps(records[0]))
    batch = lua_post(work / "batch.lua", json.dumps(records))
    unblessed = {"CENSUS_API_ALLOW_UNBLESSED": "true"} if args.allow_unblessed else {}
    d, c = args.duration, args.connections
    runs: dict[str, list[float]] = defaultdict(list)
    load_before = _loadavg()
    logged = {"CENSUS_API_ACCESS_LOG": "true", **unblessed}
    # Two servers on the same core; only the one under load uses it. The second logs every
    # request (to a file, as a platform's log collector would take the lines).
    with (
        server(args.model_dir, unblessed, work / "server.log") as (url, pid),
        server(args.model_dir, logged, work / "access.log") as (logged_url, _),
    ):
        for warm in (url, logged_url):
            wrk(f"{warm}/predict", one, c, 2)
        for i in range(args.rounds):
            # Each ratio is taken within a round, its two sides run back to back (in
            # alternating order), so a neighbour's burst of work hits both sides alike.
            pairs = [
                ("bare", f"{url}/bench/bare", "predict", f"{url}/predict", "throughput_ratio"),
                ("quiet", f"{url}/predict", "logged", f"{logged_url}/predict", "access_log_ratio"),
            ]
            for first, first_url, second, second_url, ratio in pairs:
                order = [(first, first_url), (second, second_url)]
                for name, target in order if i % 2 == 0 else order[::-1]:
                    runs[name].append(wrk(target, one, c, d).requests_per_s)
                runs[ratio].append(runs[second][-1] / runs[first][-1])
            preempted = involuntary_switches(pid)
            latency = wrk(f"{url}/predict", one, 1, d).latency_ms
            runs["preemptions"].append(involuntary_switches(pid) - preempted)
            runs["p50_ms"].append(latency["50%"])
            runs["p99_ms"].append(latency["99%"])
            runs["batch"].append(
                wrk(f"{url}/predict/batch", batch, 1, d).requests_per_s * BATCH_SIZE
            )
            _explain_round(runs, url, one, d)
            timing = in_process(args.model_dir, records_file, d / 2)
            runs["in_process"].append(BATCH_SIZE / timing["batch_s"])
            runs["batch_ratio"].append(runs["batch"][-1] / runs["in_process"][-1])
            runs["single_us"].append(timing["single_s"] * 1e6)
        memory = memory_mb(pid)
    med = {name: statistics.median(values) for name, values in runs.items()}
    return {
        **{name: med[name] for name in EXPLAIN_RESULTS},
        "bare_rps": med["bare"],
        "predict_rps": med["predict"],
        "throughput_ratio": med["throughput_ratio"],
        "p50_ms": med["p50_ms"],
        "p99_ms": med["p99_ms"],
        "preemptions_per_latency_run": med["preemptions"],
        "batch_records_per_s": med["batch"],
        "in_process_records_per_s": med["in_process"],
        "batch_ratio": med["batch_ratio"],
        "in_process_single_us": med["single_us"],
        "rss_mb": memory["VmRSS"],
        "peak_rss_mb": memory["VmHWM"],
        "predict_rps_with_access_log": med["logged"],
        "access_log_cost": 1 - med["access_log_ratio"],
        "loadavg_before_after": [load_before, _loadavg()],
        "runs": {name: [round(v, 3) for v in values] for name, values in runs.items()},
        "config": {"duration_s": d, "rounds": args.rounds, "connections": c},
    }


EXPLAIN_RESULTS = (
    "explain_rps",
    "explain_ratio",
    "unloaded_predict_1conn_rps",
    "loaded_predict_1conn_rps",
    "loaded_predict_ratio",
    "unloaded_health_p99_ms",
    "loaded_health_p99_ms",
    "loaded_health_max_ms",
    "explain_rps_under_probe",
)


def _explain_round(runs: dict[str, list[float]], url: str, one: Path, d: int) -> None:
    """Explanations alone, then as a background load while /health and /predict are measured.

    The ratios are within the round: plain /predict on one connection with and without the
    explanation load, explanations vs plain /predict (16 connections each, run back to back).
    """
    explain_url = f"{url}/predict?explain=true"
    runs["explain_rps"].append(wrk(explain_url, one, 16, d).requests_per_s)
    runs["explain_ratio"].append(runs["explain_rps"][-1] / runs["predict"][-1])
    runs["unloaded_predict_1conn_rps"].append(wrk(f"{url}/predict", one, 1, d).requests_per_s)
    runs["unloaded_health_p99_ms"].append(wrk(f"{url}/health", None, 1, d).latency_ms["99%"])
    load = subprocess.Popen(
        _wrk_command(explain_url, one, EXPLAIN_CONNECTIONS, 2 * d + 3),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.5)  # the explanation queue is full before the probes start
        health = wrk(f"{url}/health", None, 1, d).latency_ms
        predict = wrk(f"{url}/predict", one, 1, d).requests_per_s
    finally:
        output, _ = load.communicate(timeout=4 * d + 30)
    runs["explain_rps_under_probe"].append(_parse_wrk(explain_url, output).requests_per_s)
    runs["loaded_health_p99_ms"].append(health["99%"])
    runs["loaded_health_max_ms"].append(health.get("max", health["99%"]))
    runs["loaded_predict_1conn_rps"].append(predict)
    runs["loaded_predict_ratio"].append(predict / runs["unloaded_predict_1conn_rps"][-1])


def _loadavg() -> float:
    """The 1-minute load average: how busy the shared machine was (2.0 = both cores)."""
    return float(Path("/proc/loadavg").read_text(encoding="utf-8").split()[0])


def report(results: dict[str, Any]) -> str:
    r = results
    rows = [
        ("POST /bench/bare, 16 conn.", f"{r['bare_rps']:,.0f} req/s", "baseline", ""),
        ("POST /predict, 16 conn.", f"{r['predict_rps']:,.0f} req/s",
         f"{r['throughput_ratio']:.0%} of bare (bar >= 75%)",
         verdict(r["throughput_ratio"] >= BARS["throughput_ratio"])),
        ("POST /predict, 1 conn., p50", f"{r['p50_ms']:.2f} ms", "bar < 2 ms",
         verdict(r["p50_ms"] < BARS["p50_ms"])),
        ("POST /predict, 1 conn., p99", f"{r['p99_ms']:.2f} ms", "bar < 5 ms",
         verdict(r["p99_ms"] < BARS["p99_ms"])),
        ("server preempted during a latency run", f"{r['preemptions_per_latency_run']:.0f} times",
         "", ""),
        ("Predictor.predict_many in-process", f"{r['in_process_records_per_s']:,.0f} rec/s",
         "baseline", ""),
        ("POST /predict/batch (1,000 rec.), 1 conn.", f"{r['batch_records_per_s']:,.0f} rec/s",
         f"{r['batch_ratio']:.0%} of in-process", verdict(r["batch_ratio"] >= BARS["batch_ratio"])),
        ("server RSS, model loaded (peak)", f"{r['rss_mb']:.0f} MB ({r['peak_rss_mb']:.0f} MB)",
         "bar < 300 MB", verdict(r["peak_rss_mb"] < BARS["rss_mb"])),
        ("POST /predict with access log on", f"{r['predict_rps_with_access_log']:,.0f} req/s",
         f"costs {r['access_log_cost']:.0%}", ""),
        ("Predictor.probability_one in-process", f"{r['in_process_single_us']:.0f} µs", "", ""),
        ("POST /predict?explain=true, 16 conn.", f"{r['explain_rps']:,.0f} req/s",
         f"{r['explain_ratio']:.0%} of plain (bar >= 20%)",
         verdict(r["explain_ratio"] >= BARS["explain_ratio"])),
        ("GET /health p99, 1 conn., unloaded", f"{r['unloaded_health_p99_ms']:.2f} ms", "", ""),
        (f"GET /health p99 under {EXPLAIN_CONNECTIONS} explain conn.",
         f"{r['loaded_health_p99_ms']:.2f} ms (max {r['loaded_health_max_ms']:.1f} ms)",
         "bar < 20 ms",
         verdict(r["loaded_health_p99_ms"] < BARS["loaded_health_p99_ms"])),
        ("POST /predict, 1 conn., unloaded", f"{r['unloaded_predict_1conn_rps']:,.0f} req/s",
         "baseline", ""),
        (f"POST /predict, 1 conn., under {EXPLAIN_CONNECTIONS} explain conn.",
         f"{r['loaded_predict_1conn_rps']:,.0f} req/s",
         f"{r['loaded_predict_ratio']:.0%} of unloaded (bar >= 50%)",
         verdict(r["loaded_predict_ratio"] >= BARS["loaded_predict_ratio"])),
        ("explanations served meanwhile", f"{r['explain_rps_under_probe']:,.0f} req/s", "", ""),
        ("load average before / after", " / ".join(f"{x:.2f}" for x in r["loadavg_before_after"]),
         "2 cores", ""),
    ]  # fmt: skip
    return markdown_table(rows)


def markdown_table(rows: list[tuple[str, str, str, str]]) -> str:
    """The benchmarks' report: measurement, result, ratio or bar, verdict."""
    lines = ["| measurement | result | ratio / bar | |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def verdict(met: bool) -> str:
    return "met" if met else "MISSED"


def main() -> int:
    args = parse_args()
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} on PATH (Debian: apt-get install wrk)")
    if (os.cpu_count() or 1) < 2:
        raise SystemExit("needs two cores: one for the server, one for wrk")
    with tempfile.TemporaryDirectory(prefix="bench-api-") as tmp:
        results = measure(args, Path(tmp))
    print(report(results))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
