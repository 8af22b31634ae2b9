"""Two trainings with the same data and params give the same bytes and the same metrics."""

from __future__ import annotations

import json

import pytest
from trained_variants import trained_variant

from census_pipeline.config import Params
from census_pipeline.evaluate import evaluate

pytestmark = pytest.mark.slow


def test_retraining_is_byte_identical_with_equal_metrics(
    tmp_path_factory: pytest.TempPathFactory, evaluated_project: Params, clean_project: Params
) -> None:
    again = trained_variant(tmp_path_factory.mktemp("again"), clean_project)
    first, second = evaluated_project.paths, again.paths
    assert second.model_file.read_bytes() == first.model_file.read_bytes()
    # The metadata too: no time, host, path or commit in it, so DVC sees the same output.
    assert second.model_metadata.read_bytes() == first.model_metadata.read_bytes()
    evaluate(again)
    assert json.loads(second.metrics.read_text()) == json.loads(first.metrics.read_text())
    assert second.slices.read_bytes() == first.slices.read_bytes()
