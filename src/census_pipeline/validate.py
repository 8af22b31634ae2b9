"""Validate step: judge every raw row against the census schema before anything learns from it.

Rows that break a rule are not dropped silently: they go to a quarantine file with the reason,
and the step fails when they exceed `data.max_quarantine_share`, because at that point the file is
more likely wrong than a few of its rows. The data report describes what clean will keep.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
import pandera.pandas as pa

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import atomic_path, write_json_atomic
from census_pipeline.raw import (
    SPLITS,
    RawEntry,
    RawTable,
    read_manifest,
    read_raw,
    verified_raw_path,
)
from census_pipeline.schema import (
    CATEGORY_DOMAINS,
    COLUMNS,
    LABEL,
    LABELS,
    NULLABLE,
    NUMERIC_RANGES,
)

log = logging.getLogger(__name__)

TEXT = "string"  # raw.read_raw's column dtype: every value is still text here

# Rule names as they appear in quarantine reasons, after the column and the offending value.
INTEGER_RULE = "not an integer"
MISSING_RULE = "missing value"
UNKNOWN_RULE = "not a known value"


@dataclass(frozen=True)
class SplitCheck:
    """One split after validation: its table and the schema failures, one row per broken rule."""

    entry: RawEntry
    table: RawTable
    failures: pd.DataFrame  # columns: row (frame index), column, rule, reason

    @cached_property
    def reasons(self) -> pd.Series[str]:
        """One reason per quarantined row, e.g. `age: 'forty' not an integer; salary: ...`."""
        grouped = self.failures.groupby("row", sort=True)["reason"]
        return grouped.agg("; ".join)

    @cached_property
    def valid(self) -> pd.DataFrame:
        return self.table.frame.drop(index=pd.Index(self.failures["row"].unique()))


@dataclass(frozen=True)
class ValidationReport:
    """What validate found, as written to the data report."""

    path: Path
    splits: dict[str, dict[str, Any]]


def census_schema() -> pa.DataFrameSchema:
    """The pandera schema of a parsed raw file, derived from `census_pipeline.schema`.

    Columns are still text here: an integer check comes before the range check so a word in a
    numeric column is reported as such instead of failing the whole column's coercion.
    """
    columns: dict[str, pa.Column] = {}
    for name in COLUMNS:
        if name in NUMERIC_RANGES:
            checks = [_integer_check(), _range_check(*NUMERIC_RANGES[name])]
            columns[name] = pa.Column(TEXT, checks)
        elif name in CATEGORY_DOMAINS:
            domain = CATEGORY_DOMAINS[name]
            columns[name] = pa.Column(
                TEXT, pa.Check.isin(domain, error=UNKNOWN_RULE), nullable=name in NULLABLE
            )
        else:
            rule = f"{UNKNOWN_RULE} (expected {' or '.join(LABELS)})"
            columns[name] = pa.Column(TEXT, pa.Check.isin(LABELS, error=rule))
    return pa.DataFrameSchema(columns, strict=True, ordered=True, name="census")


def _integer_check() -> pa.Check:
    def whole_number(values: pd.Series[str]) -> pd.Series[bool]:
        # fullmatch: pandera's str_matches anchors only the start, letting "40abc" through.
        return values.str.fullmatch(r"[+-]?[0-9]+").fillna(False).astype(bool)

    return pa.Check(whole_number, error=INTEGER_RULE)


def _range_check(low: int, high: int) -> pa.Check:
    def within_bounds(values: pd.Series[str]) -> pd.Series[bool]:
        # Text that is not an integer is the integer check's business, not this one's.
        numbers = pd.to_numeric(values, errors="coerce")
        return numbers.between(low, high) | numbers.isna()

    return pa.Check(within_bounds, error=f"outside {low}..{high}")


def check_split(params: Params, split: str, entry: RawEntry) -> SplitCheck:
    """Parse one raw file and find the rows the schema refuses, and why."""
    path = verified_raw_path(params, entry)
    table = read_raw(path, entry.layout, split)
    try:
        census_schema().validate(table.frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return SplitCheck(entry, table, _failures(exc.failure_cases, path))
    return SplitCheck(entry, table, _failures(pd.DataFrame(columns=_FAILURE_COLUMNS), path))


_FAILURE_COLUMNS = ["index", "column", "check", "failure_case"]


def _failures(cases: pd.DataFrame, path: Path) -> pd.DataFrame:
    """pandera's failure cases reduced to what a reader of the quarantine file needs."""
    table_level = cases[cases["index"].isna()]
    if not table_level.empty:
        # Column presence and order are settled by raw.read_raw; this guards against a bug.
        first = table_level.iloc[0]
        raise PipelineError(f"{path}: column {first['column']}: {first['check']}")
    column = cases["column"].astype(str)
    rule = cases["check"].astype(str).where(cases["check"] != "not_nullable", MISSING_RULE)
    value = cases["failure_case"].map(lambda v: "" if pd.isna(v) else f"{v!r} ")
    return pd.DataFrame(
        {
            "row": cases["index"].astype("int64"),
            "column": column,
            "rule": rule,
            "reason": column + ": " + value.astype(str) + rule,
        }
    )


