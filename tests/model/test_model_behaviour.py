"""Behavioural checks (CheckList style) of the trained model on the official test set.

Invariance: a small change of fnlgt, the census's sampling weight, rarely flips a prediction.
Direction: raising capital-gain or education-num does not lower the average probability.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trained_variants import trained_variant

from census_pipeline.config import Params
from census_pipeline.predict import Predictor
from census_pipeline.schema import NUMERIC_RANGES
from census_pipeline.train import read_clean_table

pytestmark = pytest.mark.slow

MAX_FLIP_SHARE = 0.02


@pytest.fixture(scope="module")
def test_table(trained_project: Params) -> pd.DataFrame:
    return read_clean_table(trained_project.paths.clean_test)


@pytest.fixture(scope="module")
def predictor(trained_project: Params) -> Predictor:
    return Predictor.load(trained_project.paths.model_dir)


@pytest.fixture(scope="module")
def with_fnlgt(tmp_path_factory: pytest.TempPathFactory, clean_project: Params) -> Predictor:
    """The same recipe with fnlgt kept as a feature (no tuning, to stay quick)."""
    root: Path = tmp_path_factory.mktemp("with_fnlgt")
    overrides: dict[str, object] = {
        "train.use_tuned": False,
        "train.exclude_features": [],
        "train.tuning_grid": {},
    }
    params = trained_variant(root, clean_project, overrides)
    return Predictor.load(params.paths.model_dir)


def _shifted(table: pd.DataFrame, column: str, add: int) -> pd.DataFrame:
    high = NUMERIC_RANGES[column][1]
    return table.assign(**{column: (table[column] + add).clip(upper=high)})


def _flip_share(predictor: Predictor, table: pd.DataFrame, factor: float) -> float:
    changed = table.assign(fnlgt=(table["fnlgt"] * factor).round().astype("int64"))
    before = predictor.predict_frame(table).positive
    after = predictor.predict_frame(changed).positive
    return float(np.mean(before != after))


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_the_served_model_ignores_fnlgt(
    predictor: Predictor, test_table: pd.DataFrame, factor: float
) -> None:
    assert "fnlgt" not in predictor.feature_names
    assert _flip_share(predictor, test_table, factor) == 0.0


@pytest.mark.parametrize("factor", [0.95, 1.05])
def test_a_small_fnlgt_change_rarely_flips_a_prediction(
    with_fnlgt: Predictor, test_table: pd.DataFrame, factor: float
) -> None:
    """Even a model that uses fnlgt changes few predictions when it moves by 5%."""
    assert "fnlgt" in with_fnlgt.feature_names
    assert _flip_share(with_fnlgt, test_table, factor) <= MAX_FLIP_SHARE


@pytest.mark.parametrize("add", [1, 2, 4])
def test_more_education_does_not_lower_the_average(
    predictor: Predictor, test_table: pd.DataFrame, add: int
) -> None:
    before = predictor.predict_frame(test_table).probabilities.mean()
    after = predictor.predict_frame(_shifted(test_table, "education-num", add)).probabilities
    assert after.mean() >= before


@pytest.mark.parametrize("add", [10_000, 20_000])
def test_a_large_capital_gain_does_not_lower_the_average(
    predictor: Predictor, test_table: pd.DataFrame, add: int
) -> None:
    before = predictor.predict_frame(test_table).probabilities.mean()
    after = predictor.predict_frame(_shifted(test_table, "capital-gain", add)).probabilities
    assert after.mean() >= before


@pytest.mark.xfail(
    strict=True,
    reason="known limitation (docs/model.md): the census reports capital gains in a few "
    "discrete amounts, and those below about 7,000 belong mostly to people under 50K, so the "
    "model learned that a small gain lowers the odds; a monotone constraint fixes it but raises "
    "the validation log loss from 0.2740 to 0.2826",
)
def test_a_small_capital_gain_does_not_lower_the_average(
    predictor: Predictor, test_table: pd.DataFrame
) -> None:
    before = predictor.predict_frame(test_table).probabilities.mean()
    after = predictor.predict_frame(_shifted(test_table, "capital-gain", 1_000)).probabilities
    assert after.mean() >= before
