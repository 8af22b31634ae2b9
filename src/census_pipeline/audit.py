"""Bias audit: group metrics, disparities against reference groups and fairness determinations.

Aequitas computes each group's confusion-matrix metrics and the disparities (group metric divided
by the reference group's). Two things are added on top, for a verdict that can run on every build:

- Significance by Fisher's exact test on each parity's own 2x2 table. Aequitas's t-tests are kept
  in the table for reference, but its FPR and FNR tests are run on the predicted-positive and
  predicted-negative rows (so they repeat its FDR and FOR tests), and on tiny or constant groups
  its t-test reports p-values near zero for a handful of people.
- A Holm correction over the groups of one parity, and a minimum support, so that a fair model is
  not declared unfair by chance in one of a dozen small comparisons.

A group is `unfair` on a parity only when its disparity lies outside [tau, 1/tau], the difference
is significant after correction and both groups have at least `min_support` people in the
parity's denominator; outside the band without that evidence it is `inconclusive`.
"""

from __future__ import annotations

import io
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd

from census_pipeline.config import (
    FAIRNESS_PARITIES,
    PREDICTIONS_MODEL_KEY,
    AuditParams,
    Params,
    ParityPolicy,
)
from census_pipeline.errors import PipelineError
from census_pipeline.files import (
    all_or_nothing,
    json_bytes,
    parquet_metadata,
    remove_all,
    replace_all,
    sha256_file,
)
from census_pipeline.schema import CROSS

log = logging.getLogger(__name__)

PARITY_NAMES: Final = {
    "fpr": "false positive rate",
    "fnr": "false negative rate",
    "fdr": "false discovery rate",
    "for": "false omission rate",
    "pprev": "predicted positive rate",
    "prev": "prevalence",
}
# Each parity's rate is a / (a + b) over these confusion-matrix cells; a + b is its support.
_CELLS: Final = {
    "fpr": ("fp", "tn"),
    "fnr": ("fn", "tp"),
    "fdr": ("fp", "tp"),
    "for": ("fn", "tn"),
    "pprev": ("pp", "pn"),
    "prev": ("positives", "negatives"),
}
_METRICS: Final = ("fpr", "fnr", "fdr", "for", "pprev", "prev", "ppr", "tpr", "tnr", "precision")
_AEQUITAS_TESTED: Final = ("fdr", "for", "pprev")  # its tests that test the named quantity


@dataclass(frozen=True)
class AuditResult:
    table: Path
    summary_path: Path
    figures: tuple[Path, ...]
    summary: dict[str, Any]


def audit(params: Params) -> AuditResult:
    """Audit the test-set predictions and write the table, the summary and the figures.

    Everything is computed before anything is written; after a failure none of the table, the
    summary or the figures is left, so no step can read a summary beside older figures.
    """
    paths = params.paths
    stale = sorted(paths.audit_figures_dir.glob("disparities_*.png"))
    with all_or_nothing([paths.audit_table, paths.audit_summary, *stale]):
        source = paths.test_predictions
        digest = sha256_file(source)
        model_sha256 = parquet_metadata(source).get(PREDICTIONS_MODEL_KEY)
        frame = audit_frame(read_predictions(source), params.audit)
        table = group_table(frame, params.audit)
        figures = disparity_figures(table, params.audit, paths.audit_figures_dir)
        summary = summarise(table, params.audit, predictions_sha256=digest)
        summary["model_sha256"] = model_sha256
        summary["figures"] = [p.relative_to(paths.audit_dir).as_posix() for p in figures]
        # Figures of attributes no longer audited must not reach the card.
        remove_all(p for p in stale if p not in figures)
        replace_all(
            {
                **figures,
                paths.audit_table: table.to_csv(index=False).encode("utf-8"),
                paths.audit_summary: json_bytes(summary),
            }
        )
    log.info("audit: %d groups, %d figures", len(table), len(figures))
    return AuditResult(paths.audit_table, paths.audit_summary, tuple(figures), summary)


def console_lines(
    summary: dict[str, Any], policy: dict[str, ParityPolicy], mitigated: bool
) -> list[str]:
    """One line per parity saying whether it holds and whether the gate will enforce it, so a
    reader knows before the gate runs which failures will block a blessing."""
    lines = []
    for parity, entry in summary["parities"].items():
        rule = policy.get(parity)
        role = "enforced by the gate" if rule and rule.applies(mitigated) else "reported only"
        verdict = "holds" if entry["fair"] else f"fails for {', '.join(entry['unfair'])}"
        lines.append(f"{parity} ({entry['name']}; {role}): {verdict}")
    enforced = [p for p, r in policy.items() if r.applies(mitigated)]
    model = "a mitigated model" if mitigated else "an unmitigated model"
    lines.append(f"gate policy for {model}: enforces {', '.join(enforced) or 'no parity'}")
    return lines


