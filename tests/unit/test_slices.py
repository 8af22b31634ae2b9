"""Slice metrics against values worked out by hand on an eight-row frame, and the bootstrap."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from census_pipeline.schema import CATEGORY_DOMAINS
from census_pipeline.slices import (
    SliceSettings,
    bootstrap_intervals,
    render_slice_output,
    slice_metrics,
)

NAN = float("nan")
SETTINGS = SliceSettings(resamples=500, min_size=4, confidence=0.95, seed=3)


def _category(name: str, values: Sequence[str | None]) -> pd.Categorical:
    return pd.Categorical(np.array(values, dtype=object), categories=list(CATEGORY_DOMAINS[name]))


@pytest.fixture
def tiny() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.DataFrame(
        {
            "sex": _category("sex", ["Female"] * 4 + ["Male"] * 4),
            "race": _category("race", ["White", "White", "Black", "Black"] * 2),
            "occupation": _category("occupation", ["Sales"] * 6 + [None, None]),
        }
    )
    label = np.array([1, 0, 1, 0, 1, 1, 1, 0])
    prediction = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    return frame, label, prediction


def _table(tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> pd.DataFrame:
    frame, label, prediction = tiny
    groupings = [("sex",), ("race",), ("occupation",), ("race", "sex")]
    return slice_metrics(frame, label, prediction, groupings, SETTINGS).set_index(
        ["feature", "value"]
    )


# Worked out by hand: (n, positives, precision, recall, f1, fpr, fnr).
EXPECTED = {
    # Female: tp, fp, fn, tn.
    ("sex", "Female"): (4, 2, 0.5, 0.5, 0.5, 0.5, 0.5),
    # Male: tp, tp, fn, tn.
    ("sex", "Male"): (4, 3, 1.0, 2 / 3, 0.8, 0.0, 1 / 3),
    # White: tp, fp, tp, tp.
    ("race", "White"): (4, 3, 0.75, 1.0, 6 / 7, 1.0, 0.0),
    # Black: fn, tn, fn, tn; nothing predicted positive, so precision is undefined.
    ("race", "Black"): (4, 2, NAN, 0.0, 0.0, 0.0, 1.0),
    ("occupation", "Sales"): (6, 4, 0.75, 0.75, 0.75, 0.5, 0.25),
    ("occupation", "missing"): (2, 1, NAN, 0.0, 0.0, 0.0, 1.0),
    ("race x sex", "White x Female"): (2, 1, 0.5, 1.0, 2 / 3, 1.0, 0.0),
    # Both rows positive and caught: no negatives, so the false positive rate is undefined.
    ("race x sex", "White x Male"): (2, 2, 1.0, 1.0, 1.0, NAN, 0.0),
    ("race x sex", "Black x Female"): (2, 1, NAN, 0.0, 0.0, 0.0, 1.0),
    ("race x sex", "Black x Male"): (2, 1, NAN, 0.0, 0.0, 0.0, 1.0),
}
COLUMNS = ["n", "positives", "precision", "recall", "f1", "fpr", "fnr"]


def test_slices_match_hand_computed_values(
    tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    table = _table(tiny)
    assert set(table.index) == set(EXPECTED)  # empty values (e.g. race=Other) are left out
    for key, expected in EXPECTED.items():
        np.testing.assert_allclose(
            table.loc[key, COLUMNS].to_numpy(float), expected, err_msg=str(key)
        )


def test_small_slices_are_flagged(tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    table = _table(tiny)
    assert not table.loc[("sex", "Female"), "small"]
    assert table.loc[("race x sex", "White x Male"), "small"]


def test_intervals_hold_the_estimate_and_nan_where_undefined(
    tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray],
) -> None:
    table = _table(tiny)
    for metric in ("precision", "recall", "f1", "fpr", "fnr"):
        point, low, high = (table[c] for c in (metric, f"{metric}_ci_low", f"{metric}_ci_high"))
        defined = point.notna()
        assert (low[defined] <= point[defined] + 1e-12).all()
        assert (point[defined] <= high[defined] + 1e-12).all()
        assert low[~defined].isna().all() and high[~defined].isna().all()
    # A slice whose rows are all true positives resamples to precision 1 every time.
    key = ("race x sex", "White x Male")
    assert table.at[key, "precision_ci_low"] == table.at[key, "precision_ci_high"] == 1.0


def test_the_bootstrap_is_seeded(tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    small_frame, small_label, small_prediction = tiny
    # Forty copies, so the intervals are not pinned to the few values four rows allow.
    frame = pd.concat([small_frame] * 40, ignore_index=True)
    label, prediction = np.tile(small_label, 40), np.tile(small_prediction, 40)
    again = slice_metrics(frame, label, prediction, [("sex",)], SETTINGS)
    assert again.equals(slice_metrics(frame, label, prediction, [("sex",)], SETTINGS))
    other = SliceSettings(SETTINGS.resamples, SETTINGS.min_size, SETTINGS.confidence, seed=4)
    assert not again.equals(slice_metrics(frame, label, prediction, [("sex",)], other))


def test_count_bootstrap_agrees_with_resampling_rows() -> None:
    """Drawing counts from a multinomial is the row bootstrap, without the rows."""
    rng = np.random.default_rng(0)
    label = rng.integers(0, 2, 400)
    prediction = np.where(rng.random(400) < 0.8, label, 1 - label)
    cells = 2 * label + prediction
    counts = np.bincount(cells, minlength=4)[None, :]
    settings = SliceSettings(resamples=4000, min_size=1, confidence=0.9, seed=1)
    low, high = bootstrap_intervals(counts, settings)["recall"]
    rows = rng.integers(0, 400, size=(4000, 400))
    tp = ((label[rows] == 1) & (prediction[rows] == 1)).sum(axis=1)
    recall = tp / (label[rows] == 1).sum(axis=1)
    expected_low, expected_high = np.percentile(recall, [5, 95])
    assert low[0] == pytest.approx(expected_low, abs=0.01)
    assert high[0] == pytest.approx(expected_high, abs=0.01)


def test_the_report_reads_like_the_table(tiny: tuple[pd.DataFrame, np.ndarray, np.ndarray]) -> None:
    frame, label, prediction = tiny
    table = slice_metrics(frame, label, prediction, [("sex",), ("race", "sex")], SETTINGS)
    text = render_slice_output(table, ["Heading line"], SETTINGS)
    assert text.startswith("Heading line\n")
    assert "== sex ==" in text and "== race x sex ==" in text
    female = next(line for line in text.splitlines() if line.startswith("Female"))
    assert "0.500 [" in female and female.split()[1:3] == ["4", "2"]
    black_female = next(line for line in text.splitlines() if line.startswith("Black x Female"))
    assert "Black x Female *" in black_female and "n/a" in black_female
