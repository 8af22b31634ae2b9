"""Data shift: a JSON profile of a census table and the population stability index (PSI).

One module for every comparison of two populations: the data report compares a new training
table with the promoted baseline's, and live monitoring compares logged requests with the same
reference. Both need the same binning, or their numbers could not be read side by side, so the
rules live here once:

- A *profile* (`build_profile`) is plain JSON: the row count, the label share (when the table has
  labels), and per feature the share of rows in each bin. Numeric features are binned on the
  reference table's quantiles (`bins` quantiles, duplicates merged: `capital-gain` is mostly 0),
  with bins `(-inf, e1], (e1, e2], ..., (ek, inf)`; categorical features by category. Missing
  values get a share of their own (`missing_share`), so a feature that starts arriving empty
  shows up as shift instead of vanishing from the shares.
- A profile built with `reference=` reuses the reference's bin edges, so two profiles can be
  compared without the rows: that is how a monitor keeps only profiles, never the records.
- `psi` compares a profile with a table or with another profile built on the same edges:
  `sum((a - e) * ln(a / e))` over the bins, missing included. A bin that is empty on one side
  would make the logarithm infinite; both shares are floored at `EPSILON` (1e-4, i.e. one row in
  ten thousand) before the sum, a standard smoothing that bounds one empty bin's contribution
  to about `share * ln(share / 1e-4)`.

Reading PSI (the usual rule of thumb, `LEVELS`): below 0.1 stable, 0.1 to 0.25 a moderate shift
worth a look, above 0.25 a major shift. PSI is symmetric in the two populations.

Pure pandas and numpy; nothing here reads files or knows about the pipeline's paths.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import pandas as pd

from census_pipeline.schema import CATEGORICAL, LABEL, NUMERIC, POSITIVE_LABEL

PROFILE_VERSION: Final = 1
DEFAULT_BINS: Final = 10
# Floor for a bin's share before PSI's logarithm (see the module docstring).
EPSILON: Final = 1e-4
# (upper bound, level): the first bound a PSI is below names its level.
LEVELS: Final = ((0.1, "stable"), (0.25, "moderate"), (math.inf, "major"))
# The key a missing value's share is stored under when shares are listed as bins.
MISSING: Final = "(missing)"

Profile = dict[str, Any]


def build_profile(
    frame: pd.DataFrame,
    *,
    reference: Mapping[str, Any] | None = None,
    bins: int = DEFAULT_BINS,
    numeric: Sequence[str] = NUMERIC,
    categorical: Sequence[str] = CATEGORICAL,
    label: str | None = LABEL,
) -> Profile:
    """The JSON-serialisable profile of `frame` (see the module docstring for the format).

    With `reference`, numeric bins reuse its edges and only its features are profiled, so the
    result compares with it bin by bin. Without, edges come from `frame`'s own quantiles. A
    `label` column absent from `frame` (live requests have none) gives `label_share: null`.
    """
    if reference is not None:
        numeric = list(reference["numeric"])
        categorical = list(reference["categorical"])
    profile: Profile = {
        "version": PROFILE_VERSION,
        "rows": len(frame),
        "label_share": _label_share(frame, label),
        "numeric": {},
        "categorical": {},
    }
    for name in numeric:
        values = _numbers(frame[name])
        edges = reference["numeric"][name]["edges"] if reference else quantile_edges(values, bins)
        profile["numeric"][name] = _numeric_profile(values, edges)
    for name in categorical:
        profile["categorical"][name] = _categorical_profile(frame[name])
    return profile


def _numbers(column: pd.Series[Any]) -> np.ndarray[Any, Any]:
    """A column as float64, text that is not a number as NaN.

    Arrow-backed text is cast by Arrow itself (vectorised; pandas' own path goes through Python
    objects, seconds per million rows); anything else, or text that will not cast, through
    `pd.to_numeric`.
    """
    if isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow":
        import pyarrow as pa
        import pyarrow.compute as pc

        try:
            cast = pc.cast(pa.array(column), pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return np.asarray(cast.to_numpy(zero_copy_only=False), dtype="float64")
    return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)


def quantile_edges(values: np.ndarray[Any, Any], bins: int = DEFAULT_BINS) -> list[float]:
    """Interior cut points at the 1/bins ... (bins-1)/bins quantiles, duplicates merged."""
    present = values[~np.isnan(values)]
    if present.size == 0:
        return []
    cuts = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1])
    # The top cut must leave something above it, or the last bin is always empty.
    unique = sorted({float(c) for c in cuts if c < present.max()})
    return unique


def _numeric_profile(values: np.ndarray[Any, Any], edges: Sequence[float]) -> dict[str, Any]:
    missing = np.isnan(values)
    present = values[~missing]
    # side="left": bin i holds edges[i-1] < v <= edges[i], matching the quantile cuts.
    index = np.searchsorted(np.asarray(edges, dtype="float64"), present, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1)
    total = max(len(values), 1)
    return {
        "edges": [float(e) for e in edges],
        "shares": [float(c) / total for c in counts],
        "missing_share": float(missing.sum()) / total,
    }


def _categorical_profile(column: pd.Series[Any]) -> dict[str, Any]:
    # Counted in the column's own dtype (category, Arrow or Python strings): no conversion.
    total = max(len(column), 1)
    counts = column.value_counts(dropna=True)
    shares = {str(k): int(v) / total for k, v in counts.items() if int(v) > 0}
    return {
        "shares": dict(sorted(shares.items())),
        "missing_share": float(column.isna().sum()) / total,
    }


def _label_share(frame: pd.DataFrame, label: str | None) -> float | None:
    if label is None or label not in frame.columns or len(frame) == 0:
        return None
    return float((frame[label].astype("string") == POSITIVE_LABEL).mean())


def psi(expected: Sequence[float], actual: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index of two share vectors over the same bins (floored at epsilon)."""
    if len(expected) != len(actual):
        raise ValueError(f"PSI needs the same bins: {len(expected)} vs {len(actual)}")
    e = np.maximum(np.asarray(expected, dtype="float64"), epsilon)
    a = np.maximum(np.asarray(actual, dtype="float64"), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float) -> str:
    """`stable`, `moderate` or `major` for a PSI value (`LEVELS`)."""
    return next(name for bound, name in LEVELS if value < bound)