def validate(params: Params) -> ValidationReport:
    """Validate both splits; write quarantine files and the data report, or fail clearly."""
    report_path = params.paths.data_report
    quarantines = [params.paths.quarantine(split) for split in SPLITS]
    try:
        checks = {
            split: check_split(params, split, entry)
            for split, entry in read_manifest(params).items()
        }
    except PipelineError:
        # Outputs of an earlier run would describe files that are no longer the raw data.
        _remove(report_path, *quarantines)
        raise
    for split, check in checks.items():
        _write_quarantine(params.paths.quarantine(split), check)
    try:
        for split, check in checks.items():
            _enforce_share(params.data.max_quarantine_share, check, params.paths.quarantine(split))
    except PipelineError:
        # The quarantine files stay as the diagnosis; without a report, clean will not proceed.
        _remove(report_path)
        raise
    splits = {split: _split_summary(params, split, check) for split, check in checks.items()}
    payload = {"max_quarantine_share": params.data.max_quarantine_share, "splits": splits}
    write_json_atomic(report_path, payload)
    for split, summary in splits.items():
        log.info("%s: %d rows, %d quarantined", split, summary["rows"], summary["quarantined_rows"])
    return ValidationReport(path=report_path, splits=splits)


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _write_quarantine(path: Path, check: SplitCheck) -> None:
    """Always written, header-only when nothing is quarantined, so its absence never misleads."""
    rows = check.table.frame.loc[check.reasons.index]
    lines = pd.Series(check.table.lines, index=check.table.frame.index).loc[check.reasons.index]
    frame = pd.concat([lines.rename("line"), check.reasons.rename("reason"), rows], axis=1)
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False)


def _enforce_share(limit: float, check: SplitCheck, quarantine: Path) -> None:
    total = len(check.table.frame)
    bad = len(check.reasons)
    if bad / total <= limit:
        return
    first_line = int(check.table.lines[check.reasons.index[0]])
    raise PipelineError(
        f"{check.table.path}: line {first_line}: {check.reasons.iloc[0]} "
        f"({bad} of {total} rows fail the schema, {bad / total:.2%} > "
        f"data.max_quarantine_share {limit:.2%}; all listed in {quarantine})"
    )


def _split_summary(params: Params, split: str, check: SplitCheck) -> dict[str, Any]:
    valid = check.valid
    rows = len(check.table.frame)
    labels = valid[LABEL].value_counts()
    failing = check.failures.drop_duplicates(["row", "column", "rule"])
    reasons = Counter(failing["column"] + ": " + failing["rule"])
    return {
        **check.entry.to_json(),
        "rows": rows,
        "valid_rows": len(valid),
        "quarantined_rows": rows - len(valid),
        "quarantined_share": (rows - len(valid)) / rows,
        "quarantine_reasons": dict(sorted(reasons.items())),
        "quarantine_file": params.paths.quarantine(split).name,
        "missing": {name: int(valid[name].isna().sum()) for name in COLUMNS},
        "exact_duplicates": int(valid.duplicated().sum()),
        "labels": {
            label: {
                "rows": int(labels.get(label, 0)),
                "share": float(labels.get(label, 0)) / max(len(valid), 1),
            }
            for label in LABELS
        },
    }
