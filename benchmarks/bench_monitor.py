"""Benchmark the monitoring loop: what logging costs the service, a soak, and `monitor` at scale.

Every figure is a ratio to a baseline measured in the same run (or a bar from issue 11):

1. POST /predict throughput (wrk, 16 connections, one record per request) of three servers
   started alike (one uvicorn worker each, pinned to core 0, wrk on core 1): logging off (the
   baseline), logging to SQLite, logging to PostgreSQL (its server pinned to wrk's core, as
   if on its own host: the bar is what logging costs the service). Each round runs the three
   back to back in rotating order; the report gives the median of the per-round ratios.
   Bar: >= 90 %.
2. Soak: 64 connections for `--soak` seconds (60) against the SQLite-logging server: errors
   (non-2xx and socket errors, from wrk), records dropped during the run (from /ready), and the
   server's RSS growth from the start of the run (after a warm-up) to its end. Bars: 0, 0, < 10 %.
3. `monitor` over `--rows` (1,000,000) logged records (the test set repeated, 10 % with
   feedback) in a SQLite log: wall time of the function in this process and of the
   `census-pipeline monitor` command. Bar: < 10 s.

    python benchmarks/bench_monitor.py [--params params.yaml] [--duration 10] [--rounds 3]
        [--soak 60] [--rows 1000000] [--allow-unblessed] [--json out.json]

Needs wrk and taskset (Debian: apt-get install wrk), PostgreSQL's binaries (apt-get install
postgresql; started here in a temporary folder), and the pipeline's outputs: the model with its
verdict and reference profile, and the clean test table (`make pipeline`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from bench_api import (  # noqa: E402
    CLIENT_CORE,
    load_records,
    lua_post,
    markdown_table,
    memory_mb,
    server,
    verdict,
)
from monitoring.log_samples import scored, write_log  # noqa: E402
from monitoring.postgres import PostgresServer  # noqa: E402

BARS = {"logging_ratio": 0.90, "soak_rss_growth": 0.10, "monitor_s": 10.0}
FEEDBACK_EVERY = 10


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--soak", type=int, default=60, help="seconds of the 64-connection run")
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged records for monitor")
    parser.add_argument("--allow-unblessed", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    return parser.parse_args()


def run_wrk(url: str, script: Path, connections: int, duration: int) -> dict[str, float]:
    """wrk's requests/s and its error counts (it exits 0 even when requests failed)."""
    command = ["taskset", "-c", CLIENT_CORE, "wrk", "-t1", f"-c{connections}",
               f"-d{duration}s", "-s", str(script), url]  # fmt: skip
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                        output)  # fmt: skip
    assert rate is not None and total is not None, output
    return {
        "rps": float(rate.group(1)),
        "requests": float(total.group(1)),
        "errors": float(non_2xx.group(1) if non_2xx else 0)
        + float(sum(int(g) for g in sockets.groups()) if sockets else 0),
    }


