"""Batch scoring on Dask at scale, against the in-process Predictor in the same run.

Data comes from `make_census_rows.py` (real rows resampled with a seed): N rows of Parquet, a
tenth of them as Parquet and as CSV, and a 100k-row CSV with a few broken rows. Figures:

- baseline: the in-process `Predictor.predict_frame`, one thread, on the same N rows (read row
  group by row group; only the scoring is timed, so the bar is the model's own speed);
- `batch.score` end to end (read, check every row, score, write Parquet) on a fresh local
  cluster of 1 worker x 1 thread, then 2 workers x 1 thread, on the N rows: rows/s, the ratios
  to the baseline and to each other, and each worker's peak RSS (`ru_maxrss`), also on the
  tenth, to show memory does not grow with the input;
- CSV input: the tenth as CSV against the same rows as Parquet, 1 worker x 1 thread;
- a 100k-row CSV through `census-pipeline predict --scheduler` on a real `dask scheduler` and
  two `dask worker` processes: the scores must equal the in-process ones, and the quarantined
  rows are listed with their reasons.

Rows/s are over the whole `score` call (connect, load the model on the workers, every piece,
the quarantine, the publish); starting a cluster's processes is reported apart.

    python benchmarks/bench_batch.py --model-dir models --rows 10000000 --work /tmp/bench_batch
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from distributed import Client, LocalCluster

from census_pipeline.batch import Engine, score
from census_pipeline.batch.rows import check_rows
from census_pipeline.predict import Predictor

BIN = Path(sys.executable).parent
GENERATOR = Path(__file__).resolve().with_name("make_census_rows.py")
BARS = {"one_worker_vs_predictor": 0.9, "two_vs_one_worker": 1.7, "rss_growth": 0.10}
# (row, field, value) broken in the 100k-row file, so the quarantine has something to list.
BROKEN = ((10, "age", "400"), (20_000, "workclass", "Freelance"), (99_000, "hours-per-week", "x"))


def data(source: Path | None, work: Path, rows: int) -> dict[str, Path]:
    """The benchmark's inputs, generated once per row count and seed, then reused."""
    small = rows // 10
    files = {
        "big": work / f"rows_{rows}.parquet",
        "small": work / f"rows_{small}.parquet",
        "small_csv": work / f"rows_{small}.csv",
        "check_csv": work / "rows_100000.csv",
    }
    plans = [
        (files["big"], rows, None), (files["small"], small, None),
        (files["small_csv"], small, "csv"), (files["check_csv"], 100_000, "csv"),
    ]  # fmt: skip
    for path, count, kind in plans:
        if not path.exists():
            command = [sys.executable, str(GENERATOR), "--rows", str(count), "--seed", "7"]
            command += ["--csv" if kind == "csv" else "--parquet", str(path)]
            command += ["--source", str(source)] if source else []
            subprocess.run(command, check=True)
            if path == files["check_csv"]:
                _break_rows(path)
    return files


def _break_rows(path: Path) -> None:
    lines = path.read_text().splitlines()
    header = [name.strip() for name in lines[0].split(",")]
    for row, field, value in BROKEN:
        values = [v.strip() for v in lines[row].split(",")]
        values[header.index(field)] = value
        lines[row] = ", ".join(values)
    path.write_text("\n".join(lines) + "\n")


def baseline(model_dir: Path, parquet: Path) -> float:
    """In-process Predictor rows/s, one thread, scoring only (valid rows, typed like batch's)."""
    rows = 0
    seconds = 0.0
    with Predictor.load(model_dir) as predictor:
        handle = pq.ParquetFile(parquet)
        for group in range(handle.num_row_groups):
            frame = check_rows(handle.read_row_group(group).to_pandas()).valid
            started = time.perf_counter()
            predictor.predict_frame(frame)
            seconds += time.perf_counter() - started
            rows += len(frame)
    return rows / seconds


@contextmanager
def local_cluster(workers: int) -> Iterator[tuple[Client, str, float]]:
    started = time.perf_counter()
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):  # fmt: skip
        yield client, cluster.scheduler_address, time.perf_counter() - started


