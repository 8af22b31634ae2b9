"""The census schema applied to a pandas partition, vectorised: which rows may be scored, and why
the others may not.

The rules are `census_pipeline.schema`'s (the ones the service's request model and the validate
step derive from): numbers are whole and inside `NUMERIC_RANGES`, categories belong to
`CATEGORY_DOMAINS`, only `NULLABLE` fields may be missing. Reasons read like the validate step's
quarantine (`age: '400' outside 17..100`). Only the model's features are checked; any other
column (the label, an id) is carried through untouched.

Numbers may arrive typed (Parquet, or a CSV block pandas parsed as integers) or as text (a CSV
column holding a word): text must be an integer literal, as in the validate step, so `40.0` or
`4e1` are refused rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.errors import PipelineError
from census_pipeline.schema import CATEGORY_DOMAINS, FEATURES, NULLABLE, NUMERIC_RANGES

INTEGER_RULE = "not an integer"
MISSING_RULE = "missing value"
UNKNOWN_RULE = "not a known value"
_INTEGER_TEXT = r"[+-]?[0-9]+"

# Categories of the scored output: the schema's domains, so every part has the same Parquet type.
DOMAIN_DTYPES = {
    name: pd.CategoricalDtype(list(CATEGORY_DOMAINS[name])) for name in CATEGORY_DOMAINS
}


@dataclass(frozen=True)
class CheckedRows:
    """A partition split by the schema.

    `valid` holds the rows that may be scored, features typed (int64 numbers, categories over
    the schema's domain); `invalid_positions` are the 0-based positions of the others in the
    partition, `reasons` one text per invalid row.
    """

    valid: pd.DataFrame
    invalid_positions: NDArray[np.int64]
    reasons: list[str]


@dataclass(frozen=True)
class _ColumnCheck:
    typed: pd.Series[Any]
    bad: NDArray[np.bool_]
    reasons: NDArray[np.object_]  # meaningful where `bad`


def normalise_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Accept the underscore spellings the service accepts (`education_num`), answer hyphenated."""
    renames = {
        name: name.replace("_", "-")
        for name in frame.columns
        if isinstance(name, str) and name.replace("_", "-") in FEATURES and name not in FEATURES
    }
    return frame.rename(columns=renames) if renames else frame


def missing_features(columns: list[str]) -> list[str]:
    return [name for name in FEATURES if name not in columns]


def check_rows(frame: pd.DataFrame) -> CheckedRows:
    """Check every feature of every row; a problem with a whole column raises `PipelineError`."""
    n = len(frame)
    checks = {name: _check_column(name, frame[name]) for name in FEATURES}
    bad = np.zeros(n, dtype=bool)
    for check in checks.values():
        bad |= check.bad
    positions = np.flatnonzero(bad)
    reasons = ["; ".join(str(c.reasons[i]) for c in checks.values() if c.bad[i]) for i in positions]
    # Built column by column without copying (copy=False): a piece is large, the check cheap.
    columns = {name: checks[name].typed if name in checks else frame[name] for name in frame}
    valid = pd.DataFrame(columns, copy=False)
    if positions.size:
        valid = valid.loc[~bad].reset_index(drop=True)
    return CheckedRows(valid, positions.astype(np.int64), reasons)


def _check_column(name: str, column: pd.Series[Any]) -> _ColumnCheck:
    if name in NUMERIC_RANGES:
        return _check_number(name, column, *NUMERIC_RANGES[name])
    return _check_category(name, column)


def _check_number(name: str, column: pd.Series[Any], low: int, high: int) -> _ColumnCheck:
    dtype = column.dtype
    if pd.api.types.is_bool_dtype(dtype):
        raise PipelineError(f"column '{name}': expected integers, got dtype {dtype}")
    if pd.api.types.is_integer_dtype(dtype):
        missing = column.isna().to_numpy()
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        not_whole = np.zeros(len(column), dtype=bool)
    elif pd.api.types.is_float_dtype(dtype):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = np.isnan(values)
        not_whole = ~missing & ~(np.isfinite(values) & (values == np.floor(values)))
    else:
        return _check_number_text(name, column, low, high)
    return _number_result(name, column, values, missing, not_whole, low, high)


def _check_number_text(name: str, column: pd.Series[Any], low: int, high: int) -> _ColumnCheck:
    """Text numbers: an integer literal or nothing (the validate step's rule)."""
    text = column.astype("string")
    missing = text.isna().to_numpy()
    whole = text.str.fullmatch(_INTEGER_TEXT).fillna(False).to_numpy(dtype=bool)
    not_whole = ~missing & ~whole
    values = pd.to_numeric(text.where(whole), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    return _number_result(name, text, values, missing, not_whole, low, high)


def _number_result(
    name: str,
    shown: pd.Series[Any],
    values: NDArray[np.float64],
    missing: NDArray[np.bool_],
    not_whole: NDArray[np.bool_],
    low: int,
    high: int,
) -> _ColumnCheck:
    checked = ~missing & ~not_whole
    outside = checked & ((values < low) | (values > high))
    reasons = np.empty(len(values), dtype=object)
    _explain(reasons, missing, name, None, MISSING_RULE)
    _explain(reasons, not_whole, name, shown, INTEGER_RULE)
    # A whole number is shown as one (400), however it was stored, so reasons do not depend on
    # whether its piece happened to be read as text.
    whole = pd.Series(np.where(checked, np.nan_to_num(values), 0).astype(np.int64))
    _explain(reasons, outside, name, whole, f"outside {low}..{high}")
    bad = missing | not_whole | outside
    typed = np.where(bad, 0, whole.to_numpy())
    return _ColumnCheck(pd.Series(typed, index=shown.index, name=name), bad, reasons)


def _check_category(name: str, column: pd.Series[Any]) -> _ColumnCheck:
    domain = CATEGORY_DOMAINS[name]
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Judge each distinct category once, then spread the verdict through the codes.
        codes = column.cat.codes.to_numpy()
        known = np.asarray(column.cat.categories.isin(domain), dtype=bool)
        missing = codes < 0
        unknown = ~missing & ~known[np.maximum(codes, 0)]
    else:
        missing = column.isna().to_numpy()
        unknown = ~missing & ~column.isin(domain).to_numpy()
    refused_missing = missing if name not in NULLABLE else np.zeros(len(column), dtype=bool)
    reasons = np.empty(len(column), dtype=object)
    _explain(reasons, refused_missing, name, None, MISSING_RULE)
    _explain(reasons, unknown, name, column, UNKNOWN_RULE)
    typed = _as_domain(column, DOMAIN_DTYPES[name])
    return _ColumnCheck(typed, refused_missing | unknown, reasons)


def _as_domain(column: pd.Series[Any], dtype: pd.CategoricalDtype) -> pd.Series[Any]:
    """The column over the domain's categories (values outside it become NaN; their rows are
    quarantined, so nothing scored changes)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.set_categories(dtype.categories)
    return column.astype(object).astype(dtype)


def _explain(
    reasons: NDArray[np.object_],
    mask: NDArray[np.bool_],
    name: str,
    shown: pd.Series[Any] | None,
    rule: str,
) -> None:
    """Write `column: value rule` at the masked rows (only those rows are formatted)."""
    where = np.flatnonzero(mask)
    if not where.size:
        return
    if shown is None:
        reasons[where] = f"{name}: {rule}"
        return
    values = shown.iloc[where].tolist()
    reasons[where] = [f"{name}: {value!r} {rule}" for value in values]
