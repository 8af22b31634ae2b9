"""Evaluate the trained model on the official test set: metrics, curves, predictions, slices.

The model is loaded through the `Predictor` (digest verified) and scored exactly as the service
scores; the threshold is the one stored with the model, chosen on the validation split.
metrics.json holds numbers only (DVC's metrics file); identity.json names the model evaluated,
the bootstrap settings and the sha256 of every other file written, for the gate and the card.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline import metrics
from census_pipeline.config import PREDICTIONS_MODEL_KEY, Params, PathsParams
from census_pipeline.files import (
    all_or_nothing,
    json_bytes,
    parquet_bytes,
    replace_all,
    sha256_bytes,
)
from census_pipeline.predict import Predictor
from census_pipeline.schema import CATEGORICAL
from census_pipeline.slices import SliceSettings, render_slice_output, slice_metrics
from census_pipeline.train import labels_of, read_clean_table

log = logging.getLogger(__name__)

CURVES = ("roc", "pr", "calibration")


@dataclass(frozen=True)
class EvaluateResult:
    metrics: dict[str, Any]
    slices: pd.DataFrame
    metrics_path: Path
    slices_path: Path
    identity: dict[str, Any]


def outputs(paths: PathsParams) -> list[Path]:
    """Every file evaluate writes; identity.json last, since it names the digests of the others."""
    return [
        *(paths.curve(name) for name in CURVES),
        paths.slices,
        paths.importance,
        paths.slice_output,
        paths.test_predictions,
        paths.metrics,
        paths.evaluation_identity,
    ]


def evaluate(params: Params) -> EvaluateResult:
    """Compute every output first, then write them; after a failure none of them is left, so
    the audit and the gate can never pair this run's files with an earlier run's."""
    paths = params.paths
    with all_or_nothing(outputs(paths)):
        overall, table, files = _evaluation(params)
        replace_all(files)
        identity = json.loads(files[paths.evaluation_identity])
    log.info("evaluated %s: ROC AUC %.4f", identity["model_version"], overall["roc_auc"])
    return EvaluateResult(overall, table, paths.metrics, paths.slices, identity)


def _evaluation(params: Params) -> tuple[dict[str, Any], pd.DataFrame, dict[Path, bytes]]:
    paths = params.paths
    with Predictor.from_files(paths.model_file, paths.model_metadata) as predictor:
        test = read_clean_table(paths.clean_test)
        scored = predictor.predict_frame(test)
        meta = predictor.metadata
        contributions = predictor.contributions_frame(test, num_threads=0)
        importance = feature_importance(predictor.feature_names, contributions)
    scores = scored.probabilities
    label = labels_of(test)
    # The predictor's labels: its group thresholds, when the model carries them.
    prediction = scored.positive.astype(np.int64)
    overall = overall_metrics(label, scores, meta.threshold, meta.fbeta_beta, prediction)

    settings = slice_settings(params)
    groupings = [(f,) for f in CATEGORICAL] + [tuple(c) for c in params.evaluate.crossings]
    table = slice_metrics(test, label, prediction, groupings, settings)
    heading = [
        f"Performance on slices of the official test set: model {meta.model_version}, "
        f"threshold {meta.threshold:.4f}: '>50K' at or above it; it {meta.threshold_rule}.",
        f"Overall: n={len(test)}, precision {overall['precision']:.3f}, recall "
        f"{overall['recall']:.3f}, F{meta.fbeta_beta:g} {overall['fbeta']:.3f}.",
    ]
    files = curve_files(params, label, scores)
    files[paths.slices] = csv_bytes(table)
    files[paths.importance] = csv_bytes(importance)
    files[paths.slice_output] = render_slice_output(table, heading, settings).encode("utf-8")
    files[paths.test_predictions] = predictions_bytes(
        test, label, scores, prediction, meta.model_sha256
    )
    files[paths.metrics] = json_bytes(overall)
    identity = {
        "model_version": meta.model_version,
        "model_sha256": meta.model_sha256,
        "threshold_rule": meta.threshold_rule,
        "mitigation": meta.mitigation.method if meta.mitigation is not None else "none",
        "slice_settings": {
            "confidence": settings.confidence,
            "bootstrap_resamples": settings.resamples,
            "min_slice_size": settings.min_size,
            "seed": settings.seed,
        },
        # What this evaluation wrote: the gate refuses files that differ.
        "outputs_sha256": {
            "metrics": sha256_bytes(files[paths.metrics]),
            "slices": sha256_bytes(files[paths.slices]),
            "test_predictions": sha256_bytes(files[paths.test_predictions]),
        },
    }
    files[paths.evaluation_identity] = json_bytes(identity)
    return overall, table, files


def feature_importance(names: list[str], contributions: NDArray[np.float64]) -> pd.DataFrame:
    """Global importance: each feature's mean |SHAP value| (log-odds) over the test set."""
    mean_abs = np.abs(contributions).mean(axis=0)
    table = pd.DataFrame({"feature": names, "mean_abs_shap": mean_abs})
    return table.sort_values("mean_abs_shap", ascending=False, kind="stable")


def slice_settings(params: Params) -> SliceSettings:
    ev = params.evaluate
    return SliceSettings(ev.bootstrap_resamples, ev.min_slice_size, ev.confidence, params.seed)


def overall_metrics(
    label: NDArray[np.int64],
    scores: NDArray[np.float64],
    threshold: float,
    beta: float,
    prediction: NDArray[np.int64] | None = None,
) -> dict[str, Any]:
    """Numbers only (what `dvc metrics show` lists), the confusion matrix nested; the strings and
    digests that name the evaluation go to identity.json, so `dvc exp show` stays readable.

    `prediction`: the predictor's labels, when they are not simply `scores >= threshold`.
    """
    labels = metrics.labels_at(scores, threshold) if prediction is None else prediction
    result: dict[str, Any] = {"threshold": threshold, "fbeta_beta": beta}
    result.update(metrics.summary(label, scores, threshold, beta, labels))
    result["n"], result["positives"] = int(result["n"]), int(result["positives"])
    result["confusion_matrix"] = metrics.confusion(label, labels).as_dict()
    return result


def downsample(length: int, points: int) -> NDArray[np.int64]:
    """Evenly spaced indices that always keep both ends of a curve."""
    if length <= points:
        return np.arange(length, dtype=np.int64)
    return np.unique(np.linspace(0, length - 1, points).round().astype(np.int64))


def curve_files(
    params: Params, label: NDArray[np.int64], scores: NDArray[np.float64]
) -> dict[Path, bytes]:
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
    curves: dict[str, dict[str, Any]] = {"roc": roc, "pr": pr, "calibration": calibration}
    return {params.paths.curve(name): csv_bytes(pd.DataFrame(curves[name])) for name in CURVES}


def predictions_bytes(
    test: pd.DataFrame,
    label: NDArray[np.int64],
    scores: NDArray[np.float64],
    prediction: NDArray[np.int64],
    model_sha256: str,
) -> bytes:
    """The scored test table as Parquet, naming the model that scored it in its metadata."""
    scored = test.assign(label=label, score=scores, prediction=prediction)
    return parquet_bytes(scored, {PREDICTIONS_MODEL_KEY: model_sha256})


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format="%.6g", na_rep="NaN").encode("utf-8")
