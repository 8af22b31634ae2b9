"""What each fairness mitigation buys and costs, measured on validation, confirmed on the test set.

Whatever `fairness.mitigation` is configured, every method is built the way train builds it, at
the served model's hyperparameters (model.json), and judged with the audit's own tests:

- `none`: the model without mitigation (identical to the served one when it is unmitigated or
  mitigated by thresholds: same data, parameters, seed and early stopping);
- `reweighing`: the same model trained with reweighing weights and its own F1 threshold;
- `group_thresholds`: `none`'s scores labelled at the groups' thresholds (mitigate.py);
- `threshold_optimizer`: Fairlearn's `ThresholdOptimizer` (equal opportunity, accuracy
  objective) on `none`'s scores, over the same groups, as a reference: it randomises between
  two thresholds per group, so it is measured (with a fixed seed) but never served.

Outputs in reports/fairness/: `tradeoff.csv` (one row per method, split, attribute and parity:
worst group, disparity, Holm p-value, status), `tradeoff.json` (the same plus accuracy, ROC AUC
and F1 per method and split) and `figures/tradeoff.png` (disparity against accuracy).
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline import metrics, mitigate
from census_pipeline.artifact import GroupThresholds, ModelMetadata, read_metadata
from census_pipeline.audit import (
    audit_frame,
    distance_from_parity,
    group_table,
    new_figure,
    png_bytes,
)
from census_pipeline.config import Params
from census_pipeline.files import all_or_nothing, json_bytes, replace_all
from census_pipeline.predict import FeatureEncoder, ThresholdRule
from census_pipeline.schema import CROSS
from census_pipeline.train import (
    effective_settings,
    fit_candidate,
    fixed_lightgbm_params,
    labels_of,
    read_clean_table,
    stratified_split,
)

log = logging.getLogger(__name__)

METHODS: Final = ("none", "reweighing", "group_thresholds", "threshold_optimizer")
SERVABLE: Final = ("none", "reweighing", "group_thresholds")
# The parities the trade-off reports: the two the policy chooses between, and two for context.
PARITIES: Final = ("fnr", "fdr", "fpr", "pprev")
SPLITS: Final = ("validation", "test")


@dataclass(frozen=True)
class TradeoffResult:
    table: Path
    summary_path: Path
    figure: Path
    summary: dict[str, Any]


@dataclass(frozen=True)
class Split:
    """One split's rows, labels and (per method) scores and labels."""

    frame: pd.DataFrame
    y: NDArray[np.int64]


def tradeoff(params: Params) -> TradeoffResult:
    """Build every method, judge each on both splits, write the table, summary and figure."""
    paths = params.paths
    outputs = [paths.tradeoff_table, paths.tradeoff_summary, paths.tradeoff_figure]
    with all_or_nothing(outputs):
        metadata = read_metadata(paths.model_metadata)
        results = measure(params, metadata)
        table = tradeoff_table(results)
        summary = {
            "configured": params.fairness.mitigation,
            "model_version": metadata.model_version,
            "servable": list(SERVABLE),
            "parities": list(PARITIES),
            "attributes": list(params.audit.audited_attributes),
            "band": [params.audit.tau, 1 / params.audit.tau],
            "methods": results,
        }
        replace_all(
            {
                paths.tradeoff_table: table.to_csv(index=False).encode("utf-8"),
                paths.tradeoff_summary: json_bytes(summary),
                paths.tradeoff_figure: tradeoff_png(results, params),
            }
        )
    log.info("tradeoff: %d methods on %d splits", len(results), len(SPLITS))
    return TradeoffResult(
        paths.tradeoff_table, paths.tradeoff_summary, paths.tradeoff_figure, summary
    )


def measure(params: Params, metadata: ModelMetadata) -> dict[str, dict[str, Any]]:
    """Per method and split: accuracy, ROC AUC, F1 and the audit's parity results."""
    train_frame = read_clean_table(params.paths.clean_train)
    test_frame = read_clean_table(params.paths.clean_test)
    encoder = FeatureEncoder(metadata.feature_names, metadata.categories)
    x, y = encoder.encode_frame(train_frame), labels_of(train_frame)
    fit_rows, val_rows = stratified_split(y, params.train.validation_share, params.seed)
    splits = {
        "validation": Split(train_frame.iloc[val_rows].reset_index(drop=True), y[val_rows]),
        "test": Split(test_frame, labels_of(test_frame)),
    }
    matrices = {"validation": x[val_rows], "test": encoder.encode_frame(test_frame)}
    settings = params.fairness
    scores: dict[str, dict[str, NDArray[np.float64]]] = {}
    labels: dict[str, dict[str, NDArray[np.int64]]] = {}
    for method, weighted in (("none", False), ("reweighing", True)):
        booster = _fit(params, metadata, train_frame, x, y, (fit_rows, val_rows), weighted)
        scores[method] = {s: np.asarray(booster.predict(m)) for s, m in matrices.items()}
        val = scores[method]["validation"]
        threshold, _ = metrics.best_fbeta_threshold(splits["validation"].y, val, 1.0)
        if method == "none":
            plain_threshold = threshold
        labels[method] = {s: metrics.labels_at(v, threshold) for s, v in scores[method].items()}
    scores["group_thresholds"] = scores["threshold_optimizer"] = scores["none"]
    validation = splits["validation"]
    fitted = mitigate.fit_group_thresholds(
        settings, validation.frame, validation.y, scores["none"]["validation"], plain_threshold
    )
    rule = ThresholdRule(plain_threshold, fitted)
    labels["group_thresholds"] = {
        s: (scores["none"][s] >= _rows(rule, split.frame, plain_threshold)).astype(np.int64)
        for s, split in splits.items()
    }
    labels["threshold_optimizer"] = _threshold_optimizer(
        fitted, splits, scores["none"], params.seed
    )
    return {
        method: {s: _judge(params, splits[s], scores[method][s], labels[method][s]) for s in SPLITS}
        for method in METHODS
    }


