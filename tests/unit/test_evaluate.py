"""Evaluate: every output names the model it evaluated, and a failure leaves no mixed set."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from model_samples import tiny_project

from census_pipeline import evaluate as evaluate_module
from census_pipeline import files
from census_pipeline.config import PREDICTIONS_MODEL_KEY, Params
from census_pipeline.evaluate import evaluate, outputs
from census_pipeline.files import parquet_metadata, read_json, sha256_file


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory: pytest.TempPathFactory) -> Params:
    params = tiny_project(tmp_path_factory.mktemp("evaluated"))
    evaluate(params)
    return params


def test_outputs_name_the_model_they_evaluate(evaluated: Params) -> None:
    paths = evaluated.paths
    model = read_json(paths.model_metadata)
    identity = read_json(paths.evaluation_identity)
    assert identity["model_sha256"] == model["model_sha256"]
    assert identity["model_version"] == model["model_version"]
    assert identity["threshold_rule"] == model["threshold_rule"]
    assert parquet_metadata(paths.test_predictions)[PREDICTIONS_MODEL_KEY] == model["model_sha256"]
    assert identity["outputs_sha256"] == {
        "metrics": sha256_file(paths.metrics),
        "slices": sha256_file(paths.slices),
        "test_predictions": sha256_file(paths.test_predictions),
    }


def test_metrics_record_the_bootstrap_and_the_rates_the_card_shows(evaluated: Params) -> None:
    metrics = read_json(evaluated.paths.metrics)
    ev = evaluated.evaluate
    assert read_json(evaluated.paths.evaluation_identity)["slice_settings"] == {
        "confidence": ev.confidence,
        "bootstrap_resamples": ev.bootstrap_resamples,
        "min_slice_size": ev.min_slice_size,
        "seed": evaluated.seed,
    }
    cells = metrics["confusion_matrix"]
    assert metrics["fpr"] == pytest.approx(cells["fp"] / (cells["fp"] + cells["tn"]))
    assert metrics["prevalence"] == pytest.approx(metrics["positives"] / metrics["n"])


def test_predictions_use_the_threshold_rule(evaluated: Params) -> None:
    scored = pd.read_parquet(evaluated.paths.test_predictions)
    threshold = read_json(evaluated.paths.metrics)["threshold"]
    assert (scored["prediction"] == (scored["score"] >= threshold).astype(int)).all()
    cells = read_json(evaluated.paths.metrics)["confusion_matrix"]
    assert cells["tp"] == int(((scored["label"] == 1) & (scored["prediction"] == 1)).sum())


def test_a_failure_leaves_no_output_of_either_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tiny_project(tmp_path)
    evaluate(params)
    assert all(path.is_file() for path in outputs(params.paths))

    def broken(*_: object) -> pd.DataFrame:
        raise RuntimeError("slices failed")

    monkeypatch.setattr(evaluate_module, "slice_metrics", broken)
    with pytest.raises(RuntimeError, match="slices failed"):
        evaluate(params)
    assert [path for path in outputs(params.paths) if path.exists()] == []


def test_a_failed_write_removes_the_files_already_replaced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    params = tiny_project(tmp_path)
    evaluate(params)
    real = files.write_bytes_atomic

    def failing(target: Path, data: bytes) -> None:
        if target == params.paths.metrics:
            raise OSError("disk full")
        real(target, data)

    monkeypatch.setattr(files, "write_bytes_atomic", failing)
    with pytest.raises(OSError, match="disk full"):
        evaluate(params)
    assert [path for path in outputs(params.paths) if path.exists()] == []
