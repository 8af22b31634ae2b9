"""Fairness mitigations that keep one deterministic LightGBM model (docs/trust.md).

Two methods, chosen by `fairness.mitigation` in params.yaml and recorded in model.json:

- `group_thresholds` (post-processing, equal opportunity): the model is unchanged; each group
  gets its own decision threshold, set on the validation split so the group's true positive rate
  matches the model's overall one at its single threshold. This is Fairlearn's
  `ThresholdOptimizer` idea made deterministic: ThresholdOptimizer randomises between two
  thresholds per group, which a served model must not do (the same record would get different
  answers), so each group here gets the one threshold that reaches the target rate.
- `reweighing` (training time; Kamiran and Calders 2012): every training row of group g and label
  y weighs P(g) P(y) / P(g, y), so that in the weighted data the label is independent of the
  group; the model, its threshold and its scoring stay as they are.

The train step calls `training_weights` and `mitigation_record`; `tradeoff` measures them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from census_pipeline.artifact import GroupThresholds, MitigationRecord
from census_pipeline.config import FairnessParams
from census_pipeline.errors import PipelineError
from census_pipeline.predict import ThresholdRule
from census_pipeline.schema import CROSS

if TYPE_CHECKING:
    import pandas as pd

MISSING_GROUP = "(missing)"
THRESHOLD_RULE = (
    "each group's threshold is the highest at which its true positive rate on the validation "
    "split reaches the model's overall rate at its single threshold; a record takes the first "
    "grouping whose group had at least {min_positives} high earners there, else that single "
    "threshold"
)


def group_labels(frame: pd.DataFrame, attributes: tuple[str, ...] | list[str]) -> NDArray[np.str_]:
    """Each row's group under `attributes`, values joined by " x " (missing: "(missing)")."""
    parts = [frame[a].astype(object).where(frame[a].notna(), MISSING_GROUP) for a in attributes]
    joined = parts[0].astype(str)
    for part in parts[1:]:
        joined = joined + CROSS + part.astype(str)
    return np.asarray(joined, dtype=np.str_)


def reweighing_weights(groups: NDArray[np.str_], labels: NDArray[np.int64]) -> dict[str, float]:
    """ "group | label" -> P(group) P(label) / P(group, label), over the rows given."""
    n = len(labels)
    if n == 0:
        raise PipelineError("reweighing: no training rows to weigh")
    weights = {}
    for group in np.unique(groups):
        in_group = groups == group
        for label in (0, 1):
            joint = np.count_nonzero(in_group & (labels == label))
            if joint:
                expected = np.count_nonzero(in_group) * np.count_nonzero(labels == label) / n
                weights[f"{group} | {label}"] = float(expected / joint)
    return weights


def training_weights(
    settings: FairnessParams, frame: pd.DataFrame, labels: NDArray[np.int64]
) -> tuple[NDArray[np.float64] | None, dict[str, float] | None]:
    """Per-row training weights and their table under `reweighing`; (None, None) otherwise."""
    if settings.mitigation != "reweighing":
        return None, None
    groups = group_labels(frame, settings.reweigh_by)
    table = reweighing_weights(groups, labels)
    keys = np.char.add(np.char.add(groups, " | "), labels.astype(str))
    return np.asarray([table[k] for k in keys.tolist()], dtype=np.float64), table


def true_positive_rate(scores: NDArray[np.float64], labels: NDArray[np.int64], t: float) -> float:
    positives = scores[labels == 1]
    return float(np.count_nonzero(positives >= t) / positives.size) if positives.size else 0.0


def threshold_for_rate(positive_scores: NDArray[np.float64], target: float) -> float:
    """The highest threshold at which at least `target` of these positives score at or above it."""
    ordered = np.sort(positive_scores)[::-1]
    needed = max(1, int(np.ceil(target * ordered.size - 1e-9)))
    return float(ordered[needed - 1])


def fit_group_thresholds(
    settings: FairnessParams,
    frame: pd.DataFrame,
    labels: NDArray[np.int64],
    scores: NDArray[np.float64],
    threshold: float,
) -> GroupThresholds:
    """Per grouping, a threshold for every group with enough validation positives."""
    target = true_positive_rate(scores, labels, threshold)
    tables: dict[str, dict[str, float]] = {}
    for grouping in settings.groupings:
        groups = group_labels(frame, grouping)
        table = {}
        for group in np.unique(groups):
            positives = scores[(groups == group) & (labels == 1)]
            if MISSING_GROUP not in group and positives.size >= settings.min_positives:
                table[str(group)] = threshold_for_rate(positives, target)
        tables[CROSS.join(grouping)] = table
    return GroupThresholds(
        groupings=[list(g) for g in settings.groupings],
        thresholds=tables,
        target_tpr=target,
        rule=THRESHOLD_RULE.format(min_positives=settings.min_positives),
    )


def mitigation_record(
    settings: FairnessParams,
    validation: tuple[pd.DataFrame, NDArray[np.int64], NDArray[np.float64]],
    threshold: float,
    weights: dict[str, float] | None,
) -> MitigationRecord:
    """What model.json records about the mitigation (and what the predictor applies)."""
    method = settings.mitigation
    if method == "group_thresholds":
        frame, labels, scores = validation
        fitted = fit_group_thresholds(settings, frame, labels, scores, threshold)
        return MitigationRecord(
            method=method,
            description="per-group thresholds for equal opportunity (equal true positive "
            f"rates), set on the validation split: {fitted.rule}",
            group_thresholds=fitted,
        )
    if method == "reweighing":
        by = CROSS.join(settings.reweigh_by)
        return MitigationRecord(
            method=method,
            description=f"training rows reweighed by {by} and label so the label is "
            "independent of the group in the weighted data (Kamiran and Calders)",
            weights=weights,
        )
    return MitigationRecord(method="none", description="no fairness mitigation")


def predicted_labels(
    record: MitigationRecord, frame: pd.DataFrame, scores: NDArray[np.float64], threshold: float
) -> NDArray[np.int64]:
    """The labels the predictor gives these rows: at their groups' thresholds, if any."""
    rows = ThresholdRule(threshold, record.group_thresholds).for_frame(frame)
    return (scores >= (threshold if rows is None else rows)).astype(np.int64)