def _rows(rule: ThresholdRule, frame: pd.DataFrame, threshold: float) -> NDArray[np.float64]:
    rows = rule.for_frame(frame)
    return np.full(len(frame), threshold) if rows is None else rows


def _fit(
    params: Params,
    metadata: ModelMetadata,
    frame: pd.DataFrame,
    x: NDArray[np.float64],
    y: NDArray[np.int64],
    rows: tuple[NDArray[np.int64], NDArray[np.int64]],
    weighted: bool,
) -> lgb.Booster:
    """The model as train builds it, with the served model's chosen hyperparameters."""
    fit_rows, val_rows = rows
    reweigh = params.fairness.model_copy(update={"mitigation": "reweighing"})
    weights = mitigate.training_weights(reweigh, frame.iloc[fit_rows], y[fit_rows])[0]
    dataset = lgb.Dataset(
        x[fit_rows],
        y[fit_rows],
        weight=weights if weighted else None,
        feature_name=metadata.feature_names,
        categorical_feature=metadata.categorical_features,
        params={"verbosity": -1, "seed": params.seed},
        free_raw_data=False,
    )
    validation = dataset.create_valid(x[val_rows], y[val_rows])
    # The search's choice applied exactly as train applies it (tuning/best.json).
    settings, _ = effective_settings(params)
    base = {**settings.lightgbm, **fixed_lightgbm_params(settings, params.seed)}
    tuning = metadata.tuning
    chosen = tuning["candidates"][tuning["chosen"]]["params"] if tuning.get("candidates") else {}
    # Early-stopped: predict() uses the best iteration, as the saved model does.
    return fit_candidate(base, chosen, dataset, validation, settings).booster


def threshold_groups(fitted: GroupThresholds, frame: pd.DataFrame) -> NDArray[np.object_]:
    """Each row's group as the thresholds see it: the first grouping that has a threshold for
    it, else "(rest)" (labelled at the single threshold)."""
    out = np.full(len(frame), "(rest)", dtype=object)
    assigned = np.zeros(len(frame), dtype=bool)
    for grouping in fitted.groupings:
        name = CROSS.join(grouping)
        keys = mitigate.group_labels(frame, grouping).astype(object)
        hit = ~assigned & np.isin(keys, list(fitted.thresholds.get(name, {})))
        out[hit] = name + "=" + keys[hit]
        assigned |= hit
    return out