def read_predictions(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `census-pipeline evaluate` first)") from exc


def audit_frame(predictions: pd.DataFrame, cfg: AuditParams) -> pd.DataFrame:
    """The frame Aequitas wants: string attributes, binary `score` (the prediction), `label_value`.

    Aequitas refuses pandas `category` columns, so attributes become plain strings; a missing
    value becomes its own group rather than silently dropping rows.
    """
    needed = [*cfg.attributes, *(a for c in cfg.crossings for a in c), "label", "prediction"]
    if missing := [c for c in dict.fromkeys(needed) if c not in predictions.columns]:
        raise PipelineError(f"test predictions: missing column(s) {missing}")
    for column in ("label", "prediction"):
        if not predictions[column].isin([0, 1]).all():
            raise PipelineError(f"test predictions: column {column!r}: expected only 0 and 1")
    frame = pd.DataFrame(index=predictions.index)
    for attribute in cfg.attributes:
        frame[attribute] = _as_text(predictions[attribute])
    for crossing in cfg.crossings:
        combined = _as_text(predictions[crossing[0]])
        for attribute in crossing[1:]:
            combined = combined + CROSS + _as_text(predictions[attribute])
        frame[CROSS.join(crossing)] = combined
    frame["score"] = predictions["prediction"].astype(int)
    frame["label_value"] = predictions["label"].astype(int)
    return frame.reset_index(drop=True)


def _as_text(column: pd.Series) -> pd.Series:
    return column.astype(object).where(column.notna(), "(missing)").astype(str).astype(object)


def group_table(
    frame: pd.DataFrame, cfg: AuditParams, aequitas_significance: bool = True
) -> pd.DataFrame:
    """One row per (attribute, group): counts, metrics, disparities, p-values and statuses.

    The statuses rest on our own Fisher tests (`_judge_parity`); Aequitas's own significance
    tests (the `*_aequitas_p` columns, shown beside them in the audit report) are most of its
    run time, so callers that only read the statuses can skip them (their columns are NaN)."""
    raw = _run_aequitas(frame, cfg, aequitas_significance)
    table = _tidy(raw)
    table["is_reference"] = [
        cfg.reference_groups[a] == g
        for a, g in zip(table["attribute"], table["group"], strict=True)
    ]
    for metric in _METRICS:
        # Aequitas writes 10.0 where the reference rate is 0; that ratio is undefined, not 10.
        ref_values = table["attribute"].map(
            table[table["is_reference"]].set_index("attribute")[metric]
        )
        undefined = ~(ref_values.astype(float) > 0)
        table.loc[undefined, f"{metric}_disparity"] = np.nan
    for parity in FAIRNESS_PARITIES:
        _judge_parity(table, parity, cfg)
    return table


def _run_aequitas(frame: pd.DataFrame, cfg: AuditParams, significance: bool) -> pd.DataFrame:
    from aequitas import Audit

    attributes = list(cfg.audited_attributes)
    refs = {a: cfg.reference_groups[a] for a in attributes}
    for attribute, group in refs.items():
        if not (frame[attribute] == group).any():
            raise PipelineError(
                f"audit.reference_groups.{attribute}: group {group!r} has no rows in the test set"
            )
    job = Audit(
        frame,
        score_column="score",
        label_column="label_value",
        sensitive_attribute_column=attributes,
        reference_groups=refs,
    )
    with warnings.catch_warnings():
        # Aequitas's internals trip pandas deprecation and scipy small-sample warnings.
        warnings.simplefilter("ignore")
        job.audit(
            bias_args={
                "input_group_metrics": list(_METRICS),
                "check_significance": significance,
                "mask_significance": False,
                "selected_significance": list(_AEQUITAS_TESTED),
            }
        )
    return pd.DataFrame(job.disparity_df)


def _tidy(raw: pd.DataFrame) -> pd.DataFrame:
    renamed = raw.rename(
        columns={
            "attribute_name": "attribute",
            "attribute_value": "group",
            "group_size": "n",
            "group_label_pos": "positives",
            "group_label_neg": "negatives",
        }
    )
    counts = ["n", "positives", "negatives", "pp", "pn", "tp", "fp", "tn", "fn"]
    table = renamed[["attribute", "group", *counts, *_METRICS]].copy()
    table[counts] = table[counts].astype(int)
    for metric in _METRICS:
        table[f"{metric}_disparity"] = renamed[f"{metric}_disparity"].astype(float)
    table["prev_aequitas_p"] = _column(renamed, "label_value_significance")
    for metric in _AEQUITAS_TESTED:
        table[f"{metric}_aequitas_p"] = _column(renamed, f"{metric}_significance")
    return table.reset_index(drop=True)


