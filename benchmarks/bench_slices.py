"""Time the slice evaluation with bootstrap intervals on the real test predictions.

Measured, each the median of `--runs` runs on the same inputs (every categorical feature and
value plus the configured crossings, as `evaluate` computes them):

- `slice_metrics` with `--resamples` bootstrap resamples (default 1000, the params default);
- baseline: the same slices' confusion counts and point metrics without intervals;
- reference: a textbook row bootstrap (a Python loop over resamples, each resampling every
  slice's rows by index), timed on `--naive-resamples` resamples and scaled to `--resamples`.

    python benchmarks/bench_slices.py [--runs 5] [--resamples 1000] [--naive-resamples 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.config import load_params
from census_pipeline.metrics import rates
from census_pipeline.predict import Predictor
from census_pipeline.schema import CATEGORICAL
from census_pipeline.slices import SliceSettings, _codes, slice_counts, slice_metrics
from census_pipeline.train import labels_of, read_clean_table

BUDGET_S = 10.0


def median_seconds(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def row_bootstrap(
    frame: pd.DataFrame,
    label: NDArray[np.int64],
    prediction: NDArray[np.int64],
    groupings: Sequence[Sequence[str]],
    resamples: int,
) -> None:
    """What the multinomial draw replaces: resample each slice's rows, recount, per resample."""
    rng = np.random.default_rng(0)
    slices = []
    for features in groupings:
        codes, names = _codes(frame, features)
        slices += [np.flatnonzero(codes == i) for i in range(len(names))]
    slices = [rows for rows in slices if rows.size]
    for _ in range(resamples):
        for rows in slices:
            drawn = rows[rng.integers(0, rows.size, rows.size)]
            y, p = label[drawn], prediction[drawn]
            tp = np.sum(y & p)
            fp = np.sum(p) - tp
            fn = np.sum(y) - tp
            rates(y.size - tp - fp - fn, fp, fn, tp)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--naive-resamples", type=int, default=20)
    args = parser.parse_args(argv)
    params = load_params()
    test = read_clean_table(params.paths.clean_test)
    predictor = Predictor.load(params.paths.model_dir)
    label = labels_of(test)
    prediction = predictor.predict_frame(test).positive.astype(np.int64)
    groupings = [(f,) for f in CATEGORICAL] + [tuple(c) for c in params.evaluate.crossings]
    settings = SliceSettings(
        args.resamples, params.evaluate.min_slice_size, params.evaluate.confidence, params.seed
    )

    def counts_only() -> None:
        for features in groupings:
            table = slice_counts(test, label, prediction, features)
            rates(table["tn"], table["fp"], table["fn"], table["tp"])

    n_slices = len(slice_metrics(test, label, prediction, groupings, settings))
    full = median_seconds(
        lambda: slice_metrics(test, label, prediction, groupings, settings), args.runs
    )
    base = median_seconds(counts_only, args.runs)
    naive = median_seconds(
        lambda: row_bootstrap(test, label, prediction, groupings, args.naive_resamples), 1
    ) * (args.resamples / args.naive_resamples)

    print(f"slices of {len(test)} test rows: {n_slices} slices, {args.resamples} resamples")
    print(f"  slice_metrics with intervals (median of {args.runs})  {full:8.3f} s")
    print(f"  baseline: counts and point metrics only        {base:8.3f} s  ({full / base:.1f}x)")
    scaled = f"scaled from {args.naive_resamples}"
    print(f"  reference: row bootstrap loop, {scaled:<16} {naive:8.3f} s  ({naive / full:.0f}x)")
    within = full < BUDGET_S
    print(f"  budget {BUDGET_S:.0f} s: {'met' if within else 'MISSED'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
