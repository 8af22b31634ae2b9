"""The tune step on the real training table, with a tiny budget (the real one is benchmarked).

What must hold whatever the budget: the search never opens the test set; the same inputs give the
same choice and a byte-identical model; a study is extended, not restarted; the serving profile's
caps bind both the search and the final model; train uses what the search chose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import make_project
from trained_variants import project_with_clean_data

from census_pipeline.artifact import read_metadata
from census_pipeline.config import Params
from census_pipeline.train import train
from census_pipeline.tune import Trial, choose, tune

pytestmark = pytest.mark.slow

TINY = {
    "tune.n_trials": 3,
    "tune.folds": 2,
    "tune.max_rounds": 60,
    "tune.early_stopping_rounds": 10,
}


def tiny_project(root: Path, clean_project: Params, **extra: object) -> Params:
    return project_with_clean_data(root, clean_project, {**TINY, **extra})


@contextmanager
def opened_files() -> Iterator[list[str]]:
    """Every path the process opens meanwhile (Python's audit events; no patching)."""
    seen: list[str] = []
    active = True

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if active and event == "open" and isinstance(args[0], str | Path):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    try:
        yield seen
    finally:
        active = False  # audit hooks cannot be removed; this one goes quiet


def test_tune_never_opens_the_test_set(tmp_path: Path, clean_project: Params) -> None:
    params = tiny_project(tmp_path, clean_project)
    with opened_files() as seen:
        tune(params)
    test_file = str(params.paths.clean_test)
    assert str(params.paths.clean_train) in seen
    assert test_file not in seen
    # And it needs no test set at all.
    params.paths.clean_test.unlink()
    params.paths.tuned_params.unlink()
    tune(params)
    assert params.paths.tuned_params.is_file()


def test_same_inputs_same_choice_and_byte_identical_model(
    tmp_path: Path, clean_project: Params
) -> None:
    first = tiny_project(tmp_path / "a", clean_project)
    second = tiny_project(tmp_path / "b", clean_project)
    for params in (first, second):
        tune(params)
        train(params)
    best = [p.paths.tuned_params.read_bytes() for p in (first, second)]
    assert best[0] == best[1]
    models = [p.paths.model_file.read_bytes() for p in (first, second)]
    assert models[0] == models[1]


def test_a_longer_budget_extends_the_study(tmp_path: Path, clean_project: Params) -> None:
    short = tiny_project(tmp_path, clean_project)
    assert tune(short).trials_run == 3
    before = short.paths.tuning_trials.read_text(encoding="utf-8").splitlines()
    longer = make_project(tmp_path, {**TINY, "tune.n_trials": 4})
    result = tune(longer)
    assert (result.trials_run, result.trials_total) == (1, 4)
    after = longer.paths.tuning_trials.read_text(encoding="utf-8").splitlines()
    assert after[: len(before)] == before and len(after) == len(before) + 1
    # The same budget again runs nothing and writes the same choice.
    again = tune(longer)
    assert again.trials_run == 0 and again.best == result.best


def test_fast_profile_caps_the_search_and_the_model(tmp_path: Path, clean_project: Params) -> None:
    params = tiny_project(
        tmp_path, clean_project, **{"tune.serving_profile": "fast", "tune.max_rounds": 500}
    )
    best = tune(params).best
    assert best["serving_profile"] == "fast"
    assert best["lightgbm"]["num_leaves"] <= 15
    assert best["cv"]["trees"] <= 64
    train(params)
    metadata = read_metadata(params.paths.model_metadata)
    assert metadata.num_trees <= 64
    assert metadata.params["num_leaves"] <= 15


def test_train_uses_the_searched_knobs_and_exclusion(tmp_path: Path, clean_project: Params) -> None:
    params = tiny_project(tmp_path, clean_project)
    best = tune(params).best
    train(params)
    metadata = read_metadata(params.paths.model_metadata)
    for knob, value in best["lightgbm"].items():
        assert metadata.params[knob] == value, knob
    assert list(metadata.excluded_features) == best["exclude_features"]
    assert metadata.tuning["search"] == best
    recorded = json.loads(params.paths.tuned_params.read_text(encoding="utf-8"))
    assert recorded["n_trials"] == 3 and "test" not in json.dumps(recorded)


def _trial(number: int, loss: float, trees: int, leaves: int) -> Trial:
    return Trial(number, loss, 0.001, 0.93, trees, {"num_leaves": leaves, "exclude": "fnlgt"})


def test_ties_go_to_the_smaller_model() -> None:
    big = _trial(0, 0.2700, 900, 64)
    small = _trial(1, 0.2703, 300, 16)
    worse = _trial(2, 0.2720, 50, 4)
    chosen, best = choose([big, small, worse], tolerance=0.0005)
    assert (chosen, best) == (small, big)
    chosen, _ = choose([big, small, worse], tolerance=0.0)
    assert chosen == big
