"""Two-sample tests that work from aggregates, so the monitor never needs a reference's rows.

The reference keeps, per numeric feature, its empirical CDF (at most `MAX_ECDF_POINTS` points);
the live side arrives as value counts from the database (`GROUP BY`). The Kolmogorov-Smirnov
statistic is the largest gap between the two step functions, evaluated at every jump of either;
its p-value is the asymptotic Kolmogorov distribution at sqrt(n m / (n + m)) D. On integer
features ties make the test conservative (p-values too large), which suits an alarm. Categories
are compared with a chi-square test of homogeneity on the 2 x k table of counts (reference counts
rebuilt from its shares and size), so the reference's own sampling noise is accounted for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

MAX_ECDF_POINTS = 1000


@dataclass(frozen=True)
class TestResult:
    name: str  # "ks" or "chi2"
    statistic: float
    p_value: float

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.name, "statistic": self.statistic, "p_value": self.p_value}


def ecdf(values: ArrayLike, max_points: int = MAX_ECDF_POINTS) -> dict[str, list[float]]:
    """The empirical CDF of the present (non-NaN) values: points `x` and `cdf` = P(X <= x).

    With more distinct values than `max_points`, the CDF is kept at evenly spaced quantiles
    (a close approximation: each point moves D by at most 1 / max_points).
    """
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    if array.size == 0:
        return {"x": [], "cdf": []}
    x, counts = np.unique(array, return_counts=True)
    if x.size > max_points:
        levels = np.linspace(0, 1, max_points + 1)[1:]
        return {"x": np.quantile(array, levels).tolist(), "cdf": levels.tolist()}
    return {"x": x.tolist(), "cdf": (np.cumsum(counts) / array.size).tolist()}


def _step(x: NDArray[np.float64], cdf: NDArray[np.float64], at: NDArray[np.float64]) -> Any:
    index = np.searchsorted(x, at, side="right") - 1
    return np.where(index >= 0, cdf[np.maximum(index, 0)], 0.0)


def ks_test(
    reference: Mapping[str, list[float]], reference_n: int, values: ArrayLike, counts: ArrayLike
) -> TestResult:
    """KS of a reference ECDF (from `ecdf`) against live `values` seen `counts` times."""
    from scipy.special import kolmogorov

    ref_x = np.asarray(reference["x"], dtype=np.float64)
    ref_cdf = np.asarray(reference["cdf"], dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(counts, dtype=np.float64)
    order = np.argsort(v)
    v, w = v[order], w[order]
    m = float(w.sum())
    if m == 0 or ref_x.size == 0:
        return TestResult("ks", math.nan, math.nan)
    live_cdf = np.cumsum(w) / m
    points = np.union1d(ref_x, v)
    gap = float(np.max(np.abs(_step(ref_x, ref_cdf, points) - _step(v, live_cdf, points))))
    effective = reference_n * m / (reference_n + m)
    return TestResult("ks", gap, float(kolmogorov(math.sqrt(effective) * gap)))


def chi_square_test(
    reference_shares: Mapping[str, float], reference_n: int, live_counts: Mapping[str, int]
) -> TestResult:
    """Chi-square homogeneity of the categories present on either side (missing excluded)."""
    from scipy.stats import chi2_contingency

    categories = sorted(set(reference_shares) | set(live_counts))
    table = np.array(
        [
            [reference_shares.get(c, 0.0) * reference_n for c in categories],
            [float(live_counts.get(c, 0)) for c in categories],
        ]
    )
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or table[1].sum() == 0:
        return TestResult("chi2", math.nan, math.nan)
    statistic, p_value, _, _ = chi2_contingency(table, correction=False)
    return TestResult("chi2", float(statistic), float(p_value))