def batch_run(
    model_dir: Path, source: Path, work: Path, workers: int, allow_unblessed: bool
) -> dict[str, Any]:
    """One `score` call on a fresh local cluster: rows/s and each worker's peak RSS in MiB."""
    output = work / "out"
    shutil.rmtree(output, ignore_errors=True)
    with local_cluster(workers) as (client, address, startup):
        result = score(
            str(source), str(output), model_dir=model_dir, overwrite=True,
            engine=Engine(scheduler=address), allow_unblessed=allow_unblessed,
        )  # fmt: skip
        peaks = client.run(_peak_rss_mib)
    shutil.rmtree(output, ignore_errors=True)
    return {
        "rows": result.rows,
        "rows_per_s": result.rows_per_second,
        "seconds": result.seconds,
        "startup_s": startup,
        "peak_rss_mib": max(peaks.values()),
    }


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def real_cluster(work: Path) -> Iterator[str]:
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1, stopped by PID."""
    address = f"tcp://127.0.0.1:{_free_port()}"
    port = address.rsplit(":", 1)[1]
    log = (work / "dask.log").open("wb")
    scheduler = [str(BIN / "dask"), "scheduler", "--host", "127.0.0.1", "--port", port]
    worker = [str(BIN / "dask"), "worker", address, "--nthreads", "1", "--host", "127.0.0.1"]
    processes = [subprocess.Popen([*scheduler, "--no-dashboard"], stdout=log, stderr=log)]
    processes += [
        subprocess.Popen([*worker, "--no-dashboard"], stdout=log, stderr=log) for _ in range(2)
    ]
    try:
        with Client(address, timeout="120s") as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for process in reversed(processes):
            os.kill(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
        log.close()


def scheduler_check(
    model_dir: Path, source: Path, work: Path, allow_unblessed: bool
) -> dict[str, Any]:
    """The 100k-row CSV through the CLI and a real scheduler, compared with in process."""
    output = work / "check_out"
    shutil.rmtree(output, ignore_errors=True)
    with real_cluster(work) as address:
        command = [str(BIN / "census-pipeline"), "predict", "--input", str(source)]
        command += ["--output", str(output), "--model-dir", str(model_dir)]
        command += ["--scheduler", address, "--blocksize", "2MiB", "--overwrite"]
        command += ["--allow-unblessed"] if allow_unblessed else []
        started = time.perf_counter()
        run = subprocess.run(command, capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - started
    if run.returncode != 0:
        raise SystemExit(f"predict through the scheduler failed:\n{run.stdout}{run.stderr}")
    scored = pd.read_parquet(output)
    # Whole-file type inference (low_memory=False): the broken rows make a column mixed.
    frame = pd.read_csv(
        source, skipinitialspace=True, na_values=["?"], keep_default_na=False, low_memory=False
    )
    checked = check_rows(frame)
    with Predictor.load(model_dir) as predictor:
        expected = predictor.predict_frame(checked.valid).probabilities
    quarantine = pd.read_csv(f"{output}.quarantine.csv")
    return {
        "rows": len(frame),
        "seconds_cli": seconds,
        "identical": bool(np.array_equal(scored["probability"].to_numpy(), expected)),
        "summary": run.stdout.strip().splitlines()[-2],
        "quarantine": quarantine[["row", "reason"]].values.tolist(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=Path("models"))
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_batch"))
    parser.add_argument("--source", type=Path, help="Real rows to resample (make_census_rows).")
    parser.add_argument(
        "--allow-unblessed", action="store_true", help="Time a model the gate has not judged."
    )
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    files = data(args.source, args.work, args.rows)
    trees = Predictor.load(args.model_dir).metadata.num_trees
    print(f"model: {trees} trees; rows: {args.rows:,} (Parquet), {args.rows // 10:,} (tenth)")
    base = baseline(args.model_dir, files["big"])
    print(f"in-process Predictor, 1 thread, scoring only: {base:,.0f} rows/s", flush=True)
    unblessed = args.allow_unblessed
    runs = {}
    for name, key, workers in (
        ("Parquet tenth, 1x1", "small", 1), ("Parquet all, 1x1", "big", 1),
        ("Parquet all, 2x1", "big", 2), ("CSV tenth, 1x1", "small_csv", 1),
    ):  # fmt: skip
        runs[name] = batch_run(args.model_dir, files[key], args.work, workers, unblessed)
        print(f"batch {name}: {runs[name]}", flush=True)
    small, one = runs["Parquet tenth, 1x1"], runs["Parquet all, 1x1"]
    two, csv = runs["Parquet all, 2x1"], runs["CSV tenth, 1x1"]
    ratios = {
        "one_worker_vs_predictor": one["rows_per_s"] / base,
        "two_vs_one_worker": two["rows_per_s"] / one["rows_per_s"],
        "rss_growth": one["peak_rss_mib"] / small["peak_rss_mib"] - 1,
        "csv_vs_parquet": csv["rows_per_s"] / small["rows_per_s"],
    }
    for name, value in ratios.items():
        bar = BARS.get(name)
        direction = "<=" if name == "rss_growth" else ">="
        print(f"{name}: {value:.3f}" + ("" if bar is None else f" (bar {direction} {bar})"))
    check = scheduler_check(args.model_dir, files["check_csv"], args.work, unblessed)
    print(f"100k CSV through --scheduler: {check['summary']}; identical: {check['identical']}")
    for row, reason in check["quarantine"]:
        print(f"  quarantined row {row}: {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
