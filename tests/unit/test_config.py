"""Params: knobs the train step owns cannot be set from params.yaml under any LightGBM name."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_project

from census_pipeline.config import RESERVED_LIGHTGBM_KEYS
from census_pipeline.errors import PipelineError


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("metric", r"train\.lightgbm\.metric is set by the train step itself"),
        ("metrics", r"train\.lightgbm\.metrics \(LightGBM's alias of 'metric'\)"),
        ("random_state", r"alias of 'seed'\) is set by the train step itself; use the top-level"),
        ("n_jobs", r"alias of 'num_threads'\).*use train\.num_threads"),
        ("nthread", r"alias of 'num_threads'\)"),
        ("n_estimators", r"alias of 'num_iterations'\).*use train\.max_rounds"),
        ("num_round", r"alias of 'num_iterations'\)"),
        ("early_stopping_rounds", r"use train\.early_stopping_rounds"),
        ("deterministic", r"train\.lightgbm\.deterministic is set by the train step"),
        ("force_row_wise", r"train\.lightgbm\.force_row_wise is set"),
        ("objective_type", r"alias of 'objective'\)"),
    ],
)
def test_reserved_lightgbm_keys_and_aliases_are_refused(
    tmp_path: Path, key: str, message: str
) -> None:
    with pytest.raises(PipelineError, match=message):
        make_project(tmp_path, {f"train.lightgbm.{key}": 1})


def test_a_reserved_key_in_the_tuning_grid_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(PipelineError, match=r"train\.tuning_grid\.metric is set by the train"):
        make_project(tmp_path, {"train.tuning_grid": {"metric": ["auc"]}})


def test_every_fixed_training_param_is_reserved() -> None:
    from census_pipeline.config import TrainParams
    from census_pipeline.train import fixed_lightgbm_params

    fixed = fixed_lightgbm_params(TrainParams(), seed=1)
    assert set(fixed) <= set(RESERVED_LIGHTGBM_KEYS)


def test_ordinary_knobs_are_accepted(tmp_path: Path) -> None:
    params = make_project(tmp_path, {"train.lightgbm.lambda_l2": 1.0})
    assert params.train.lightgbm["lambda_l2"] == 1.0
