"""`census-pipeline monitor`: the prediction log against the reference profile, as a report
that can fail a job.

Reads the records the service logged in a time window (SQLite or PostgreSQL, the same URL the
service writes to) and the profile the `profile` stage saved from the validation split, then:

- per feature: PSI on the reference's bins (`drift`), a two-sample test (KS for numerics,
  chi-square for categories; `stattests`), the change in the share of missing values, and
  categories the reference never saw;
- the predictions: PSI and KS of the scores, and the share predicted >50K;
- where feedback exists: accuracy, precision, recall, F1 and ROC AUC overall and per slice
  (`monitor.slices`), with intervals.

A feature *alerts* when its PSI reaches `psi_alert` and its test is significant at `alpha`, or
its missing share moved by more than `missing_share_alert`; it *warns* at `psi_warn` (or on
unseen categories). Live quality alerts when even the upper end of a metric's interval is
`quality.max_drop` below the validation figure. Any alert makes the command exit 1.

The log is read as aggregates (`GROUP BY` per feature, done by the database), plus the scores
and the rows with feedback: a million logged records take seconds, not minutes.
Outputs: `reports/monitoring/report.json` and `report.html`, both or neither.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.config import MonitorParams, Params
from census_pipeline.drift import build_profile, feature_bins, level, psi
from census_pipeline.errors import PipelineError
from census_pipeline.files import json_bytes, read_json, replace_all
from census_pipeline.metrics import confusion, rates, roc_auc
from census_pipeline.predlog.database import default_log_database, make_engine, redact
from census_pipeline.predlog.tables import FEATURE_COLUMNS, feedback, predictions
from census_pipeline.schema import CATEGORICAL, NUMERIC, POSITIVE_LABEL
from census_pipeline.slices import SliceSettings, bootstrap_intervals, slice_counts
from census_pipeline.stattests import chi_square_test, ks_test

DATABASE_ENV = "CENSUS_API_DATABASE_URL"
QUALITY_METRICS = ("accuracy", "precision", "recall", "f1")
SCORE = "score"


@dataclass(frozen=True)
class Window:
    since: float
    until: float

    def as_dict(self) -> dict[str, str]:
        return {"since": _iso(self.since), "until": _iso(self.until)}


@dataclass(frozen=True)
class LogSummary:
    """What the window holds, as the monitor needs it: aggregates, scores, feedback rows."""

    rows: int  # exact count in the window
    sampled: int  # records the drift figures were computed on (all, up to monitor.max_rows)
    versions: dict[str, int]  # in the sample
    redacted: frozenset[str]
    counts: dict[str, dict[Any, int]]  # feature -> value -> count (None: missing)
    scores: NDArray[np.float64]
    predicted_positive: int
    feedback: pd.DataFrame  # probability, predicted, truth (0/1) and the slice features


@dataclass(frozen=True)
class MonitorResult:
    report: dict[str, Any]
    json_path: Path
    html_path: Path

    @property
    def alerts(self) -> list[str]:
        found: list[str] = self.report["alerts"]
        return found


# --- where and when -----------------------------------------------------------------------------


def database_url(params: Params, option: str | None = None) -> str:
    """--database-url, else CENSUS_API_DATABASE_URL, else params, else the service's default."""
    for candidate in (option, os.environ.get(DATABASE_ENV), params.monitor.database_url):
        if candidate:
            return candidate
    return f"sqlite:///{default_log_database(params.paths.model_dir)}"


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([hd])$")


