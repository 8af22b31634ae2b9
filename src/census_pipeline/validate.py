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
from census_pipeline.drift import build_profile, check_profile, compare
from census_pipeline.errors import PipelineError
from census_pipeline.files import atomic_path, json_bytes, read_json, replace_all
from census_pipeline.raw import (
    SPLITS,
    TEXT_DTYPE,
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

TEXT = TEXT_DTYPE  # raw's column dtype: every value is still text here

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
        return row_reasons(self.failures)

    @cached_property
    def valid(self) -> pd.DataFrame:
        if self.failures.empty:
            return self.table.frame  # no copy of a million rows to drop nothing
        return self.table.frame.drop(index=pd.Index(self.failures["row"].unique()))


@dataclass(frozen=True)
class ValidationReport:
    """What validate found, as written to the data report."""

    path: Path
    splits: dict[str, dict[str, Any]]
    shift: dict[str, Any]


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
        numbers = as_integers(values)
        return numbers.between(low, high) | numbers.isna()

    return pa.Check(within_bounds, error=f"outside {low}..{high}")


def as_integers(values: pd.Series[str]) -> pd.Series[float]:
    """Whole numbers as numbers, anything else (text, decimals, missing) as NaN.

    Through Arrow's own cast, which is vectorised, instead of `pd.to_numeric` over Python
    strings: the range checks run on every numeric column of files with millions of rows.
    """
    whole = values.str.fullmatch(r"[+-]?[0-9]{1,15}").fillna(False).astype(bool)
    numbers = values.where(whole).astype("Int64")
    return numbers.astype("float64")


def check_split(params: Params, split: str, entry: RawEntry) -> SplitCheck:
    """Parse one raw file and find the rows the schema refuses, and why."""
    path = verified_raw_path(params, entry)
    table = read_raw(path, entry.layout, split)
    return SplitCheck(entry, table, schema_failures(table))


def schema_failures(table: RawTable) -> pd.DataFrame:
    """One row per broken rule (columns: row, column, rule, reason); empty when all rows pass."""
    try:
        census_schema().validate(table.frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        return _failures(exc.failure_cases, table.path)
    return _failures(pd.DataFrame(columns=_FAILURE_COLUMNS), table.path)


def row_reasons(failures: pd.DataFrame) -> pd.Series[str]:
    """One reason per failing row (index: the row's frame index), rules joined by `; `."""
    return failures.groupby("row", sort=True)["reason"].agg("; ".join)


def share_problem(
    limit: float, table: RawTable, reasons: pd.Series[str], listed: str
) -> str | None:
    """The one-line error when too many rows fail, naming the first one's line and field."""
    total = len(table.frame)
    bad = len(reasons)
    if bad / total <= limit:
        return None
    first_line = int(table.lines[reasons.index[0]])
    return (
        f"{table.path}: line {first_line}: {reasons.iloc[0]} "
        f"({bad} of {total} rows fail the schema, {bad / total:.2%} > "
        f"data.max_quarantine_share {limit:.2%}{listed})"
    )


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
        _remove(report_path, params.paths.train_profile, *quarantines)
        raise
    for split, check in checks.items():
        _write_quarantine(params.paths.quarantine(split), check)
    try:
        for split, check in checks.items():
            _enforce_share(params.data.max_quarantine_share, check, params.paths.quarantine(split))
    except PipelineError:
        # The quarantine files stay as the diagnosis; without a report, clean will not proceed.
        _remove(report_path, params.paths.train_profile)
        raise
    splits = {split: _split_summary(params, split, check) for split, check in checks.items()}
    profile = training_profile(params, checks["train"])
    shift = shift_from_baseline(params, checks["train"].valid)
    payload = {
        "max_quarantine_share": params.data.max_quarantine_share,
        "splits": splits,
        "shift": shift,
    }
    replace_all({report_path: json_bytes(payload), params.paths.train_profile: json_bytes(profile)})
    for split, summary in splits.items():
        log.info("%s: %d rows, %d quarantined", split, summary["rows"], summary["quarantined_rows"])
    return ValidationReport(path=report_path, splits=splits, shift=shift)


def training_profile(params: Params, check: SplitCheck) -> dict[str, Any]:
    """The profile (census_pipeline.drift) of the training rows that passed validation.

    Its `data` entry names the file it describes, so a baseline profile says what it came from.
    """
    profile = build_profile(check.valid, bins=params.data.profile_bins)
    entry = check.entry
    profile["data"] = {
        "file": entry.file,
        "sha256": entry.sha256,
        "release": entry.release,
        "source": entry.source,
    }
    return profile


def shift_from_baseline(params: Params, rows: pd.DataFrame) -> dict[str, Any]:
    """Per-feature PSI, rows and label share of this training data against the baseline's.

    The baseline profile is the one `census-pipeline promote` saved with the last promoted model;
    without it the report says so instead of comparing with nothing.
    """
    path = params.paths.baseline_profile
    where = f"{path.parent.name}/{path.name}"
    if not path.is_file():
        return {"baseline": where, "status": "no baseline profile (promote a model first)"}
    try:
        baseline = check_profile(read_json(path))
        # Binned on the baseline's own quantiles, so the two are compared bin for bin.
        shift = compare(baseline, rows)
    except (ValueError, KeyError) as exc:
        raise PipelineError(f"{path}: not a usable data profile ({exc})") from exc
    return {"baseline": where, "status": "compared", "baseline_data": baseline.get("data"), **shift}


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
    problem = share_problem(limit, check.table, check.reasons, f"; all listed in {quarantine}")
    if problem is not None:
        raise PipelineError(problem)


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