def _column(raw: pd.DataFrame, name: str) -> pd.Series:
    """A float column of Aequitas's output, NaN throughout when it was not computed."""
    if name in raw.columns:
        return raw[name].astype(float)
    return pd.Series(np.nan, index=raw.index, dtype=float)


def _judge_parity(table: pd.DataFrame, parity: str, cfg: AuditParams) -> None:
    """Add `<parity>_p` (Fisher), `<parity>_p_holm` and `<parity>_status` columns in place."""
    a_cell, b_cell = _CELLS[parity]
    p_values = np.full(len(table), np.nan)
    support_ok = np.zeros(len(table), dtype=bool)
    for _, rows in table.groupby("attribute", sort=False):
        ref = rows[rows["is_reference"]].iloc[0]
        ref_cells = (int(ref[a_cell]), int(ref[b_cell]))
        for index, row in rows.iterrows():
            cells = (int(row[a_cell]), int(row[b_cell]))
            position = table.index.get_loc(index)
            support_ok[position] = min(sum(cells), sum(ref_cells)) >= cfg.min_support
            if not row["is_reference"]:
                p_values[position] = fisher_p(cells, ref_cells)
    table[f"{parity}_p"] = p_values
    table[f"{parity}_p_holm"] = holm(p_values)
    table[f"{parity}_status"] = [
        _status(d, p, ok, is_ref, cfg)
        for d, p, ok, is_ref in zip(
            table[f"{parity}_disparity"],
            table[f"{parity}_p_holm"],
            support_ok,
            table["is_reference"],
            strict=True,
        )
    ]


def _status(
    disparity: float, p_holm: float, support_ok: bool, is_ref: bool, cfg: AuditParams
) -> str:
    if is_ref:
        return "reference"
    if not math.isfinite(disparity):
        return "undefined"
    if cfg.tau <= disparity <= 1 / cfg.tau:
        return "fair"
    if support_ok and p_holm < cfg.alpha:
        return "unfair"
    return "inconclusive"


def fisher_p(cells: tuple[int, int], ref_cells: tuple[int, int]) -> float:
    """Two-sided Fisher exact test of a / (a + b) in a group against its reference group."""
    from scipy.stats import fisher_exact

    if sum(cells) == 0 or sum(ref_cells) == 0:
        return math.nan
    return float(fisher_exact([list(cells), list(ref_cells)]).pvalue)


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment; NaN entries are left out of the family and stay NaN."""
    adjusted = np.full(len(p_values), np.nan)
    present = np.flatnonzero(~np.isnan(p_values))
    order = present[np.argsort(p_values[present], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * float(p_values[index])))
        adjusted[index] = running
    return adjusted


def summarise(table: pd.DataFrame, cfg: AuditParams, predictions_sha256: str) -> dict[str, Any]:
    """The short JSON: for each parity, whether it holds and which groups fail by how much."""
    return {
        "tau": cfg.tau,
        "band": [cfg.tau, 1 / cfg.tau],
        "alpha": cfg.alpha,
        "min_support": cfg.min_support,
        "test": "Fisher exact, Holm-corrected over the groups of each parity",
        "predicted_positive_parity": "pprev",
        "reference_groups": {a: cfg.reference_groups[a] for a in cfg.audited_attributes},
        "attributes": list(cfg.audited_attributes),
        "n": int(table.loc[table["attribute"] == cfg.audited_attributes[0], "n"].sum()),
        "predictions_sha256": predictions_sha256,
        "parities": {p: _parity_summary(table, p) for p in FAIRNESS_PARITIES},
    }


def _parity_summary(table: pd.DataFrame, parity: str) -> dict[str, Any]:
    refs = table[table["is_reference"]].set_index("attribute")
    groups = [
        _group_record(row, parity, refs.loc[row["attribute"]])
        for _, row in table.iterrows()
        if not row["is_reference"]
    ]
    unfair = [g for g in groups if g["status"] == "unfair"]
    return {
        "name": PARITY_NAMES[parity],
        "fair": not unfair,
        "unfair": [f"{g['attribute']}={g['group']}" for g in unfair],
        "inconclusive": [
            f"{g['attribute']}={g['group']}" for g in groups if g["status"] == "inconclusive"
        ],
        "worst": max(unfair, key=lambda g: distance_from_parity(g["disparity"]), default=None),
        "groups": groups,
    }


def distance_from_parity(disparity: float) -> float:
    """How far a ratio is from 1 on a log scale, so 0.5 and 2.0 are equally far."""
    return math.inf if disparity <= 0 else abs(math.log(disparity))


def _group_record(row: pd.Series, parity: str, ref: pd.Series) -> dict[str, Any]:
    a_cell, b_cell = _CELLS[parity]
    return {
        "attribute": str(row["attribute"]),
        "group": str(row["group"]),
        "n": int(row["n"]),
        "value": _number(row[parity]),
        "reference": str(ref["group"]),
        "reference_value": _number(ref[parity]),
        "disparity": _number(row[f"{parity}_disparity"]),
        "p_value": _number(row[f"{parity}_p"]),
        "p_holm": _number(row[f"{parity}_p_holm"]),
        "support": int(row[a_cell]) + int(row[b_cell]),
        "status": str(row[f"{parity}_status"]),
    }


def _number(value: Any) -> float | None:
    """JSON has no NaN: an undefined rate is null."""
    number = float(value)
    return number if math.isfinite(number) else None


def disparity_figures(table: pd.DataFrame, cfg: AuditParams, folder: Path) -> dict[Path, bytes]:
    """One PNG per audited attribute: a panel per parity, groups against the fair band."""
    figures = {}
    for attribute in cfg.audited_attributes:
        rows = table[(table["attribute"] == attribute) & ~table["is_reference"]]
        figures[folder / f"disparities_{_slug(attribute)}.png"] = disparity_png(
            rows, attribute, cfg
        )
    return figures


def _slug(name: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").replace("__", "_")


_STATUS_COLOURS: Final = {
    "fair": "#2b8a3e",
    "unfair": "#c92a2a",
    "inconclusive": "#868e96",
    "undefined": "#868e96",
}
_LOG2_LIMIT: Final = 4.0  # the x axis spans disparities 1/16 to 16; beyond, points sit on the edge


def new_figure(width: float, height: float) -> Any:
    """A figure on the Agg canvas, without pyplot's global state (safe in any process)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=72)
    FigureCanvasAgg(figure)
    return figure


