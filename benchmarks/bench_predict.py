"""Time the Predictor's paths on real test-set records, against baselines in the same run.

- single record, fast path (`probability_one`: numpy row + LightGBM's C single-row call);
- single record through a one-row DataFrame (`predict_frame(pd.DataFrame([record]))`), the
  baseline the fast path must beat by 20x;
- single record through `Booster.predict` on an already encoded numpy row (what the fast path
  saves over the plain Python API, for context);
- batch throughput: `predict_frame` on the whole test table and `predict_many` on its records,
  one thread.

Each single-record figure is the median over every call of `--runs` passes over `--records`
records; throughput is the median of `--runs` passes.

    python benchmarks/bench_predict.py [--model-dir models] [--runs 7] [--records 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from census_pipeline.config import load_params
from census_pipeline.predict import Predictor
from census_pipeline.schema import FEATURES
from census_pipeline.train import read_clean_table

BARS = {"fast_median_ms": 0.2, "ratio": 20.0, "batch_rows_per_s": 20_000}


def per_call_ms(action: Callable[[Any], object], items: list[Any], runs: int) -> float:
    """Median latency of single calls, over every call of every run."""
    samples = []
    for _ in range(runs):
        for item in items:
            started = time.perf_counter_ns()
            action(item)
            samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1e6


def rows_per_s(action: Callable[[], object], rows: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return rows / statistics.median(times)


def as_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    features = frame[list(FEATURES)].astype(object)
    rows = features.where(features.notna(), None).to_dict("records")  # type: ignore[call-overload]
    return [{str(k): v for k, v in row.items()} for row in rows]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args(argv)
    params = load_params()
    predictor = Predictor.load(args.model_dir or params.paths.model_dir)
    test = read_clean_table(params.paths.clean_test)
    records = as_records(test.head(args.records))
    # The DataFrame path is ~100x slower: a tenth of the records keeps the run short.
    few = records[: max(50, args.records // 10)]
    encoded = predictor.encoder.encode_records(records)
    booster = predictor._booster

    for record in records[:200]:  # warm-up
        predictor.probability_one(record)
    fast = per_call_ms(predictor.probability_one, records, args.runs)
    frame = per_call_ms(lambda r: predictor.predict_frame(pd.DataFrame([r])), few, args.runs)
    rows = [encoded[i : i + 1] for i in range(len(few))]
    plain = per_call_ms(lambda row: booster.predict(row, num_threads=1), rows, args.runs)
    table_rate = rows_per_s(lambda: predictor.predict_frame(test), len(test), args.runs)
    all_records = as_records(test)
    many_rate = rows_per_s(lambda: predictor.predict_many(all_records), len(test), args.runs)

    print(f"model {predictor.metadata.model_version} ({predictor.metadata.num_trees} trees)")
    print(f"single record, median per call over {args.runs} passes:")
    print(f"  fast path (probability_one)          {fast:8.4f} ms")
    print(f"  one-row DataFrame (predict_frame)    {frame:8.4f} ms   {frame / fast:6.1f}x fast")
    print(f"  Booster.predict on an encoded row    {plain:8.4f} ms   {plain / fast:6.1f}x fast")
    print(f"batch, one thread, {len(test)} test rows, median of {args.runs}:")
    print(f"  predict_frame (table)                {table_rate:10,.0f} rows/s")
    print(f"  predict_many (list of dicts)         {many_rate:10,.0f} rows/s")
    met = (
        fast < BARS["fast_median_ms"]
        and frame / fast >= BARS["ratio"]
        and min(table_rate, many_rate) >= BARS["batch_rows_per_s"]
    )
    print(
        f"bars: median < {BARS['fast_median_ms']} ms, >= {BARS['ratio']:.0f}x the DataFrame path, "
        f">= {BARS['batch_rows_per_s']:,} rows/s: {'met' if met else 'MISSED'}"
    )
    np.testing.assert_array_equal(  # the paths agree on what they measured
        [predictor.probability_one(r) for r in few], predictor.predict_many(few).probabilities
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