def ready(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{url}/ready", timeout=10) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def wait_drained(url: str, timeout_s: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    state: dict[str, Any] = ready(url)["prediction_log"]
    while state["queued"] and time.monotonic() < deadline:
        time.sleep(0.2)
        state = ready(url)["prediction_log"]
    return state


def pin_database(database: PostgresServer) -> None:
    """PostgreSQL's processes onto the client's core, so the server's core holds the service
    alone; backends forked later inherit the postmaster's affinity."""
    import psutil

    assert database.process is not None
    root = psutil.Process(database.process.pid)
    for process in (root, *root.children(recursive=True)):
        process.cpu_affinity([int(CLIENT_CORE)])


def throughput_and_soak(args: argparse.Namespace, work: Path, model_dir: Path,
                        test_table: Path) -> dict[str, Any]:  # fmt: skip
    record = load_records(test_table, 1)[0]
    script = lua_post(work / "one.lua", json.dumps(record))
    base = {"CENSUS_API_ALLOW_UNBLESSED": "true"} if args.allow_unblessed else {}
    database = PostgresServer()
    database.start()
    pin_database(database)
    modes = {
        "off": {**base, "CENSUS_API_PREDICTION_LOG": "false"},
        "sqlite": {**base, "CENSUS_API_DATABASE_URL": f"sqlite:///{work / 'log.sqlite'}"},
        "postgres": {**base, "CENSUS_API_DATABASE_URL": database.url},
    }
    runs: dict[str, list[float]] = defaultdict(list)
    try:
        with (
            server(model_dir, modes["off"], work / "off.log") as (off, _),
            server(model_dir, modes["sqlite"], work / "sqlite.log") as (lite, lite_pid),
            server(model_dir, modes["postgres"], work / "pg.log") as (pg, _),
        ):
            urls = {"off": off, "sqlite": lite, "postgres": pg}
            for url in urls.values():
                run_wrk(f"{url}/predict", script, 16, 3)  # warm-up
            names = list(urls)
            for i in range(args.rounds):
                for name in names[i % 3 :] + names[: i % 3]:
                    runs[name].append(run_wrk(f"{urls[name]}/predict", script, 16,
                                              args.duration)["rps"])  # fmt: skip
                for name in ("sqlite", "postgres"):
                    runs[f"{name}_ratio"].append(runs[name][-1] / runs["off"][-1])
            for name in ("sqlite", "postgres"):
                state = wait_drained(urls[name])
                runs[f"{name}_dropped"].append(state["dropped"])
            soak = soak_run(args, lite, lite_pid, script)
    finally:
        database.destroy()
    med = {name: statistics.median(values) for name, values in runs.items()}
    return {"throughput": med, "runs": dict(runs), "soak": soak}


def soak_run(args: argparse.Namespace, url: str, pid: int, script: Path) -> dict[str, Any]:
    run_wrk(f"{url}/predict", script, 64, 10)  # warm-up: pools, queues and caches reach size
    wait_drained(url)
    before_state, before_rss = ready(url)["prediction_log"], memory_mb(pid)["VmRSS"]
    result = run_wrk(f"{url}/predict", script, 64, args.soak)
    after_rss = memory_mb(pid)["VmRSS"]
    after_state = wait_drained(url)
    return {
        "rps": result["rps"],
        "requests": result["requests"],
        "errors": result["errors"],
        "dropped": after_state["dropped"] - before_state["dropped"],
        "written": after_state["written"] - before_state["written"],
        "rss_mb_before": before_rss,
        "rss_mb_after": after_rss,
        "rss_growth": after_rss / before_rss - 1,
    }


def monitor_at_scale(args: argparse.Namespace, work: Path, params_path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd

    from census_pipeline.config import load_params
    from census_pipeline.monitor import monitor
    from census_pipeline.predict import Predictor

    params = load_params(params_path)
    frame = pd.read_parquet(params.paths.clean_test)
    with Predictor.load(params.paths.model_dir) as predictor:
        probabilities, labels = scored(frame, predictor)
    url = f"sqlite:///{work / 'million.sqlite'}"
    started, written, copy = time.perf_counter(), 0, 0
    while written < args.rows:
        part = frame.head(args.rows - written)
        feedback = np.arange(0, len(part), FEEDBACK_EVERY)
        write_log(url, part, probabilities[: len(part)], labels[: len(part)],
                  prefix=f"c{copy}", feedback_rows=feedback)  # fmt: skip
        written, copy = written + len(part), copy + 1
    fill_s = time.perf_counter() - started
    # One run first, so the timed runs find their libraries' bytecode cached (as any installed
    # Python does; this warm-up also writes it when PYTHONDONTWRITEBYTECODE is set here).
    command = [str(Path(sys.executable).with_name("census-pipeline")), "monitor",
               "--params", str(params_path), "--database-url", url]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(command, capture_output=True, check=False, env=env)
    started = time.perf_counter()
    report = monitor(params, url).report
    function_s = time.perf_counter() - started
    started = time.perf_counter()
    exit_code = subprocess.run(command, capture_output=True, check=False, env=env).returncode
    command_s = time.perf_counter() - started
    return {
        "rows": report["log"]["rows"],
        "feedback_rows": report["quality"]["feedback_rows"],
        "alerts": len(report["alerts"]),
        "fill_s": fill_s,
        "function_s": function_s,
        "command_s": command_s,
        "command_exit_code": exit_code,
    }


def loadavg() -> float:
    return float(Path("/proc/loadavg").read_text(encoding="utf-8").split()[0])


def report(r: dict[str, Any]) -> str:
    t, s, m = r["service"]["throughput"], r["service"]["soak"], r["monitor"]
    rows = [
        ("POST /predict, logging off, 16 conn.", f"{t['off']:,.0f} req/s", "baseline", ""),
        ("POST /predict, logging to SQLite", f"{t['sqlite']:,.0f} req/s",
         f"{t['sqlite_ratio']:.0%} of off", verdict(t["sqlite_ratio"] >= BARS["logging_ratio"])),
        ("POST /predict, logging to PostgreSQL", f"{t['postgres']:,.0f} req/s",
         f"{t['postgres_ratio']:.0%} of off",
         verdict(t["postgres_ratio"] >= BARS["logging_ratio"])),
        ("records dropped in the throughput runs (SQLite, PostgreSQL)",
         f"{t['sqlite_dropped']:.0f}, {t['postgres_dropped']:.0f}", "", ""),
        (f"soak: 64 conn. for {r['config']['soak_s']} s, SQLite log",
         f"{s['rps']:,.0f} req/s, {s['requests']:,.0f} requests", "", ""),
        ("soak: errors (non-2xx + socket)", f"{s['errors']:.0f}", "bar 0",
         verdict(s["errors"] == 0)),
        ("soak: records dropped", f"{s['dropped']:.0f} ({s['written']:,.0f} written)", "bar 0",
         verdict(s["dropped"] == 0)),
        ("soak: server RSS start -> end",
         f"{s['rss_mb_before']:.0f} -> {s['rss_mb_after']:.0f} MB",
         f"{s['rss_growth']:+.1%}", verdict(s["rss_growth"] < BARS["soak_rss_growth"])),
        (f"monitor over {m['rows']:,} rows ({m['feedback_rows']:,} with feedback), function",
         f"{m['function_s']:.1f} s", "bar < 10 s", verdict(m["function_s"] < BARS["monitor_s"])),
        ("census-pipeline monitor, whole command", f"{m['command_s']:.1f} s",
         "bar < 10 s", verdict(m["command_s"] < BARS["monitor_s"])),
        ("load average before / after", " / ".join(f"{x:.2f}" for x in r["loadavg"]),
         "2 cores", ""),
    ]  # fmt: skip
    return markdown_table(rows)


def main() -> int:
    args = parse_args()
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        raise SystemExit(f"needs {', '.join(missing)} on PATH (Debian: apt-get install wrk)")
    from census_pipeline.config import load_params

    paths = load_params(args.params).paths
    if not paths.reference_profile.is_file():
        raise SystemExit(f"{paths.reference_profile}: missing: run `make pipeline` first")
    load_before = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-monitor-") as tmp:
        work = Path(tmp)
        os.chmod(work, 0o755)
        service = throughput_and_soak(args, work, paths.model_dir, paths.clean_test)
        scale = monitor_at_scale(args, work, args.params)
    results = {
        "service": service,
        "monitor": scale,
        "loadavg": [load_before, loadavg()],
        "config": {"duration_s": args.duration, "rounds": args.rounds, "soak_s": args.soak},
    }
    print(report(results))
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
