"""drift: profiles are JSON, binning follows the reference, PSI finds shift and only shift."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from census_pipeline.drift import (
    EPSILON,
    MISSING,
    build_profile,
    check_profile,
    compare,
    feature_bins,
    level,
    psi,
    quantile_edges,
)


def _table(n: int, seed: int, age_shift: float = 0.0, female: float = 0.3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": np.clip(rng.normal(40 + age_shift, 12, n).round(), 17, 90).astype(int),
            "capital-gain": np.where(rng.random(n) < 0.9, 0, rng.integers(1, 20000, n)),
            "sex": np.where(rng.random(n) < female, "Female", "Male"),
            "workclass": pd.Series(rng.choice(["Private", "State-gov", ""], n)).replace("", None),
            "salary": np.where(rng.random(n) < 0.25, ">50K", "<=50K"),
        }
    )


def _profile(frame: pd.DataFrame) -> dict[str, Any]:
    return build_profile(frame, numeric=["age", "capital-gain"], categorical=["sex", "workclass"])


def test_profile_is_json_and_shares_sum_to_one() -> None:
    profile = _profile(_table(5000, 1))
    assert json.loads(json.dumps(profile)) == profile
    assert profile["rows"] == 5000 and 0.2 < profile["label_share"] < 0.3
    for entry in profile["numeric"].values():
        assert math.isclose(sum(entry["shares"]) + entry["missing_share"], 1.0)
        assert len(entry["shares"]) == len(entry["edges"]) + 1
    workclass = profile["categorical"]["workclass"]
    assert 0.25 < workclass["missing_share"] < 0.42
    assert set(workclass["shares"]) == {"Private", "State-gov"}


def test_quantile_edges_merge_ties_and_keep_the_top_bin_populated() -> None:
    values = np.array([0.0] * 90 + list(range(1, 11)), dtype="float64")
    edges = quantile_edges(values, 10)
    assert edges == sorted(set(edges)) and edges[0] == 0.0
    assert max(edges) < 10
    assert quantile_edges(np.array([np.nan, np.nan]), 10) == []


def test_same_population_is_stable_and_a_shift_is_found_where_it_is() -> None:
    reference = _profile(_table(20000, 1))
    same = compare(reference, _table(20000, 2))
    assert same["max_psi"] < 0.02
    assert {f["level"] for f in same["features"].values()} == {"stable"}
    shifted = compare(reference, _table(20000, 3, age_shift=15, female=0.6))
    features = shifted["features"]
    assert features["age"]["level"] == "major" and features["sex"]["psi"] > 0.1
    assert features["capital-gain"]["level"] == "stable"
    assert shifted["max_psi_feature"] == "age"
    assert shifted["rows"] == {"reference": 20000, "current": 20000}


def test_profile_against_profile_equals_profile_against_table() -> None:
    reference = _profile(_table(3000, 1))
    table = _table(3000, 4, age_shift=5)
    via_profile = compare(reference, build_profile(table, reference=reference))
    assert via_profile == compare(reference, table)


def test_different_edges_are_refused() -> None:
    one, other = _profile(_table(3000, 1)), _profile(_table(3000, 5, age_shift=20))
    with pytest.raises(ValueError, match="different bin edges"):
        feature_bins(one, other, "age")


def test_new_category_and_missing_values_count_as_shift() -> None:
    reference = _profile(_table(5000, 1))
    table = _table(5000, 2)
    table["workclass"] = pd.Series(["Never-worked"] * 5000, dtype="string")
    labels, _, _ = feature_bins(reference, _profile(table), "workclass")
    assert labels[-1] == MISSING and "Never-worked" in labels
    assert compare(reference, table)["features"]["workclass"]["level"] == "major"


def test_psi_value_and_epsilon_floor() -> None:
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0
    expected = (0.7 - 0.5) * math.log(0.7 / 0.5) + (0.3 - 0.5) * math.log(0.3 / 0.5)
    assert math.isclose(psi([0.5, 0.5], [0.7, 0.3]), expected)
    # An empty bin is floored, not infinite.
    assert math.isclose(psi([1.0, 0.0], [0.5, 0.5]), psi([1.0, EPSILON], [0.5, 0.5]))
    assert (level(0.05), level(0.1), level(0.3)) == ("stable", "moderate", "major")


def test_unlabelled_table_has_no_label_share() -> None:
    profile = _profile(_table(100, 1).drop(columns="salary"))
    assert profile["label_share"] is None


def test_check_profile_refuses_wrong_shapes() -> None:
    good = _profile(_table(100, 1))
    assert check_profile(good) is good
    for bad in ({}, {**good, "version": 99}, {**good, "numeric": {"age": {"edges": []}}}):
        with pytest.raises(ValueError):
            check_profile(bad)
