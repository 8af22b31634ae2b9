"""Time ingest + validate + clean: on the real census files, and on a generated own-data file.

Part 1, the real files: each run starts from an empty project (so ingest really copies and
checks the files) and times the three steps. The baseline, timed in the same runs, is a plain
`pandas.read_csv` of the same two files: the least any data step must do, so the ratio shows what
verification, schema checks and typed Parquet cost on top of it.

Part 2, own data at scale: `make_census_rows.py` writes `--rows` census-shaped rows (default one
million, resampled with a seed from the real rows) as the course's CSV; each run ingests it as a
user-supplied file (parsed and schema-checked at ingest), validates it (again, plus the training
profile and the shift from the baseline) and cleans it, in a child process whose peak resident
memory is recorded. The same-run baseline is `pandas.read_csv` of the same file in its own child.
Budgets: 20 s and 2 GB for the three steps.

    python benchmarks/bench_data.py [--source-dir PATH_TO_CENSUS_FILES] [--runs 7]
        [--rows 1000000] [--large-runs 3]

Without --source-dir: $CENSUS_DATA_DIR, else this project's raw folder (after `make pipeline`).
`--rows 0` skips part 2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import yaml
from census_files import census_folder

from census_pipeline.clean import clean
from census_pipeline.config import Params, load_params
from census_pipeline.ingest import SOURCE_DIR_ENV, ingest
from census_pipeline.validate import validate

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 10.0
LARGE_BUDGET_S = 20.0
LARGE_BUDGET_MB = 2048.0


def throwaway_project(root: Path) -> Params:
    """The repo's params.yaml copied under `root`, with the repo's baseline, so every output
    lands there and validate compares with the promoted profile as it would in the repo."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(root / "params.yaml")
    profile = load_params(REPO_ROOT / "params.yaml").paths.baseline_profile
    if profile.is_file():
        params.paths.baseline_profile.parent.mkdir(parents=True, exist_ok=True)
        params.paths.baseline_profile.write_bytes(profile.read_bytes())
    return params


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def read_census(path: Path) -> pd.DataFrame:
    """The baseline: pandas' reader on a course-layout file, no checks, no output."""
    return pd.read_csv(path, skipinitialspace=True, na_values=["?"])


def baseline(source: Path) -> None:
    """Just read both files into frames: no digest, no schema, no output."""
    read_census(source / "census.csv")
    pd.read_csv(source / "adult.test", skiprows=1, header=None, skipinitialspace=True)


def one_run(source: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        params = throwaway_project(Path(tmp))
        times = {
            "ingest": timed(lambda: ingest(params, source_dir=source)),
            "validate": timed(lambda: validate(params)),
            "clean": timed(lambda: clean(params)),
        }
    times["total"] = sum(times.values())
    times["baseline read_csv"] = timed(lambda: baseline(source))
    return times


def real_files(source: Path, runs: int) -> bool:
    one_run(source)  # warm-up: imports, page cache
    results = [one_run(source) for _ in range(runs)]
    medians = {step: statistics.median(run[step] for run in results) for step in results[0]}
    print(f"real files, data steps, median of {runs} runs (seconds):")
    for step, value in medians.items():
        print(f"  {step:<18} {value:6.3f}")
    ratio = medians["total"] / medians["baseline read_csv"]
    print(f"  total / baseline   {ratio:6.1f}x")
    within = medians["total"] < BUDGET_S
    print(f"  budget {BUDGET_S:.0f} s: {'met' if within else 'MISSED'}")
    return within


# --- part 2: a generated own-data file, each run in a child process --------------------------


def child_steps(folder: Path) -> dict[str, float]:
    """In the child: the three steps on `folder` (census.csv + adult.test) in a fresh project."""
    with tempfile.TemporaryDirectory(prefix="bench-data-large-") as tmp:
        params = throwaway_project(Path(tmp))
        times = {
            "ingest": timed(lambda: ingest(params, source_dir=folder)),
            "validate": timed(lambda: validate(params)),
            "clean": timed(lambda: clean(params)),
        }
    times["total"] = sum(times.values())
    return times


def child_baseline(folder: Path) -> dict[str, float]:
    return {"baseline read_csv": timed(lambda: read_census(folder / "census.csv"))}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def in_child(mode: str, folder: Path) -> dict[str, float]:
    """Run one measurement in a fresh interpreter; its own peak RSS comes back with the times."""
    command = [sys.executable, __file__, "--child", mode, str(folder)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def large_file(rows: int, runs: int, source: Path) -> bool:
    with tempfile.TemporaryDirectory(prefix="bench-data-rows-") as tmp:
        folder = Path(tmp)
        generator = REPO_ROOT / "benchmarks" / "make_census_rows.py"
        csv_path = folder / "census.csv"
        subprocess.run(
            [sys.executable, str(generator), "--rows", str(rows), "--csv", str(csv_path),
             "--source", str(source / "census.csv")],
            check=True, capture_output=True,
        )  # fmt: skip
        (folder / "adult.test").write_bytes((source / "adult.test").read_bytes())
        size_mb = (folder / "census.csv").stat().st_size / 1e6
        results = []
        for _ in range(runs):
            results.append({**in_child("steps", folder), **prefixed(in_child("baseline", folder))})
    medians = {key: statistics.median(run[key] for run in results) for key in results[0]}
    print(f"\ngenerated own data: {rows:,} rows ({size_mb:.0f} MB CSV), median of {runs} runs:")
    for step in ("ingest", "validate", "clean", "total", "baseline read_csv"):
        print(f"  {step:<18} {medians[step]:6.2f} s")
    print(
        f"  CPU time, 3 steps  {medians['cpu_s']:6.2f} s (baseline {medians['base_cpu_s']:.2f} s)"
    )
    peak = max(run["peak_mb"] for run in results)
    print(
        f"  peak memory        {peak:6.0f} MB (baseline read_csv {medians['base_peak_mb']:.0f} MB)"
    )
    print(f"  total / baseline   {medians['total'] / medians['baseline read_csv']:6.1f}x")
    within = medians["total"] < LARGE_BUDGET_S and peak < LARGE_BUDGET_MB
    budget = f"{LARGE_BUDGET_S:.0f} s and {LARGE_BUDGET_MB / 1024:.0f} GB"
    print(f"  budget {budget}: {'met' if within else 'MISSED'}")
    return within


def prefixed(baseline_result: dict[str, float]) -> dict[str, float]:
    return {
        "baseline read_csv": baseline_result["baseline read_csv"],
        "base_peak_mb": baseline_result["peak_mb"],
        "base_cpu_s": baseline_result["cpu_s"],
    }


def default_source() -> Path | None:
    if env := os.environ.get(SOURCE_DIR_ENV):
        return Path(env)
    raw = load_params(REPO_ROOT / "params.yaml").paths.raw_dir
    return raw if (raw / "census.csv").is_file() and (raw / "adult.test").is_file() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--large-runs", type=int, default=3)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, folder = args.child
        run = child_steps if mode == "steps" else child_baseline
        before = cpu_seconds()
        result = run(Path(folder))
        # CPU time (all threads) says what the work costs whatever else the cores are doing.
        result["cpu_s"] = cpu_seconds() - before
        result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0
    source = args.source_dir or default_source()
    if source is None:
        # Neither given nor beside the repository: fetched once through the download chain.
        scratch = tempfile.TemporaryDirectory(prefix="bench-data-files-")
        source = census_folder(None, Path(scratch.name))
    source = source.resolve()
    ok = real_files(source, args.runs)
    if args.rows > 0:
        ok = large_file(args.rows, args.large_runs, source) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