def png_bytes(figure: Any) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def disparity_png(rows: pd.DataFrame, attribute: str, cfg: AuditParams) -> bytes:
    """Disparities on a log2 axis drawn as a linear one (log-scale axes cost seconds to lay out)."""
    labels = rows["group"].tolist()[::-1]
    ys = np.arange(len(labels))
    # Heights in inches, so panel titles keep their room whatever the number of groups (with
    # one group, fractions of a short figure put each title on the panel above it).
    panel, gap, top, bottom = 0.3 + 0.32 * len(labels), 0.5, 0.75, 0.45
    fig = new_figure(10, top + bottom + 2 * panel + gap)
    axes = fig.subplots(2, 3, sharey=True, sharex=True)
    ticks = np.arange(-_LOG2_LIMIT, _LOG2_LIMIT + 1, 2)
    for ax, parity in zip(axes.flat, FAIRNESS_PARITIES, strict=True):
        ax.axvspan(math.log2(cfg.tau), -math.log2(cfg.tau), color="#d3f9d8", zorder=0)
        ax.axvline(0.0, color="#495057", lw=0.8)
        values = rows[f"{parity}_disparity"].to_numpy(dtype=float)[::-1]
        statuses = rows[f"{parity}_status"].to_numpy()[::-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            logged = np.log2(values)
        shown = np.clip(np.nan_to_num(logged, nan=0.0), -_LOG2_LIMIT, _LOG2_LIMIT)
        clipped = ~np.isfinite(logged) | (np.abs(logged) > _LOG2_LIMIT)
        for status, colour in _STATUS_COLOURS.items():
            for mask, marker in ((~clipped, "o"), (clipped, "<")):
                pick = (statuses == status) & mask & ~np.isnan(values)
                ax.scatter(shown[pick], ys[pick], color=colour, marker=marker, zorder=3, s=30)
        ax.set_title(PARITY_NAMES[parity], fontsize=9)
        ax.set_xlim(-_LOG2_LIMIT - 0.3, _LOG2_LIMIT + 0.3)
        ax.set_xticks(ticks, [f"{2.0**t:g}" for t in ticks])
        ax.tick_params(labelsize=8)
    for row in axes:
        row[0].set_yticks(ys, labels)
    fig.suptitle(
        f"{attribute}: disparity vs {cfg.reference_groups[attribute]} (log scale; green band fair, "
        "red significant, grey inconclusive, arrow off the scale)",
        fontsize=9,
    )
    longest = max((len(label) for label in labels), default=1)
    height = fig.get_figheight()
    fig.subplots_adjust(
        left=0.03 + 0.0085 * longest,
        right=0.98,
        top=1 - top / height,
        bottom=bottom / height,
        wspace=0.1,
        hspace=gap / panel,
    )
    return png_bytes(fig)