def _threshold_optimizer(
    fitted: GroupThresholds,
    splits: dict[str, Split],
    scores: dict[str, NDArray[np.float64]],
    seed: int,
) -> dict[str, NDArray[np.int64]]:
    """Fairlearn's ThresholdOptimizer on the scores, over the groups the thresholds use."""
    from fairlearn.postprocessing import ThresholdOptimizer

    optimizer = ThresholdOptimizer(
        estimator=_scores_estimator(),
        constraints="true_positive_rate_parity",
        objective="accuracy_score",
        prefit=True,
        predict_method="predict",
    )
    validation = splits["validation"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer.fit(
            scores["validation"].reshape(-1, 1),
            validation.y,
            sensitive_features=threshold_groups(fitted, validation.frame),
        )
        return {
            name: np.asarray(
                optimizer.predict(
                    scores[name].reshape(-1, 1),
                    sensitive_features=threshold_groups(fitted, split.frame),
                    random_state=seed,
                ),
                dtype=np.int64,
            )
            for name, split in splits.items()
        }


def _scores_estimator() -> Any:
    """A fitted scikit-learn classifier whose prediction is the score it is given: how
    ThresholdOptimizer takes scores computed elsewhere (`prefit=True`)."""
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Scores(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
        def fit(self, x: Any, y: Any) -> Scores:
            self.classes_ = np.array([0, 1])
            return self

        def predict(self, x: Any) -> NDArray[np.float64]:
            return np.asarray(x, dtype=np.float64)[:, 0]

    return Scores().fit(None, None)


def _judge(
    params: Params, split: Split, scores: NDArray[np.float64], predicted: NDArray[np.int64]
) -> dict[str, Any]:
    counts = metrics.confusion_rates(metrics.confusion(split.y, predicted))
    scored = split.frame.assign(label=split.y, prediction=predicted)
    # Only the statuses are compared: Aequitas's own significance tests were most of the stage.
    frame = audit_frame(scored, params.audit)
    table = group_table(frame, params.audit, aequitas_significance=False)
    return {
        "accuracy": counts["accuracy"],
        "roc_auc": metrics.roc_auc(split.y, scores),
        "f1": counts["f1"],
        "parities": {
            attribute: {p: _parity(table, attribute, p) for p in PARITIES}
            for attribute in params.audit.audited_attributes
        },
    }


def _parity(table: pd.DataFrame, attribute: str, parity: str) -> dict[str, Any]:
    """The group furthest from parity (unfair ones first), its disparity, p and status."""
    rows = table[(table["attribute"] == attribute) & ~table["is_reference"]]
    defined = rows[rows[f"{parity}_disparity"] > 0]
    unfair = defined[defined[f"{parity}_status"] == "unfair"]
    # A zero rate in a handful of people is no measurement: only an unfair group can lead.
    pool = unfair if len(unfair) else defined
    if pool.empty:
        return {"group": None, "disparity": None, "p_holm": None, "status": "undefined",
                "unfair": []}  # fmt: skip
    distances = pool[f"{parity}_disparity"].map(distance_from_parity)
    worst = pool.loc[distances.idxmax()]
    p_holm = float(worst[f"{parity}_p_holm"])
    return {
        "group": str(worst["group"]),
        "disparity": float(worst[f"{parity}_disparity"]),
        "p_holm": p_holm if math.isfinite(p_holm) else None,
        "status": str(worst[f"{parity}_status"]),
        "unfair": unfair["group"].astype(str).tolist(),
    }


def tradeoff_table(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    rows = []
    for method, splits in results.items():
        for split, result in splits.items():
            for attribute, parities in result["parities"].items():
                for parity, entry in parities.items():
                    rows.append(
                        {
                            "method": method,
                            "split": split,
                            "accuracy": result["accuracy"],
                            "roc_auc": result["roc_auc"],
                            "f1": result["f1"],
                            "attribute": attribute,
                            "parity": parity,
                            "worst_group": entry["group"],
                            "disparity": entry["disparity"],
                            "p_holm": entry["p_holm"],
                            "status": entry["status"],
                            "unfair_groups": ";".join(entry["unfair"]),
                        }
                    )
    return pd.DataFrame(rows)


_MARKERS: Final = {
    "none": "o",
    "reweighing": "s",
    "group_thresholds": "D",
    "threshold_optimizer": "^",
}
_COLOURS: Final = {
    "none": "#495057",
    "reweighing": "#e8590c",
    "group_thresholds": "#1c7ed6",
    "threshold_optimizer": "#9c36b5",
}


def tradeoff_png(results: dict[str, dict[str, Any]], params: Params) -> bytes:
    """Rows: FNR and FDR; columns: attributes. Worst disparity (log scale) against accuracy."""
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    attributes = list(params.audit.audited_attributes)
    fig = new_figure(4.0 * len(attributes), 7.0)
    axes = fig.subplots(2, len(attributes), squeeze=False)
    band = (math.log2(params.audit.tau), -math.log2(params.audit.tau))
    for row, parity in enumerate(("fnr", "fdr")):
        for col, attribute in enumerate(attributes):
            ax = axes[row][col]
            ax.axhspan(*band, color="#d3f9d8", zorder=0)
            ax.axhline(0.0, color="#868e96", lw=0.8)
            for method, splits in results.items():
                for split in SPLITS:
                    entry = splits[split]["parities"][attribute][parity]
                    if entry["disparity"] is None or entry["disparity"] <= 0:
                        continue
                    ax.scatter(
                        splits[split]["accuracy"],
                        math.log2(entry["disparity"]),
                        marker=_MARKERS[method],
                        s=45,
                        facecolors=_COLOURS[method] if split == "test" else "none",
                        edgecolors=_COLOURS[method],
                        label=f"{method} ({split})",
                        zorder=3,
                    )
            ax.set_title(f"{parity.upper()}: {attribute}", fontsize=9)
            ax.set_xlabel("accuracy", fontsize=8)
            ax.set_ylabel("worst group's disparity (log scale)", fontsize=8)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{2.0**v:.2g}"))
            ax.tick_params(labelsize=7)
            ax.xaxis.set_major_locator(MaxNLocator(4))
            ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], ls="", marker=_MARKERS[m], color=_COLOURS[m], label=m) for m in results
    ]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.suptitle(
        "Mitigations: worst group's disparity vs accuracy (green band fair; filled test, "
        "hollow validation)",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.07, right=0.98, top=0.91, bottom=0.14, wspace=0.3, hspace=0.45)
    return png_bytes(fig)