def feature_bins(
    reference: Mapping[str, Any], current: Mapping[str, Any], name: str
) -> tuple[list[str], list[float], list[float]]:
    """One feature's bin labels and the reference's and current shares, missing last.

    Categorical bins are the union of both sides' categories, so a category that is new (or gone)
    counts as shift. Numeric profiles must share their edges (build the current one with
    `reference=`); otherwise the comparison would be meaningless and a ValueError says so.
    """
    if name in reference["numeric"]:
        ref, cur = reference["numeric"][name], current["numeric"][name]
        if list(ref["edges"]) != list(cur["edges"]):
            raise ValueError(f"{name}: profiles have different bin edges; build with reference=")
        labels = _interval_labels(ref["edges"])
        return (
            [*labels, MISSING],
            [*ref["shares"], ref["missing_share"]],
            [*cur["shares"], cur["missing_share"]],
        )
    ref, cur = reference["categorical"][name], current["categorical"][name]
    categories = sorted(set(ref["shares"]) | set(cur["shares"]))
    return (
        [*categories, MISSING],
        [ref["shares"].get(c, 0.0) for c in categories] + [ref["missing_share"]],
        [cur["shares"].get(c, 0.0) for c in categories] + [cur["missing_share"]],
    )


def _interval_labels(edges: Sequence[float]) -> list[str]:
    bounds = ["-inf", *(f"{e:g}" for e in edges), "inf"]
    return [f"({low}, {high}]" for low, high in itertools.pairwise(bounds)]


def compare(reference: Mapping[str, Any], current: pd.DataFrame | Mapping[str, Any]) -> Profile:
    """Shift of `current` (a table, or a profile built on `reference`'s edges) from `reference`.

    Returns JSON: row counts, label shares (null when either side has no labels) and per feature
    `{"kind", "psi", "level"}`, plus `max_psi` and the feature it belongs to, so a report or an
    alert reads one number first.
    """
    if isinstance(current, pd.DataFrame):
        current = build_profile(current, reference=reference)
    features: dict[str, dict[str, Any]] = {}
    for kind in ("numeric", "categorical"):
        for name in reference[kind]:
            _, expected, actual = feature_bins(reference, current, name)
            value = psi(expected, actual)
            features[name] = {"kind": kind, "psi": value, "level": level(value)}
    worst = max(features, key=lambda n: features[n]["psi"], default=None)
    return {
        "rows": {"reference": reference["rows"], "current": current["rows"]},
        "label_share": {
            "reference": reference.get("label_share"),
            "current": current.get("label_share"),
        },
        "features": features,
        "max_psi": features[worst]["psi"] if worst else 0.0,
        "max_psi_feature": worst,
    }


def check_profile(payload: Any) -> Profile:
    """`payload` if it has a profile's shape (version, rows, both feature kinds), else ValueError.

    Profiles are read back from files a person could edit; a wrong shape must fail with a
    sentence, not a KeyError deep in a comparison.
    """
    if not isinstance(payload, dict) or payload.get("version") != PROFILE_VERSION:
        raise ValueError(f"not a version {PROFILE_VERSION} data profile")
    if not isinstance(payload.get("rows"), int):
        raise ValueError("profile lacks an integer 'rows'")
    for kind, keys in (("numeric", ("edges", "shares")), ("categorical", ("shares",))):
        section = payload.get(kind)
        if not isinstance(section, dict):
            raise ValueError(f"profile lacks its '{kind}' section")
        for name, entry in section.items():
            if not isinstance(entry, dict) or any(k not in entry for k in (*keys, "missing_share")):
                raise ValueError(f"profile's {kind} feature {name!r} lacks {keys}/missing_share")
    return payload


__all__ = [
    "DEFAULT_BINS",
    "EPSILON",
    "LEVELS",
    "MISSING",
    "PROFILE_VERSION",
    "Profile",
    "build_profile",
    "check_profile",
    "compare",
    "feature_bins",
    "level",
    "psi",
    "quantile_edges",
]
