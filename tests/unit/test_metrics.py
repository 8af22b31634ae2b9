"""Our metric functions against scikit-learn's on small arrays (with ties and edge cases)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.typing import NDArray
from sklearn import metrics as sk
from sklearn.calibration import calibration_curve

from census_pipeline import metrics


def _sample(seed: int, n: int = 60) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    # Rounded scores make ties, which the curves must not split.
    scores = np.clip(np.round(0.35 * y + rng.random(n) * 0.65, 2), 0, 1)
    return y, scores


SEEDS = [0, 1, 2, 3]


@pytest.mark.parametrize("seed", SEEDS)
def test_threshold_metrics_match(seed: int) -> None:
    y, scores = _sample(seed)
    pred = (scores >= 0.5).astype(int)
    counts = metrics.confusion(y, pred)
    tn, fp, fn, tp = sk.confusion_matrix(y, pred).ravel()
    assert (counts.tn, counts.fp, counts.fn, counts.tp) == (tn, fp, fn, tp)
    at = metrics.confusion_rates(counts, beta=2.0)
    assert at["precision"] == pytest.approx(sk.precision_score(y, pred))
    assert at["recall"] == pytest.approx(sk.recall_score(y, pred))
    assert at["f1"] == pytest.approx(sk.f1_score(y, pred))
    assert at["fbeta"] == pytest.approx(sk.fbeta_score(y, pred, beta=2.0))
    assert at["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert at["fpr"] == pytest.approx(fp / (fp + tn))
    assert at["fnr"] == pytest.approx(1 - sk.recall_score(y, pred))


@pytest.mark.parametrize("seed", SEEDS)
def test_ranking_and_probability_metrics_match(seed: int) -> None:
    y, scores = _sample(seed)
    assert metrics.roc_auc(y, scores) == pytest.approx(sk.roc_auc_score(y, scores))
    assert metrics.average_precision(y, scores) == pytest.approx(
        sk.average_precision_score(y, scores)
    )
    assert metrics.log_loss(y, scores) == pytest.approx(sk.log_loss(y, scores))
    assert metrics.brier(y, scores) == pytest.approx(sk.brier_score_loss(y, scores))


@pytest.mark.parametrize("seed", SEEDS)
def test_curves_match(seed: int) -> None:
    y, scores = _sample(seed)
    fpr, tpr, thresholds = metrics.roc_curve(y, scores)
    sk_fpr, sk_tpr, sk_thresholds = sk.roc_curve(y, scores, drop_intermediate=False)
    np.testing.assert_allclose(fpr, sk_fpr)
    np.testing.assert_allclose(tpr, sk_tpr)
    np.testing.assert_allclose(thresholds[1:], sk_thresholds[1:])
    recall, precision, pr_thresholds = metrics.precision_recall_curve(y, scores)
    sk_precision, sk_recall, sk_pr_thresholds = sk.precision_recall_curve(y, scores)
    # scikit-learn lists ascending thresholds and appends the (recall 0, precision 1) end point.
    np.testing.assert_allclose(recall, sk_recall[:-1][::-1])
    np.testing.assert_allclose(precision, sk_precision[:-1][::-1])
    np.testing.assert_allclose(pr_thresholds, sk_pr_thresholds[::-1])


@pytest.mark.parametrize("seed", SEEDS)
def test_calibration_matches(seed: int) -> None:
    y, scores = _sample(seed, n=200)
    table = metrics.calibration(y, scores, bins=5)
    fraction, mean = calibration_curve(y, scores, n_bins=5, strategy="uniform")
    np.testing.assert_allclose(table.fraction_positive, fraction)
    np.testing.assert_allclose(table.mean_predicted, mean)
    assert table.count.sum() == y.size


def test_undefined_ratios_are_nan_not_zero() -> None:
    y = np.zeros(5, dtype=int)
    at = metrics.confusion_rates(metrics.confusion(y, np.zeros(5, dtype=int)))
    assert np.isnan(at["precision"]) and np.isnan(at["recall"]) and np.isnan(at["fnr"])
    assert at["fpr"] == 0.0 and at["accuracy"] == 1.0
    assert sk.precision_score(y, np.zeros(5, dtype=int), zero_division=np.nan) != 0


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
def test_best_threshold_maximises_fbeta(beta: float) -> None:
    y, scores = _sample(5, n=120)
    threshold, best = metrics.best_fbeta_threshold(y, scores, beta)
    candidates = np.unique(scores)
    brute = max(sk.fbeta_score(y, scores >= t, beta=beta) for t in candidates)
    assert best == pytest.approx(brute)
    assert sk.fbeta_score(y, scores >= threshold, beta=beta) == pytest.approx(brute)
    # The threshold lies strictly between observed scores, away from any tie.
    assert threshold not in set(scores.tolist())


def test_summary_reports_both_accuracies() -> None:
    y, scores = _sample(9)
    result = metrics.summary(y, scores, threshold=0.3, beta=1.0)
    assert result["accuracy"] == pytest.approx(sk.accuracy_score(y, scores >= 0.3))
    assert result["accuracy_at_half"] == pytest.approx(sk.accuracy_score(y, scores >= 0.5))
    assert result["n"] == y.size and result["positives"] == y.sum()
