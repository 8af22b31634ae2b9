"""`census-pipeline monitor` on real logs of the official test set, shifted on purpose.

The reference is the session model's validation split; the log holds the test set scored by the
same model. Unshifted, nothing may alert; each synthetic shift must alert on its feature only.
Live quality must equal the metrics computed directly on the rows that received feedback.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from typer.testing import CliRunner

from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.monitor import monitor
from census_pipeline.predict import Predictor
from census_pipeline.predlog.database import sqlite_url
from census_pipeline.profile import PROFILE_FORMAT

from .log_samples import scored, write_log

pytestmark = pytest.mark.slow
FEEDBACK_EVERY = 5


@pytest.fixture(scope="module")
def test_table(profiled_project: Params) -> pd.DataFrame:
    return pd.read_parquet(profiled_project.paths.clean_test)


def logged(params: Params, frame: pd.DataFrame, folder: Path, **options: Any) -> str:
    url = sqlite_url(folder / "log.sqlite")
    with Predictor.load(params.paths.model_dir) as predictor:
        probabilities, labels = scored(frame, predictor)
    feedback = np.arange(0, len(frame), FEEDBACK_EVERY)
    write_log(url, frame, probabilities, labels, feedback_rows=feedback, **options)
    return url


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {name: entry["status"] for name, entry in report["features"].items()}


def test_the_reference_profile_describes_the_validation_split(profiled_project: Params) -> None:
    profile = json.loads(profiled_project.paths.reference_profile.read_text())
    assert profile["format"] == PROFILE_FORMAT and profile["rows"] > 5000
    age = profile["data"]["numeric"]["age"]
    assert len(age["shares"]) == len(age["edges"]) + 1
    assert math.isclose(sum(age["shares"]) + age["missing_share"], 1.0)
    assert 0.2 < profile["data"]["label_share"] < 0.3
    assert profile["ecdf"]["age"]["cdf"][-1] == pytest.approx(1.0)
    assert 0 < profile["scores"]["positive_rate"] < 1
    assert "f1" in profile["validation_metrics"]


def test_the_test_set_raises_no_alert_and_the_command_exits_0(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    url = logged(profiled_project, test_table, tmp_path)
    params_file = profiled_project.paths.model_dir.parent / "params.yaml"
    result = CliRunner().invoke(
        app, ["monitor", "--params", str(params_file), "--database-url", url]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(profiled_project.paths.monitoring_json.read_text())
    assert report["alerts"] == []
    assert set(statuses(report).values()) <= {"ok", "warn"}
    assert report["log"]["rows"] == len(test_table)
    assert report["prediction"]["status"] in ("ok", "warn")
    html = profiled_project.paths.monitoring_html.read_text()
    assert "Input drift" in html and "data:image/png;base64," in html


def test_ages_ten_years_older_alert_on_age_only(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    older = test_table.assign(age=(test_table["age"] + 10).clip(upper=100))
    report = monitor(profiled_project, logged(profiled_project, older, tmp_path)).report
    alerting = [name for name, status in statuses(report).items() if status == "alert"]
    assert alerting == ["age"]
    assert all(alert.startswith("age:") for alert in report["alerts"]), report["alerts"]
    assert report["features"]["age"]["psi"] >= 0.25


def test_swapped_sex_shares_alert_on_sex_only(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    swap = {"Male": "Female", "Female": "Male"}
    swapped = test_table.assign(sex=test_table["sex"].map(swap).astype(test_table["sex"].dtype))
    result = CliRunner().invoke(
        app,
        ["monitor", "--params", str(profiled_project.paths.model_dir.parent / "params.yaml"),
         "--database-url", logged(profiled_project, swapped, tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 1
    report = json.loads(profiled_project.paths.monitoring_json.read_text())
    alerting = [name for name, status in statuses(report).items() if status == "alert"]
    assert alerting == ["sex"] and all(a.startswith("sex:") for a in report["alerts"])
    assert "ALERT sex:" in result.output


def test_live_quality_equals_metrics_computed_on_the_rows_with_feedback(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    url = logged(profiled_project, test_table, tmp_path)
    quality = monitor(profiled_project, url).report["quality"]
    rows = test_table.iloc[np.arange(0, len(test_table), FEEDBACK_EVERY)]
    with Predictor.load(profiled_project.paths.model_dir) as predictor:
        probabilities, labels = scored(rows, predictor)
    truth = (rows["salary"].astype(str) == ">50K").to_numpy()
    predicted = np.array(labels) == ">50K"
    expected = {
        "accuracy": accuracy_score(truth, predicted),
        "precision": precision_score(truth, predicted),
        "recall": recall_score(truth, predicted),
        "f1": f1_score(truth, predicted),
        "roc_auc": roc_auc_score(truth, probabilities),
    }
    assert quality["feedback_rows"] == len(rows) and quality["status"] == "ok"
    for metric, value in expected.items():
        entry = quality["overall"][metric]
        assert entry["value"] == pytest.approx(value, abs=1e-12), metric
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    women = next(s for s in quality["slices"] if s["value"] == "Female")
    female = (rows["sex"] == "Female").to_numpy()
    assert women["n"] == int(female.sum())
    assert women["metrics"]["f1"]["value"] == pytest.approx(
        f1_score(truth[female], predicted[female])
    )
    assert {s["feature"] for s in quality["slices"]} == {"sex", "race"}


def test_the_window_selects_records_by_time(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    url = logged(profiled_project, test_table.head(3000), tmp_path,
                 created_at=time.time() - 30 * 86_400)  # fmt: skip
    report = monitor(profiled_project, url).report  # default window: the last 7 days
    assert report["log"]["rows"] == 0 and report["alerts"] == []
    assert report["quality"]["status"] == "no_feedback"
    assert monitor(profiled_project, url, since="40d").report["log"]["rows"] == 3000


def test_clear_errors_for_a_bad_window_or_database(profiled_project: Params) -> None:
    with pytest.raises(PipelineError, match="ISO 8601"):
        monitor(profiled_project, "sqlite://", since="last tuesday")
    with pytest.raises(PipelineError, match="prediction log"):
        monitor(profiled_project, "postgresql+psycopg://x@127.0.0.1:1/none?connect_timeout=1")


def test_drift_on_a_sample_counts_and_quality_on_every_record(
    profiled_project: Params, test_table: pd.DataFrame, tmp_path: Path
) -> None:
    url = logged(profiled_project, test_table, tmp_path)
    small = profiled_project.model_copy(
        update={"monitor": profiled_project.monitor.model_copy(update={"max_rows": 2000})}
    )
    report = monitor(small, url).report
    every = -(-len(test_table) // 2000)
    assert report["log"]["rows"] == len(test_table)
    assert report["log"]["sampled"] == len(test_table) // every
    assert report["quality"]["feedback_rows"] == len(range(0, len(test_table), FEEDBACK_EVERY))
    assert report["alerts"] == []