def parse_time(text: str, now: float) -> float:
    """A window bound: an ISO 8601 time (UTC unless it says otherwise) or `<n>h` / `<n>d` ago."""
    if match := _DURATION.match(text.strip()):
        hours = float(match.group(1)) * (24 if match.group(2) == "d" else 1)
        return now - hours * 3600
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise PipelineError(
            f"{text!r}: expected an ISO 8601 time (2026-11-28T09:00) or a duration (24h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="seconds")


# --- reading the log ----------------------------------------------------------------------------


def read_log(
    url: str, window: Window, slices: Sequence[str], max_rows: int = 100_000
) -> LogSummary:
    """The window's records: counted exactly, profiled on a uniform sample of at most about
    `max_rows` (every k-th row on SQLite, a Bernoulli sample on PostgreSQL), and every record
    with feedback. A sample of 100,000 moves a PSI by about 10 bins / 100,000 = 0.0001: the
    drift figures are those of the whole window, read in a fraction of the time."""
    from sqlalchemy import and_, func, select
    from sqlalchemy.exc import SQLAlchemyError

    engine = make_engine(url)
    inside = and_(predictions.c.created_at >= window.since, predictions.c.created_at < window.until)
    try:
        with engine.connect() as connection:
            total = connection.execute(select(func.count()).where(inside)).scalar_one()
            every = max(1, math.ceil(total / max_rows))
            sample = pd.DataFrame(
                _fetch(connection, _sample_query(engine, window, every)), columns=_SAMPLED
            )
            rows = _fetch(connection, _feedback_query(engine, window, slices))
    except SQLAlchemyError as exc:
        raise PipelineError(f"prediction log {redact(url)}: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
    frame = pd.DataFrame(rows, columns=["probability", "predicted", "truth", *slices])
    frame["predicted"] = (frame["predicted"] == POSITIVE_LABEL).astype(np.int64)
    frame["truth"] = (frame["truth"] == POSITIVE_LABEL).astype(np.int64)
    return _summary(int(total), sample, frame)


_SAMPLED = [*FEATURE_COLUMNS.values(), "probability", "label", "model_version", "redacted"]


def _fetch(connection: Any, query: Any) -> list[Any]:
    """Rows as the driver returns them: SQLAlchemy's row objects cost more than the read
    itself on a million records. The query is compiled with its (numeric) values inlined."""
    sql = str(query.compile(dialect=connection.dialect, compile_kwargs={"literal_binds": True}))
    cursor = connection.connection.cursor()
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def _feedback_query(engine: Any, window: Window, slices: Sequence[str]) -> Any:
    """Every record of the window with a true label, and its slice features."""
    from sqlalchemy import select

    joined = feedback.join(predictions, feedback.c.prediction_id == predictions.c.id)
    query = select(
        predictions.c.probability, predictions.c.label.label("predicted"),
        feedback.c.label.label("truth"),
        *(predictions.c[FEATURE_COLUMNS[f]].label(f) for f in slices),
    ).select_from(joined).where(
        predictions.c.created_at >= window.since, predictions.c.created_at < window.until
    )  # fmt: skip
    if engine.dialect.name == "sqlite":
        # SQLite would walk the window's index and probe feedback once per logged record;
        # CROSS JOIN makes it walk feedback (usually far smaller) and look records up instead.
        return _CrossJoin(query)
    return query


class _CrossJoin:
    """A compiled SELECT whose `JOIN` becomes SQLite's `CROSS JOIN` (a join-order hint)."""

    def __init__(self, query: Any) -> None:
        self.query = query

    def compile(self, **options: Any) -> str:
        sql = str(self.query.compile(**options))
        return sql.replace(" JOIN predictions ON ", " CROSS JOIN predictions ON ", 1)


def _sample_query(engine: Any, window: Window, every: int) -> Any:
    from sqlalchemy import func, literal, literal_column, select, tablesample

    source: Any = predictions
    if every > 1 and engine.dialect.name == "postgresql":
        # REPEATABLE, so two runs over the same window report the same figures.
        source = tablesample(predictions, func.bernoulli(100.0 / every), seed=literal(42))
    query = select(*(source.c[c] for c in _SAMPLED)).where(
        source.c.created_at >= window.since, source.c.created_at < window.until
    )
    if every > 1 and engine.dialect.name != "postgresql":
        # rowid is SQLite's insertion order: every k-th record, spread evenly over time.
        query = query.where(literal_column("predictions.rowid") % every == 0)
    return query


def _summary(total: int, sample: pd.DataFrame, feedback_rows: pd.DataFrame) -> LogSummary:
    if sample.empty:
        sample = pd.DataFrame(columns=_SAMPLED)
    counts: dict[str, dict[Any, int]] = {}
    for feature, column in FEATURE_COLUMNS.items():
        values = sample[column].value_counts(dropna=False)
        counts[feature] = {_plain(v): int(n) for v, n in values.items()}
    hidden = {n for names in sample["redacted"].dropna().unique() for n in str(names).split(",")}
    versions = sample["model_version"].value_counts()
    return LogSummary(
        rows=total,
        sampled=len(sample),
        versions={str(k): int(v) for k, v in versions.items()},
        redacted=frozenset(hidden),
        counts=counts,
        scores=sample["probability"].to_numpy(dtype=np.float64),
        predicted_positive=int((sample["label"] == POSITIVE_LABEL).sum()),
        feedback=feedback_rows,
    )


def _plain(value: Any) -> Any:
    """A database value as the profile expects it: None for missing, Python numbers."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def current_profile(reference: Mapping[str, Any], summary: LogSummary) -> dict[str, Any]:
    """The window's profile on the reference's bins, through `drift.build_profile`.

    Each feature's column is rebuilt from its value counts: a profile only looks at one
    feature at a time, so the columns need not line up row by row.
    """
    columns: dict[str, Any] = {}
    for name in NUMERIC:
        values, counts = _value_counts(summary.counts[name], summary.sampled)
        columns[name] = np.repeat(np.asarray(values, dtype=np.float64), counts)
    for name in CATEGORICAL:
        values, counts = _value_counts(summary.counts[name], summary.sampled)
        categories = sorted({v for v in values if v is not None})
        codes = [categories.index(v) if v is not None else -1 for v in values]
        categorical: Any = pd.Categorical
        columns[name] = categorical.from_codes(np.repeat(codes, counts), categories)
    return build_profile(pd.DataFrame(columns), reference=reference, label=None)


def _value_counts(counts: Mapping[Any, int], rows: int) -> tuple[list[Any], list[int]]:
    values = [math.nan if v is None else v for v in counts] if counts else []
    numbers = list(counts.values())
    if not counts and rows:  # a feature with no value at all in the window
        return [None], [rows]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values], numbers


# --- comparing ----------------------------------------------------------------------------------


def feature_drift(
    reference: Mapping[str, Any], summary: LogSummary, settings: MonitorParams
) -> dict[str, dict[str, Any]]:
    """Per feature: PSI, test, missing share, unseen categories, status and the bins' shares."""
    data = reference["data"]
    current = current_profile(data, summary)
    enough = summary.rows >= settings.min_rows
    report: dict[str, dict[str, Any]] = {}
    for name in NUMERIC + CATEGORICAL:
        kind = "numeric" if name in NUMERIC else "categorical"
        if name in summary.redacted:
            report[name] = {"kind": kind, "status": "not_logged"}
            continue
        labels, expected, actual = feature_bins(data, current, name)
        value = psi(expected, actual)
        test = _test(reference, name, summary)
        ref_missing = data[kind][name]["missing_share"]
        cur_missing = current[kind][name]["missing_share"]
        unseen = (
            {str(k): n for k, n in summary.counts[name].items()
             if k is not None and str(k) not in data["categorical"][name]["shares"]}
            if kind == "categorical" else {}
        )  # fmt: skip
        entry = {
            "kind": kind,
            "psi": value,
            "level": level(value),
            **test.as_dict(),
            "missing_share": {"reference": ref_missing, "current": cur_missing,
                              "change": cur_missing - ref_missing},
            "unseen": unseen,
            "bins": {"labels": labels, "reference": expected, "current": actual},
        }  # fmt: skip
        entry["status"], entry["reasons"] = _status(entry, settings, enough)
        report[name] = entry
    return report


def _test(reference: Mapping[str, Any], name: str, summary: LogSummary) -> Any:
    present = {k: n for k, n in summary.counts[name].items() if k is not None}
    if name in NUMERIC:
        return ks_test(
            reference["ecdf"][name], reference["rows"], list(present), list(present.values())
        )
    shares = reference["data"]["categorical"][name]["shares"]
    return chi_square_test(shares, reference["rows"], {str(k): n for k, n in present.items()})


def _status(
    entry: Mapping[str, Any], settings: MonitorParams, enough: bool
) -> tuple[str, list[str]]:
    """ok / warn / alert with the reasons, or `too_few_rows` below `min_rows`."""
    p_value = entry["p_value"]
    significant = not math.isnan(p_value) and p_value < settings.alpha
    test = f"{entry['test']} p={p_value:.2g}"
    alerts, warnings = [], []
    if entry["psi"] >= settings.psi_alert and significant:
        alerts.append(f"PSI {entry['psi']:.3f} >= {settings.psi_alert} ({test})")
    elif entry["psi"] >= settings.psi_warn and significant:
        warnings.append(f"PSI {entry['psi']:.3f} >= {settings.psi_warn} ({test})")
    change = entry.get("missing_share", {}).get("change", 0.0)
    if abs(change) > settings.missing_share_alert:
        limit = settings.missing_share_alert
        alerts.append(f"missing share moved by {change:+.3f} (limit {limit})")
    if entry.get("unseen"):
        warnings.append(f"categories the reference never saw: {sorted(entry['unseen'])}")
    if not enough:
        return "too_few_rows", alerts + warnings
    if alerts:
        return "alert", alerts + warnings
    return ("warn" if warnings else "ok"), warnings


def prediction_drift(
    reference: Mapping[str, Any], summary: LogSummary, settings: MonitorParams
) -> dict[str, Any]:
    """The scores' PSI and KS against the validation split's, and the positive rate."""
    ref = reference["scores"]
    mini = {"numeric": {SCORE: ref}, "categorical": {}}
    current = build_profile(pd.DataFrame({SCORE: summary.scores}), reference=mini, label=None)[
        "numeric"
    ][SCORE]
    expected = [*ref["shares"], ref["missing_share"]]
    actual = [*current["shares"], current["missing_share"]]
    value = psi(expected, actual)
    values, counts = np.unique(summary.scores, return_counts=True)
    test = ks_test(ref["ecdf"], reference["rows"], values, counts)
    rate = summary.predicted_positive / summary.sampled if summary.sampled else math.nan
    entry: dict[str, Any] = {
        "psi": value,
        "level": level(value),
        **test.as_dict(),
        "positive_rate": {"reference": ref["positive_rate"], "current": rate},
        "bins": {"reference": expected, "current": actual, "edges": ref["edges"]},
    }
    entry["status"], entry["reasons"] = _status(entry, settings, summary.rows >= settings.min_rows)
    return entry


def live_quality(
    reference: Mapping[str, Any], frame: pd.DataFrame, params: Params
) -> dict[str, Any]:
    """Metrics on the records with feedback, overall and per slice, against validation."""
    settings = params.monitor
    bootstrap = SliceSettings(
        params.evaluate.bootstrap_resamples, 1, params.evaluate.confidence, params.seed
    )
    n = len(frame)
    result: dict[str, Any] = {"feedback_rows": n, "min_feedback": settings.quality.min_feedback}
    if n == 0:
        return {**result, "status": "no_feedback"}
    truth = frame["truth"].to_numpy(dtype=np.int64)
    predicted = frame["predicted"].to_numpy(dtype=np.int64)
    scores = frame["probability"].to_numpy(dtype=np.float64)
    overall = _metrics_with_intervals(truth, predicted, scores, bootstrap)
    validation = reference.get("validation_metrics", {})
    for metric, entry in overall.items():
        entry["reference"] = validation.get(metric)
    result["overall"] = overall
    result["slices"] = _slices(frame, truth, predicted, scores, settings.slices, bootstrap)
    alerts = _quality_alerts(overall, settings) if n >= settings.quality.min_feedback else []
    status = "too_few_rows" if n < settings.quality.min_feedback else "alert" if alerts else "ok"
    return {**result, "status": status, "reasons": alerts}


def _metrics_with_intervals(
    truth: NDArray[np.int64],
    predicted: NDArray[np.int64],
    scores: NDArray[np.float64],
    bootstrap: SliceSettings,
) -> dict[str, dict[str, Any]]:
    """Count metrics with the slice code's bootstrap intervals; ROC AUC with Hanley and
    McNeil's standard error (a bootstrap of ranks would cost seconds on large windows)."""
    counts = confusion(truth, predicted)
    cells = np.array([[counts.tn, counts.fp, counts.fn, counts.tp]], dtype=np.int64)
    point = rates(*cells.T)
    intervals = bootstrap_intervals(cells, bootstrap, QUALITY_METRICS)
    out: dict[str, dict[str, Any]] = {}
    for metric in QUALITY_METRICS:
        low, high = intervals[metric]
        out[metric] = _entry(float(point[metric][0]), float(low[0]), float(high[0]))
    out["roc_auc"] = _auc_entry(truth, scores, bootstrap.confidence)
    return out


def _entry(value: float, low: float, high: float) -> dict[str, Any]:
    return {k: (None if math.isnan(v) else v) for k, v in
            (("value", value), ("ci_low", low), ("ci_high", high))}  # fmt: skip


def _auc_entry(truth: NDArray[np.int64], scores: NDArray[np.float64], confidence: float) -> Any:
    from scipy.stats import norm

    positives, negatives = int(truth.sum()), int(truth.size - truth.sum())
    if positives == 0 or negatives == 0:
        return _entry(math.nan, math.nan, math.nan)
    auc = roc_auc(truth, scores)
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    half = float(norm.ppf(0.5 + confidence / 2)) * math.sqrt(max(variance, 0.0))
    return _entry(auc, max(auc - half, 0.0), min(auc + half, 1.0))


def _slices(
    frame: pd.DataFrame,
    truth: NDArray[np.int64],
    predicted: NDArray[np.int64],
    scores: NDArray[np.float64],
    features: Sequence[str],
    bootstrap: SliceSettings,
) -> list[dict[str, Any]]:
    table = pd.concat(
        [slice_counts(frame, truth, predicted, [f]) for f in features], ignore_index=True
    )
    rows = []
    for _, row in table.iterrows():
        values = frame[row["feature"]].astype("string").fillna("missing")
        mask = (values == row["value"]).to_numpy()
        metrics = _metrics_with_intervals(truth[mask], predicted[mask], scores[mask], bootstrap)
        rows.append({"feature": row["feature"], "value": row["value"], "n": int(mask.sum()),
                     "positives": int(truth[mask].sum()), "metrics": metrics})  # fmt: skip
    return rows


def _quality_alerts(overall: Mapping[str, Any], settings: MonitorParams) -> list[str]:
    alerts = []
    for metric, drop in settings.quality.max_drop.items():
        entry = overall.get(metric)
        if entry is None or entry["reference"] is None or entry["ci_high"] is None:
            continue
        floor = entry["reference"] - drop
        if entry["ci_high"] < floor:
            alerts.append(
                f"live {metric} {entry['value']:.3f} (interval up to {entry['ci_high']:.3f}) is "
                f"more than {drop} below validation's {entry['reference']:.3f}"
            )
    return alerts


# --- the step -----------------------------------------------------------------------------------


def read_reference(path: Path) -> dict[str, Any]:
    from census_pipeline.drift import check_profile

    payload = read_json(path)
    try:
        check_profile(payload.get("data") if isinstance(payload, dict) else None)
        for key in ("rows", "ecdf", "scores", "validation_metrics"):
            if key not in payload:
                raise ValueError(f"lacks '{key}'")
    except ValueError as exc:
        raise PipelineError(
            f"{path}: not a reference profile ({exc}); run `census-pipeline profile`"
        ) from None
    return dict(payload)


def monitor(
    params: Params,
    url: str | None = None,
    since: str | None = None,
    until: str | None = None,
    now: float | None = None,
) -> MonitorResult:
    """Compare the log's window with the reference; write the JSON and HTML reports."""
    moment = time.time() if now is None else now
    window = Window(
        parse_time(since or params.monitor.window, moment),
        parse_time(until, moment) if until else moment,
    )
    if window.since >= window.until:
        raise PipelineError(f"empty window: {window.as_dict()} (since must be before until)")
    reference = read_reference(params.paths.reference_profile)
    location = database_url(params, url)
    summary = read_log(location, window, params.monitor.slices, params.monitor.max_rows)
    report = build_report(params, reference, summary, window, location, moment)
    paths = params.paths
    from census_pipeline.monitor_report import render_html

    replace_all({
        paths.monitoring_json: json_bytes(_finite(report)),
        paths.monitoring_html: render_html(report).encode("utf-8"),
    })  # fmt: skip
    return MonitorResult(report, paths.monitoring_json, paths.monitoring_html)


def build_report(
    params: Params,
    reference: Mapping[str, Any],
    summary: LogSummary,
    window: Window,
    location: str,
    moment: float,
) -> dict[str, Any]:
    settings = params.monitor
    features = feature_drift(reference, summary, settings)
    prediction = prediction_drift(reference, summary, settings) if summary.rows else None
    quality = live_quality(reference, summary.feedback, params)
    alerts = [f"{name}: {reason}" for name, entry in features.items()
              if entry["status"] == "alert" for reason in entry["reasons"]]  # fmt: skip
    if prediction is not None and prediction["status"] == "alert":
        alerts += [f"prediction scores: {reason}" for reason in prediction["reasons"]]
    if quality["status"] == "alert":
        alerts += [f"live quality: {reason}" for reason in quality["reasons"]]
    warnings = [f"{name}: {reason}" for name, entry in features.items()
                if entry["status"] == "warn" for reason in entry["reasons"]]  # fmt: skip
    if prediction is not None and prediction["status"] == "warn":
        warnings += [f"prediction scores: {reason}" for reason in prediction["reasons"]]
    if summary.rows < settings.min_rows:
        warnings.append(
            f"only {summary.rows} logged records in the window (fewer than min_rows "
            f"{settings.min_rows}): drift is reported, not judged"
        )
    return {
        "generated_at": _iso(moment),
        "window": window.as_dict(),
        "database": redact(location),
        "reference": {
            "path": str(params.paths.reference_profile),
            "model_version": reference.get("model_version"),
            "model_sha256": reference.get("model_sha256"),
            "rows": reference["rows"],
        },
        "log": {
            "rows": summary.rows,
            "sampled": summary.sampled,
            "model_versions": summary.versions,
            "not_logged": sorted(summary.redacted),
        },
        "thresholds": settings.model_dump(exclude={"database_url"}),
        "features": features,
        "prediction": prediction,
        "quality": quality,
        "alerts": alerts,
        "warnings": warnings,
    }


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: an undefined number is null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
