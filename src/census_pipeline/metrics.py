"""Classification metrics in plain numpy, shared by training (validation) and evaluation (test).

Written out rather than imported from scikit-learn so the threshold rule, the curves and the
slice metrics all use one definition of each metric; the unit tests pin them to scikit-learn's.
A ratio whose denominator is zero is NaN ("undefined"), never silently 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def labels_at(probabilities: ArrayLike, threshold: float) -> IntArray:
    """The labelling rule: 1 (">50K") where the probability is at or above the threshold.

    The one place the rule is written for evaluation and metrics; the predictor applies the same
    comparison (`probability >= threshold`).
    """
    return (np.asarray(probabilities, dtype=np.float64) >= threshold).astype(np.int64)


@dataclass(frozen=True)
class Confusion:
    tn: int
    fp: int
    fn: int
    tp: int

    @property
    def n(self) -> int:
        return self.tn + self.fp + self.fn + self.tp

    def as_dict(self) -> dict[str, int]:
        return {"tn": self.tn, "fp": self.fp, "fn": self.fn, "tp": self.tp}


def confusion(y_true: ArrayLike, y_pred: ArrayLike) -> Confusion:
    truth = np.asarray(y_true).astype(bool)
    pred = np.asarray(y_pred).astype(bool)
    tp = int(np.count_nonzero(truth & pred))
    fp = int(np.count_nonzero(~truth & pred))
    fn = int(np.count_nonzero(truth & ~pred))
    return Confusion(tn=truth.size - tp - fp - fn, fp=fp, fn=fn, tp=tp)


def ratio(numerator: ArrayLike, denominator: ArrayLike) -> FloatArray:
    """numerator / denominator, NaN where the denominator is 0 (works on scalars and arrays)."""
    num = np.asarray(numerator, dtype=np.float64)
    den = np.asarray(denominator, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def rates(
    tn: ArrayLike, fp: ArrayLike, fn: ArrayLike, tp: ArrayLike, beta: float = 1.0
) -> dict[str, FloatArray]:
    """Count-based metrics, vectorised so the bootstrap can pass whole arrays of resamples."""
    tn, fp, fn, tp = (np.asarray(a, dtype=np.float64) for a in (tn, fp, fn, tp))
    b2 = beta * beta
    return {
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "fbeta": ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp),
        "fpr": ratio(fp, fp + tn),
        "fnr": ratio(fn, fn + tp),
        "accuracy": ratio(tp + tn, tn + fp + fn + tp),
    }


def confusion_rates(counts: Confusion, beta: float = 1.0) -> dict[str, float]:
    values = rates(
        np.float64(counts.tn), np.float64(counts.fp), np.float64(counts.fn), np.float64(counts.tp),
        beta,
    )  # fmt: skip
    return {name: float(value) for name, value in values.items()}


def _descending(y_true: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Cumulative true and false positives at each distinct score, highest score first."""
    truth = np.asarray(y_true).astype(np.float64)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")[::-1]
    s, truth = s[order], truth[order]
    # The last index of each run of equal scores: a threshold cannot split tied rows.
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps = np.cumsum(truth)[last]
    fps = (last + 1) - tps
    return tps, fps, s[last]


