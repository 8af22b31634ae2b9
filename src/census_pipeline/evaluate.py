"""Evaluate the trained model on the official test set: metrics, curves, predictions, slices.

The model is loaded through the `Predictor` (digest verified) and scored exactly as the service
scores; the threshold is the one stored with the model, chosen on the validation split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline import metrics
from census_pipeline.config import Params
from census_pipeline.files import atomic_path, write_json_atomic, write_text_atomic
from census_pipeline.predict import Predictor
from census_pipeline.schema import CATEGORICAL
from census_pipeline.slices import SliceSettings, render_slice_output, slice_metrics
from census_pipeline.train import labels_of, read_clean_table

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    slices: pd.DataFrame
    metrics_path: Path
    slices_path: Path


def evaluate(params: Params) -> EvaluateResult:
    paths = params.paths
    with Predictor.from_files(paths.model_file, paths.model_metadata) as predictor:
        test = read_clean_table(paths.clean_test)
        scores = predictor.predict_frame(test).probabilities
        meta = predictor.metadata
    label = labels_of(test)
    prediction = (scores >= meta.threshold).astype(np.int64)
    overall = overall_metrics(label, scores, meta.threshold, meta.fbeta_beta)
    overall.update(threshold_rule=meta.threshold_rule, model_version=meta.model_version)
    write_json_atomic(paths.metrics, overall)
    write_curves(params, label, scores)
    write_predictions(paths.test_predictions, test, label, scores, prediction)

    settings = slice_settings(params)
    groupings = [(f,) for f in CATEGORICAL] + [tuple(c) for c in params.evaluate.crossings]
    table = slice_metrics(test, label, prediction, groupings, settings)
    write_csv(paths.slices, table)
    heading = [
        f"Performance on slices of the official test set: model {meta.model_version}, "
        f"threshold {meta.threshold:.4f}: '>50K' at or above it; it {meta.threshold_rule}.",
        f"Overall: n={len(test)}, precision {overall['precision']:.3f}, recall "
        f"{overall['recall']:.3f}, F{meta.fbeta_beta:g} {overall['fbeta']:.3f}.",
    ]
    write_text_atomic(paths.slice_output, render_slice_output(table, heading, settings))
    log.info("evaluated %s: ROC AUC %.4f", meta.model_version, overall["roc_auc"])
    return EvaluateResult(overall, table, paths.metrics, paths.slices)


def slice_settings(params: Params) -> SliceSettings:
    ev = params.evaluate
    return SliceSettings(ev.bootstrap_resamples, ev.min_slice_size, ev.confidence, params.seed)


def overall_metrics(
    label: NDArray[np.int64], scores: NDArray[np.float64], threshold: float, beta: float
) -> dict[str, Any]:
    """Flat numeric keys (what `dvc metrics show` lists) plus the confusion matrix."""
    result: dict[str, Any] = {"threshold": threshold, "fbeta_beta": beta}
    result.update(metrics.summary(label, scores, threshold, beta))
    result["n"], result["positives"] = int(result["n"]), int(result["positives"])
    result["confusion_matrix"] = metrics.confusion(label, scores >= threshold).as_dict()
    return result


def downsample(length: int, points: int) -> NDArray[np.int64]:
    """Evenly spaced indices that always keep both ends of a curve."""
    if length <= points:
        return np.arange(length, dtype=np.int64)
    return np.unique(np.linspace(0, length - 1, points).round().astype(np.int64))


def write_curves(params: Params, label: NDArray[np.int64], scores: NDArray[np.float64]) -> None:
    points = params.evaluate.curve_points
    fpr, tpr, roc_thresholds = metrics.roc_curve(label, scores)
    keep = downsample(fpr.size, points)
    roc = {"fpr": fpr[keep], "tpr": tpr[keep], "threshold": roc_thresholds[keep]}
    recall, precision, pr_thresholds = metrics.precision_recall_curve(label, scores)
    keep = downsample(recall.size, points)
    pr = {"recall": recall[keep], "precision": precision[keep], "threshold": pr_thresholds[keep]}
    table = metrics.calibration(label, scores, params.evaluate.calibration_bins)
    calibration = {
        "bin": table.bin,
        "mean_predicted": table.mean_predicted,
        "fraction_positive": table.fraction_positive,
        "count": table.count,
    }
    for name, columns in (("roc", roc), ("pr", pr), ("calibration", calibration)):
        write_csv(params.paths.curve(name), pd.DataFrame(columns))


def write_predictions(
    path: Path,
    test: pd.DataFrame,
    label: NDArray[np.int64],
    scores: NDArray[np.float64],
    prediction: NDArray[np.int64],
) -> None:
    scored = test.assign(label=label, score=scores, prediction=prediction)
    with atomic_path(path) as tmp:
        scored.to_parquet(tmp, index=False)


def write_csv(path: Path, frame: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.6g", na_rep="NaN")
