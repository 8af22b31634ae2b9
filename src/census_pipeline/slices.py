"""Model performance on every slice of the test set, with bootstrap confidence intervals.

A slice is one value of a categorical feature ("sex = Female"), a missing value of a nullable
feature ("occupation = missing"), or one cell of a configured crossing ("race x sex =
Black x Female"). All the metrics here depend only on a slice's confusion counts, and resampling
a slice's n rows with replacement gives counts drawn from Multinomial(n, observed cell shares).
So the bootstrap draws counts directly, for every slice and resample in one numpy call, instead
of resampling rows in a Python loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.metrics import rates
from census_pipeline.schema import CROSS

SLICE_METRICS = ("precision", "recall", "f1", "fpr", "fnr")
MISSING = "missing"


@dataclass(frozen=True)
class SliceSettings:
    resamples: int
    min_size: int
    confidence: float
    seed: int


def _cells(label: NDArray[np.int64], prediction: NDArray[np.int64]) -> NDArray[np.int64]:
    """Confusion cell of each row: 0 = tn, 1 = fp, 2 = fn, 3 = tp."""
    return 2 * label + prediction


def _codes(frame: pd.DataFrame, features: Sequence[str]) -> tuple[NDArray[np.int64], list[str]]:
    """One integer per row for the (crossed) value of `features`, and each integer's name."""
    combined = np.zeros(len(frame), dtype=np.int64)
    names = [""]
    for feature in features:
        column = frame[feature]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype("category")
        values = [str(v) for v in column.cat.categories] + [MISSING]
        codes = column.cat.codes.to_numpy().astype(np.int64)
        codes[codes < 0] = len(values) - 1
        combined = combined * len(values) + codes
        names = [f"{a}{CROSS}{b}" if a else b for a in names for b in values]
    return combined, names


def slice_counts(
    frame: pd.DataFrame,
    label: NDArray[np.int64],
    prediction: NDArray[np.int64],
    features: Sequence[str],
) -> pd.DataFrame:
    """Confusion counts per non-empty value of `features` (one feature or a crossing)."""
    codes, names = _codes(frame, features)
    counts = np.bincount(codes * 4 + _cells(label, prediction), minlength=4 * len(names))
    counts = counts.reshape(len(names), 4)
    present = np.flatnonzero(counts.sum(axis=1))
    table = pd.DataFrame(counts[present], columns=["tn", "fp", "fn", "tp"])
    table.insert(0, "value", [names[i] for i in present])
    table.insert(0, "feature", CROSS.join(features))
    return table


def bootstrap_intervals(
    counts: NDArray[np.int64], settings: SliceSettings, metrics: Sequence[str] = SLICE_METRICS
) -> dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Percentile intervals of each of `metrics` (names from `metrics.rates`) for every slice
    (rows of tn, fp, fn, tp counts)."""
    rng = np.random.default_rng(settings.seed)
    n = counts.sum(axis=1)
    draws = rng.multinomial(n, counts / n[:, None], size=(settings.resamples, len(n)))
    resampled = rates(draws[..., 0], draws[..., 1], draws[..., 2], draws[..., 3])
    tail = 100 * (1 - settings.confidence) / 2
    intervals = {}
    with warnings.catch_warnings():
        # A metric undefined in every resample (e.g. recall of a slice with no positives).
        warnings.simplefilter("ignore", RuntimeWarning)
        for metric in metrics:
            low, high = np.nanpercentile(resampled[metric], [tail, 100 - tail], axis=0)
            intervals[metric] = (low, high)
    return intervals


def slice_metrics(
    frame: pd.DataFrame,
    label: NDArray[np.int64],
    prediction: NDArray[np.int64],
    groupings: Sequence[Sequence[str]],
    settings: SliceSettings,
) -> pd.DataFrame:
    """One row per slice: size, positives, small flag, and each metric with its interval.

    A metric whose denominator is zero in the slice is NaN, and so is its interval.
    """
    table = pd.concat(
        [slice_counts(frame, label, prediction, features) for features in groupings],
        ignore_index=True,
    )
    counts = table[["tn", "fp", "fn", "tp"]].to_numpy(dtype=np.int64)
    point = rates(counts[:, 0], counts[:, 1], counts[:, 2], counts[:, 3])
    intervals = bootstrap_intervals(counts, settings)
    table.insert(2, "n", counts.sum(axis=1))
    table.insert(3, "positives", counts[:, 2] + counts[:, 3])
    table.insert(4, "small", table["n"] < settings.min_size)
    for metric in SLICE_METRICS:
        defined = ~np.isnan(point[metric])
        low, high = intervals[metric]
        table[metric] = point[metric]
        table[f"{metric}_ci_low"] = np.where(defined, low, np.nan)
        table[f"{metric}_ci_high"] = np.where(defined, high, np.nan)
    return table[
        [c for c in table.columns if c not in ("tn", "fp", "fn", "tp")] + ["tn", "fp", "fn", "tp"]
    ]


def _interval(row: pd.Series, metric: str) -> str:
    value = row[metric]
    if np.isnan(value):
        return f"{'n/a':<22}"
    return f"{value:.3f} [{row[f'{metric}_ci_low']:.3f}, {row[f'{metric}_ci_high']:.3f}]".ljust(22)


def render_slice_output(
    table: pd.DataFrame, heading: Sequence[str], settings: SliceSettings
) -> str:
    """The course's human-readable slice report, grouped by feature."""
    level = round(100 * settings.confidence)
    lines = [
        *heading,
        f"Each metric: value [{level}% bootstrap interval, {settings.resamples} resamples, "
        f"seed {settings.seed}]; n/a = undefined (no rows in the denominator).",
        f"* = fewer than {settings.min_size} rows: read its numbers with care.",
    ]
    header = f"{'value':<32} {'n':>6} {'pos':>5}  " + "".join(f"{m:<22} " for m in SLICE_METRICS)
    for feature, group in table.groupby("feature", sort=False):
        lines += ["", f"== {feature} ==", header.rstrip()]
        for _, row in group.iterrows():
            name = f"{row['value']}{' *' if row['small'] else ''}"
            cells = " ".join(_interval(row, m) for m in SLICE_METRICS)
            lines.append(f"{name:<32} {row['n']:>6} {row['positives']:>5}  {cells}".rstrip())
    return "\n".join(lines) + "\n"
