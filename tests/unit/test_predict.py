"""The Predictor: one answer whatever the path, clear errors for bad records, counted unknowns."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_samples import records, synthetic_clean_table, tiny_project

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.predict import Predictor, RecordError
from census_pipeline.schema import NEGATIVE_LABEL, POSITIVE_LABEL


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Params:
    return tiny_project(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def predictor(tiny: Params) -> Predictor:
    return Predictor.load(tiny.paths.model_dir)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_clean_table(rows=300, seed=11)


@pytest.fixture
def record(table: pd.DataFrame) -> dict[str, Any]:
    return records(table.dropna())[0]


def test_every_path_gives_identical_probabilities(
    predictor: Predictor, table: pd.DataFrame
) -> None:
    rows = records(table)
    fast = np.array([predictor.probability_one(r) for r in rows])
    assert np.array_equal(fast, predictor.predict_many(rows).probabilities)
    assert np.array_equal(fast, predictor.predict_frame(table).probabilities)
    # The frame path also accepts plain string columns (what read_csv gives).
    as_strings = table.astype(dict.fromkeys(predictor.metadata.categorical_features, object))
    assert np.array_equal(fast, predictor.predict_frame(as_strings).probabilities)


def test_labels_follow_the_stored_threshold(predictor: Predictor, table: pd.DataFrame) -> None:
    result = predictor.predict_frame(table)
    expected = np.where(result.probabilities >= predictor.threshold, POSITIVE_LABEL, NEGATIVE_LABEL)
    assert result.labels == expected.tolist()
    assert predictor.threshold == predictor.metadata.threshold
    one = predictor.predict_one(records(table)[0])
    assert one.label == expected[0] and one.probability == result.probabilities[0]


def test_a_missing_feature_is_named(predictor: Predictor, record: dict[str, Any]) -> None:
    del record["education-num"]
    with pytest.raises(RecordError, match="lacks the feature 'education-num'") as caught:
        predictor.probability_one(record)
    assert isinstance(caught.value, PipelineError)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("age", "39", "expected a number, got str"),
        ("age", None, "expected a number, got NoneType"),
        ("hours-per-week", True, "expected a number, got bool"),
        ("capital-gain", math.nan, "expected a finite number"),
        ("sex", 1, "expected a category string or null, got int"),
        ("workclass", ["Private"], "expected a category string or null, got list"),
    ],
)
def test_a_mistyped_feature_is_named(
    predictor: Predictor, record: dict[str, Any], field: str, value: object, expected: str
) -> None:
    record[field] = value
    with pytest.raises(RecordError, match=f"feature '{field}': {expected}"):
        predictor.probability_one(record)


def test_a_batch_error_names_the_record(predictor: Predictor, table: pd.DataFrame) -> None:
    rows = records(table.head(3))
    rows[2]["age"] = "old"
    with pytest.raises(RecordError, match="record 2: feature 'age'"):
        predictor.predict_many(rows)


def test_an_unknown_category_is_scored_as_missing_and_counted(
    predictor: Predictor, record: dict[str, Any]
) -> None:
    as_missing = predictor.probability_one({**record, "occupation": None})
    assert predictor.unknown_category_counts["occupation"] == 0
    unknown = predictor.probability_one({**record, "occupation": "Astronaut"})
    assert unknown == as_missing
    predictor.predict_many([{**record, "native-country": "Atlantis"}] * 2)
    counts = predictor.unknown_category_counts
    assert counts["occupation"] == 1 and counts["native-country"] == 2
    assert sum(counts.values()) == 3


def test_unknown_categories_in_a_table_are_counted(
    predictor: Predictor, table: pd.DataFrame
) -> None:
    frame = table.astype({"race": object})
    frame.loc[frame.index[:5], "race"] = "Martian"
    result = predictor.predict_frame(frame)
    assert predictor.unknown_category_counts["race"] == 5
    missing = table.astype({"race": object})
    missing.loc[missing.index[:5], "race"] = None
    assert np.array_equal(result.probabilities, predictor.predict_frame(missing).probabilities)


def test_fields_the_model_does_not_use_are_not_required(
    predictor: Predictor, record: dict[str, Any]
) -> None:
    assert "fnlgt" not in predictor.feature_names
    without = {k: v for k, v in record.items() if k != "fnlgt"}
    assert predictor.probability_one(without) == predictor.probability_one(record)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda f: f.drop(columns=["age"]), r"lacks the feature columns \['age'\]"),
        (lambda f: f.assign(age=f["age"].astype(str)), "column 'age': expected numbers"),
        (lambda f: f.assign(age=f["age"].astype(float).where(f.index > 3)), "row 0"),
        (lambda f: f.assign(sex=f["sex"].cat.codes), "column 'sex': expected category strings"),
    ],
)
def test_a_bad_table_is_named(
    predictor: Predictor, table: pd.DataFrame, change: Any, expected: str
) -> None:
    with pytest.raises(RecordError, match=expected):
        predictor.predict_frame(change(table))


def test_contributions_add_up_to_the_log_odds(predictor: Predictor, record: dict[str, Any]) -> None:
    contributions = predictor.contributions_one(record)
    assert list(contributions) == predictor.feature_names
    p = predictor.probability_one(record)
    total = sum(contributions.values()) + predictor.expected_log_odds
    assert total == pytest.approx(math.log(p / (1 - p)), abs=1e-9)


def test_concurrent_threads_get_their_own_answers(
    predictor: Predictor, table: pd.DataFrame
) -> None:
    rows = records(table)
    expected = [predictor.probability_one(r) for r in rows]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(predictor.probability_one, rows * 4))
    assert results == expected * 4


def test_one_records_contributions_equal_lightgbms_own_from_any_thread(
    predictor: Predictor, table: pd.DataFrame
) -> None:
    """The single-row C path (one config per thread) against Booster.predict(pred_contrib)."""
    rows = records(table)[:60]
    expected = predictor.contributions_many(rows)  # through Booster.predict
    with ThreadPoolExecutor(max_workers=4) as pool:
        explained = list(pool.map(predictor.contributions_one, rows * 3))
    names = predictor.feature_names
    for row, one in zip(np.tile(expected, (3, 1)), explained, strict=True):
        assert [one[name] for name in names] == pytest.approx(row.tolist(), rel=0, abs=1e-12)
    predictor.close()
    with pytest.raises(RuntimeError, match="closed"):
        predictor.contributions_one(rows[0])


def test_a_closed_predictor_refuses_to_score(predictor: Predictor, record: dict[str, Any]) -> None:
    with predictor:
        predictor.probability_one(record)
    predictor.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        predictor.probability_one(record)


def test_scoring_needs_no_pandas_or_scikit_learn(tiny: Params, record: dict[str, Any]) -> None:
    """The service install has neither: predict and artifact must not import them."""
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("pandas", "sklearn", "pyarrow"):
            sys.modules[name] = None  # makes any import of them fail
        from pathlib import Path
        from census_pipeline.predict import Predictor
        predictor = Predictor.load(Path({str(tiny.paths.model_dir)!r}))
        record = {record!r}
        print(predictor.predict_one(record).label, len(predictor.contributions_one(record)))
        print(predictor.predict_many([record, record]).labels)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] in (POSITIVE_LABEL, NEGATIVE_LABEL)


def test_load_takes_the_model_folder(tiny: Params) -> None:
    loaded = Predictor.load(Path(tiny.paths.model_dir))
    assert (
        loaded.metadata.model_sha256
        == Predictor.from_files(
            tiny.paths.model_file, tiny.paths.model_metadata
        ).metadata.model_sha256
    )
