"""Time ingest + validate + clean of the real census files in a throwaway project.

Each run starts from an empty project (so ingest really copies and verifies the files) and
times the three steps. The baseline, timed in the same runs, is a plain `pandas.read_csv` of
the same two files: the least any data step must do, so the ratio shows what verification,
schema checks and typed Parquet cost on top of it.

    python benchmarks/bench_data.py --source-dir PATH_TO_CENSUS_FILES [--runs 7]
"""

from __future__ import annotations

import argparse
import statistics
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
from census_pipeline.ingest import ingest
from census_pipeline.validate import validate

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 10.0


def throwaway_project(root: Path) -> Params:
    """The repo's params.yaml copied under `root`, so every output lands there."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_params(root / "params.yaml")


def timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def baseline(source: Path) -> None:
    """Just read both files into frames: no digest, no schema, no output."""
    for name, skip in (("census.csv", 0), ("adult.test", 1)):
        pd.read_csv(source / name, skiprows=skip, header=None if skip else 0, skipinitialspace=True)


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    # --source-dir, else $CENSUS_DATA_DIR, else fetched once through the download chain.
    scratch = tempfile.TemporaryDirectory(prefix="bench-data-files-")
    source = census_folder(args.source_dir, Path(scratch.name))
    one_run(source)  # warm-up: imports, page cache
    runs = [one_run(source) for _ in range(args.runs)]
    medians = {step: statistics.median(run[step] for run in runs) for step in runs[0]}
    print(f"data steps, median of {args.runs} runs (seconds):")
    for step, value in medians.items():
        print(f"  {step:<18} {value:6.3f}")
    ratio = medians["total"] / medians["baseline read_csv"]
    print(f"  total / baseline   {ratio:6.1f}x")
    within = medians["total"] < BUDGET_S
    print(f"  budget {BUDGET_S:.0f} s: {'met' if within else 'MISSED'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