def roc_curve(y_true: ArrayLike, scores: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(fpr, tpr, thresholds), starting at (0, 0) with threshold +inf like scikit-learn."""
    tps, fps, thresholds = _descending(y_true, scores)
    tps, fps = np.r_[0.0, tps], np.r_[0.0, fps]
    return ratio(fps, fps[-1]), ratio(tps, tps[-1]), np.r_[np.inf, thresholds]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    fpr, tpr, _ = roc_curve(y_true, scores)
    return float(np.trapezoid(tpr, fpr))


def precision_recall_curve(
    y_true: ArrayLike, scores: ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(recall, precision, thresholds) from the highest threshold down."""
    tps, fps, thresholds = _descending(y_true, scores)
    return ratio(tps, tps[-1]), ratio(tps, tps + fps), thresholds


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """PR AUC as the step-wise sum of precision times recall gained (no interpolation)."""
    recall, precision, _ = precision_recall_curve(y_true, scores)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def log_loss(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    truth = np.asarray(y_true).astype(np.float64)
    eps = np.finfo(np.float64).eps
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(truth * np.log(p) + (1 - truth) * np.log1p(-p)))


def brier(y_true: ArrayLike, probabilities: ArrayLike) -> float:
    truth = np.asarray(y_true).astype(np.float64)
    return float(np.mean((np.asarray(probabilities, dtype=np.float64) - truth) ** 2))


@dataclass(frozen=True)
class CalibrationTable:
    bin: IntArray
    mean_predicted: FloatArray
    fraction_positive: FloatArray
    count: IntArray


def calibration(y_true: ArrayLike, probabilities: ArrayLike, bins: int) -> CalibrationTable:
    """Equal-width probability bins, each (low, high] (the first includes 0); empty ones left out.

    Edges are compared, not computed as p * bins, so a score on an edge lands predictably.
    """
    truth = np.asarray(y_true).astype(np.float64)
    p = np.asarray(probabilities, dtype=np.float64)
    inner_edges = np.linspace(0.0, 1.0, bins + 1)[1:-1]
    index = np.searchsorted(inner_edges, p, side="left").astype(np.int64)
    count = np.bincount(index, minlength=bins)
    kept = np.flatnonzero(count)
    return CalibrationTable(
        bin=kept.astype(np.int64),
        mean_predicted=np.bincount(index, weights=p, minlength=bins)[kept] / count[kept],
        fraction_positive=np.bincount(index, weights=truth, minlength=bins)[kept] / count[kept],
        count=count[kept].astype(np.int64),
    )


def best_fbeta_threshold(y_true: ArrayLike, scores: ArrayLike, beta: float) -> tuple[float, float]:
    """The threshold maximising F-beta, and that F-beta.

    Positive means score >= threshold. The threshold sits halfway between the lowest score
    predicted positive and the next lower score, so a rounding-level change of a score does not
    move a row across it.
    """
    tps, fps, thresholds = _descending(y_true, scores)
    positives = tps[-1]
    b2 = beta * beta
    fbeta = ratio((1 + b2) * tps, (1 + b2) * tps + b2 * (positives - tps) + fps)
    best = int(np.nanargmax(fbeta))
    below = thresholds[best + 1] if best + 1 < thresholds.size else 0.0
    return float((thresholds[best] + below) / 2), float(fbeta[best])


def summary(
    y_true: ArrayLike,
    probabilities: ArrayLike,
    threshold: float,
    beta: float,
    predicted: ArrayLike | None = None,
) -> dict[str, float]:
    """The scalar metrics of one scored set: threshold-free ones plus those at `threshold`.

    `predicted` overrides the labels at `threshold` when the model labels each group at its own
    threshold (the `group_thresholds` mitigation); the predictor's labels are then the truth.
    """
    truth = np.asarray(y_true).astype(np.int64)
    scores = np.asarray(probabilities, dtype=np.float64)
    labels = labels_at(scores, threshold) if predicted is None else np.asarray(predicted)
    counts = confusion(truth, labels.astype(np.int64))
    at = confusion_rates(counts, beta)
    return {
        "n": float(truth.size),
        "positives": float(truth.sum()),
        "prevalence": float(ratio(truth.sum(), truth.size)),
        "precision": at["precision"],
        "recall": at["recall"],
        "fbeta": at["fbeta"],
        "f1": at["f1"],
        "fpr": at["fpr"],
        "accuracy": at["accuracy"],
        "accuracy_at_half": confusion_rates(confusion(truth, labels_at(scores, 0.5)))["accuracy"],
        "roc_auc": roc_auc(truth, scores),
        "pr_auc": average_precision(truth, scores),
        "log_loss": log_loss(truth, scores),
        "brier": brier(truth, scores),
    }
