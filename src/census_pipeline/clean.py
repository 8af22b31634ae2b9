"""Clean step: the validated rows as typed tables, ready for training and evaluation.

Clean applies validate's verdict rather than judging again: it keeps the rows validate did not
quarantine, and refuses to run on a data report that describes other raw files. Categories carry
their full domain in `schema` order, so train and test (and the service) share one encoding.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import all_or_nothing, read_json, replace_all
from census_pipeline.raw import RawEntry, RawTable, read_manifest, read_raw, verified_raw_path
from census_pipeline.schema import CATEGORY_DOMAINS, COLUMNS, LABELS, NUMERIC_RANGES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanResult:
    train_path: Path
    test_path: Path
    train_rows: int
    test_rows: int
    quarantined_excluded: dict[str, int]
    train_duplicates_removed: int


def column_dtypes() -> dict[str, Any]:
    """The clean tables' dtypes: int64 numerics, categories over the full known domains."""
    dtypes: dict[str, Any] = {}
    for name in COLUMNS:
        if name in NUMERIC_RANGES:
            dtypes[name] = np.dtype("int64")
        elif name in CATEGORY_DOMAINS:
            dtypes[name] = pd.CategoricalDtype(list(CATEGORY_DOMAINS[name]))
        else:
            dtypes[name] = pd.CategoricalDtype(list(LABELS))
    return dtypes


def typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Validated text columns to their clean dtypes, in `schema.COLUMNS` order."""
    dtypes = column_dtypes()
    columns = {name: _as_dtype(frame[name], dtypes[name]) for name in COLUMNS}
    return pd.DataFrame(columns).reset_index(drop=True)


def _as_dtype(column: pd.Series[Any], dtype: Any) -> pd.Series[Any]:
    """One column to its clean dtype; Arrow-backed text is converted by Arrow itself.

    pandas' `astype` from Arrow strings goes through Python objects (seconds per million rows);
    Arrow casts the numbers and looks up each category's code directly. The result is the same
    column either way.
    """
    if not (isinstance(column.dtype, pd.StringDtype) and column.dtype.storage == "pyarrow"):
        return column.astype(dtype)
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pa.array(column)
    if isinstance(dtype, pd.CategoricalDtype):
        categories = pa.array([str(c) for c in dtype.categories], pa.large_string())
        codes = pc.fill_null(pc.index_in(values, value_set=categories), -1)
        codes_np = codes.to_numpy(zero_copy_only=False).astype(
            "int8" if len(categories) < 127 else "int16"
        )
        return pd.Series(
            pd.Categorical.from_codes(codes_np, dtype=dtype), index=column.index, name=column.name
        )
    numbers = pc.cast(values, pa.int64()).to_numpy(zero_copy_only=False)
    return pd.Series(numbers.astype(dtype), index=column.index, name=column.name)


def clean(params: Params) -> CleanResult:
    """Build both clean tables first, then write them, so a failure leaves no half output.

    On any failure both tables are removed: tables from an earlier run may no longer match the
    raw data, and a new train table beside an old test table would mislead evaluation.
    """
    paths = params.paths
    with all_or_nothing([paths.clean_train, paths.clean_test]):
        tables, excluded, removed = _clean_tables(params)
        replace_all(
            {
                paths.clean_train: _parquet(tables["train"]),
                paths.clean_test: _parquet(tables["test"]),
            }
        )
    log.info("clean: removed %d exact duplicate training rows", removed)
    return CleanResult(
        train_path=params.paths.clean_train,
        test_path=params.paths.clean_test,
        train_rows=len(tables["train"]),
        test_rows=len(tables["test"]),
        quarantined_excluded=excluded,
        train_duplicates_removed=removed,
    )


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def _clean_tables(params: Params) -> tuple[dict[str, pd.DataFrame], dict[str, int], int]:
    """Typed tables of the rows validate kept, the quarantined counts, the duplicates removed."""
    manifest = read_manifest(params)
    report = _current_report(params, manifest)
    tables: dict[str, pd.DataFrame] = {}
    excluded: dict[str, int] = {}
    for split, entry in manifest.items():
        raw = read_raw(verified_raw_path(params, entry), entry.layout, split)
        keep = _not_quarantined(params, split, raw)
        excluded[split] = int((~keep).sum())
        tables[split] = typed(raw.frame[keep])
    before = len(tables["train"])
    # Only training loses its duplicates: the official test set is scored as published.
    tables["train"] = tables["train"].drop_duplicates(ignore_index=True)
    removed = before - len(tables["train"])
    _check_against_report(report, removed, tables)
    return tables, excluded, removed


def _current_report(params: Params, manifest: dict[str, RawEntry]) -> dict[str, Any]:
    """The data report, refused unless it was made from exactly the raw files in the manifest."""
    path = params.paths.data_report
    if not path.is_file():
        raise PipelineError(f"{path}: not found (run `census-pipeline validate` first)")
    report: Any = read_json(path)
    splits = report.get("splits", {}) if isinstance(report, dict) else {}
    for split, entry in manifest.items():
        seen = splits.get(split, {}).get("sha256") if isinstance(splits.get(split), dict) else None
        if seen != entry.sha256:
            raise PipelineError(
                f"{path}: describes {split} sha256 {seen}, expected {entry.sha256} from the "
                "manifest (run `census-pipeline validate` again)"
            )
    return dict(report)


def _not_quarantined(params: Params, split: str, raw: RawTable) -> np.ndarray[Any, Any]:
    path = params.paths.quarantine(split)
    try:
        lines = pd.read_csv(path, usecols=["line"], dtype={"line": "int64"})["line"]
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `census-pipeline validate` first)") from exc
    except (ValueError, pd.errors.ParserError) as exc:
        raise PipelineError(
            f"{path}: expected a CSV with an integer 'line' column ({exc})"
        ) from exc
    return ~np.isin(raw.lines, lines.to_numpy())


def _check_against_report(
    report: dict[str, Any], removed: int, tables: dict[str, pd.DataFrame]
) -> None:
    """Clean must agree with what validate reported; a disagreement means a bug, not bad data."""
    expected = report["splits"]["train"].get("exact_duplicates")
    if expected != removed:
        raise PipelineError(
            f"data report counts {expected} duplicate training rows, clean found {removed}"
        )
    for split, table in tables.items():
        valid = report["splits"][split].get("valid_rows")
        rows = len(table) + (removed if split == "train" else 0)
        if valid != rows:
            raise PipelineError(f"data report counts {valid} valid {split} rows, clean kept {rows}")


__all__ = ["CleanResult", "clean", "column_dtypes", "typed"]
