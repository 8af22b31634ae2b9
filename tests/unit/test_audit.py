"""Audit: group metrics and disparities checked against counts done by hand on a tiny frame."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trust_samples import TINY_ROWS, as_categories, frame_from_rows, trust_project

from census_pipeline.audit import audit, audit_frame, fisher_p, group_table, holm
from census_pipeline.config import FAIRNESS_PARITIES, AuditParams, Params
from census_pipeline.errors import PipelineError

# Counted by hand from TINY_ROWS: (tp, fp, tn, fn) per group.
HAND = {
    ("sex", "Male"): (3, 1, 4, 2),
    ("sex", "Female"): (1, 1, 5, 1),
    ("race", "White"): (3, 2, 5, 1),
    ("race", "Black"): (1, 0, 4, 2),
    ("race x sex", "White x Male"): (2, 1, 2, 1),
    ("race x sex", "Black x Female"): (0, 0, 2, 1),
}


def _rates(tp: int, fp: int, tn: int, fn: int) -> dict[str, float]:
    def div(a: int, b: int) -> float:
        return a / b if b else math.nan

    n = tp + fp + tn + fn
    return {
        "fpr": div(fp, fp + tn),
        "fnr": div(fn, fn + tp),
        "fdr": div(fp, fp + tp),
        "for": div(fn, fn + tn),
        "pprev": div(tp + fp, n),
        "prev": div(tp + fn, n),
    }


@pytest.fixture(scope="module")
def tiny_table() -> pd.DataFrame:
    cfg = AuditParams()
    return group_table(audit_frame(frame_from_rows(TINY_ROWS), cfg), cfg)


def _row(table: pd.DataFrame, attribute: str, group: str) -> pd.Series:
    return table[(table["attribute"] == attribute) & (table["group"] == group)].iloc[0]


@pytest.mark.parametrize(("attribute", "group"), list(HAND))
def test_group_metrics_match_hand_counts(
    tiny_table: pd.DataFrame, attribute: str, group: str
) -> None:
    tp, fp, tn, fn = HAND[(attribute, group)]
    row = _row(tiny_table, attribute, group)
    assert (row["tp"], row["fp"], row["tn"], row["fn"]) == (tp, fp, tn, fn)
    for metric, expected in _rates(tp, fp, tn, fn).items():
        assert row[metric] == pytest.approx(expected, nan_ok=True), metric


def test_predicted_positive_share_is_out_of_all_positive_predictions(
    tiny_table: pd.DataFrame,
) -> None:
    # 6 positive predictions in all: 4 for men, 2 for women.
    assert _row(tiny_table, "sex", "Male")["ppr"] == pytest.approx(4 / 6)
    assert _row(tiny_table, "sex", "Female")["ppr"] == pytest.approx(2 / 6)


# Worked out from the hand counts above; order: fpr, fnr, fdr, for, pprev, prev.
DISPARITIES = {
    # Women against men.
    ("sex", "Female"): (5 / 6, 1.25, 2.0, 0.5, 0.625, 0.5),
    # Black against White.
    ("race", "Black"): (0.0, 8 / 3, 0.0, 2.0, 11 / 35, 33 / 28),
    # Black women against White men: no positive predictions, so FDR is undefined.
    ("race x sex", "Black x Female"): (0.0, 3.0, math.nan, 1.0, 0.0, 2 / 3),
}


@pytest.mark.parametrize(
    ("attribute", "group", "expected"),
    [(a, g, dict(zip(FAIRNESS_PARITIES, v, strict=True))) for (a, g), v in DISPARITIES.items()],
)
def test_disparities_against_the_reference_group(
    tiny_table: pd.DataFrame, attribute: str, group: str, expected: dict[str, float]
) -> None:
    row = _row(tiny_table, attribute, group)
    for metric, value in expected.items():
        assert row[f"{metric}_disparity"] == pytest.approx(value, nan_ok=True), metric


def test_reference_groups_are_marked_and_have_disparity_one(tiny_table: pd.DataFrame) -> None:
    refs = tiny_table[tiny_table["is_reference"]]
    assert sorted(refs["group"]) == ["Male", "White", "White x Male"]
    assert (refs["fpr_disparity"] == 1.0).all()
    assert (refs["fpr_status"] == "reference").all()


def test_tiny_groups_are_inconclusive_not_unfair(tiny_table: pd.DataFrame) -> None:
    # FDR 2.0 for women is far outside the band, but on two positive predictions.
    assert _row(tiny_table, "sex", "Female")["fdr_status"] == "inconclusive"
    assert _row(tiny_table, "sex", "Female")["fpr_status"] == "fair"  # 0.83 is inside


def test_a_large_enough_disparity_is_unfair() -> None:
    cfg = AuditParams()
    table = group_table(audit_frame(frame_from_rows(TINY_ROWS, repeat=100), cfg), cfg)
    female = _row(table, "sex", "Female")
    assert female["fdr_disparity"] == pytest.approx(2.0)
    assert female["fdr_p_holm"] < 0.05
    assert female["fdr_status"] == "unfair"


def test_zero_reference_rate_gives_an_undefined_disparity_not_ten() -> None:
    # Men get no false positives here, so women's FPR disparity is a division by zero.
    rows = (("White", "Male", 0, 0), ("White", "Male", 1, 1), ("White", "Female", 0, 1))
    cfg = AuditParams()
    table = group_table(audit_frame(frame_from_rows(rows), cfg), cfg)
    assert math.isnan(_row(table, "sex", "Female")["fpr_disparity"])
    assert _row(table, "sex", "Female")["fpr_status"] == "undefined"


def test_fisher_exact_known_value() -> None:
    # scipy's documented example: [[8, 2], [1, 5]] gives p = 0.0349650...
    assert fisher_p((8, 2), (1, 5)) == pytest.approx(0.034965034965)


def test_holm_adjustment_by_hand() -> None:
    adjusted = holm(np.array([0.01, 0.04, 0.03, np.nan]))
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3])


def test_audit_writes_table_summary_and_figures(tmp_path: Path) -> None:
    frame = as_categories(frame_from_rows(TINY_ROWS, repeat=100))
    params = trust_project(tmp_path, predictions=frame)
    result = audit(params)
    table = pd.read_csv(result.table)
    assert {"attribute", "group", "n", "fpr", "fpr_disparity", "fpr_p", "fpr_status"} <= set(
        table.columns
    )
    fpr = result.summary["parities"]["fpr"]
    female = next(g for g in fpr["groups"] if g["group"] == "Female")
    assert female["disparity"] == pytest.approx(5 / 6)
    assert result.summary["band"] == pytest.approx([0.8, 1.25])
    assert "sex=Female" in result.summary["parities"]["fdr"]["unfair"]
    for figure in result.figures:
        data = figure.read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) < 200_000


def test_missing_reference_group_is_a_clear_error(tmp_path: Path) -> None:
    refs = {"race": "Other", "sex": "Male", "race x sex": "White x Male"}
    params = trust_project(tmp_path, overrides={"audit.reference_groups": refs})
    with pytest.raises(PipelineError, match=r"reference_groups\.race: group 'Other' has no rows"):
        audit(params)


def test_every_audited_attribute_needs_a_reference_group() -> None:
    with pytest.raises(ValueError, match="reference_groups lacks"):
        AuditParams(reference_groups={"race": "White"})


def test_missing_predictions_column_is_a_clear_error(tmp_path: Path) -> None:
    params: Params = trust_project(
        tmp_path, predictions=frame_from_rows(TINY_ROWS).drop(columns="sex")
    )
    with pytest.raises(PipelineError, match="missing column"):
        audit(params)
