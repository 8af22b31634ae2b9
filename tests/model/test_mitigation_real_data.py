"""The mitigation trade-off on the real data (the session's pipeline run, tradeoff included)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from census_pipeline.config import Params
from census_pipeline.files import read_json


@pytest.fixture(scope="module")
def summary(carded_project: Params) -> dict[str, Any]:
    result: dict[str, Any] = read_json(carded_project.paths.tradeoff_summary)
    return result


def test_group_thresholds_meet_equal_opportunity_on_the_test_set(
    summary: dict[str, Any], carded_project: Params
) -> None:
    low, high = carded_project.audit.tau, 1 / carded_project.audit.tau
    test = summary["methods"]["group_thresholds"]["test"]
    for attribute in ("sex", "race"):
        fnr = test["parities"][attribute]["fnr"]
        assert low <= fnr["disparity"] <= high, (attribute, fnr)
        assert fnr["unfair"] == []
    # ...where the unmitigated model fails it (the reason for mitigating at all).
    plain = summary["methods"]["none"]["test"]["parities"]
    assert plain["sex"]["fnr"]["unfair"] == ["Female"] and "Black" in plain["race"]["fnr"]["unfair"]


def test_the_cost_is_small_and_the_scores_are_untouched(summary: dict[str, Any]) -> None:
    plain, grouped = (
        summary["methods"]["none"]["test"],
        summary["methods"]["group_thresholds"]["test"],
    )
    assert grouped["roc_auc"] == plain["roc_auc"]  # same model, other thresholds
    assert 0 <= plain["accuracy"] - grouped["accuracy"] < 0.005


def test_the_unmitigated_variant_is_the_served_model(
    summary: dict[str, Any], carded_project: Params
) -> None:
    metrics = read_json(carded_project.paths.metrics)
    plain = summary["methods"]["none"]["test"]
    assert plain["roc_auc"] == pytest.approx(metrics["roc_auc"], abs=1e-12)
    assert plain["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-12)


def test_the_table_lists_every_method_split_attribute_and_parity(carded_project: Params) -> None:
    table = pd.read_csv(carded_project.paths.tradeoff_table)
    assert set(table["method"]) == {"none", "reweighing", "group_thresholds", "threshold_optimizer"}
    counts = table.groupby(["method", "split"]).size()
    assert (counts == 3 * 4).all() and len(counts) == 8
    assert carded_project.paths.tradeoff_figure.read_bytes().startswith(b"\x89PNG")
