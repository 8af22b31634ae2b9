"""Fairness mitigations: the weights, the group thresholds, and one labelling rule on every path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from model_samples import records, synthetic_clean_table, tiny_project

from census_pipeline import __version__
from census_pipeline.artifact import GroupThresholds, read_metadata
from census_pipeline.config import FairnessParams, GateParams
from census_pipeline.mitigate import (
    fit_group_thresholds,
    group_labels,
    reweighing_weights,
    threshold_for_rate,
    true_positive_rate,
)
from census_pipeline.predict import Predictor, ThresholdRule
from census_pipeline.schema import NEGATIVE_LABEL, POSITIVE_LABEL

GROUPED: dict[str, object] = {
    "fairness.mitigation": "group_thresholds",
    "fairness.min_positives": 5,
}


@pytest.fixture(scope="module")
def grouped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_project(tmp_path_factory.mktemp("grouped"), GROUPED).paths.model_dir


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return synthetic_clean_table(rows=400, seed=21)


def test_reweighing_makes_the_label_independent_of_the_group() -> None:
    groups = np.array(["a"] * 6 + ["b"] * 4)
    labels = np.array([1, 1, 1, 1, 0, 0, 1, 0, 0, 0])
    weights = reweighing_weights(groups, labels)
    # P(a) P(1) / P(a, 1) = 0.6 * 0.5 / 0.4
    assert weights["a | 1"] == pytest.approx(0.75)
    assert weights["b | 1"] == pytest.approx(0.4 * 0.5 / 0.1)
    w = np.array([weights[f"{g} | {y}"] for g, y in zip(groups, labels, strict=True)])
    for group in ("a", "b"):
        share = w[(groups == group) & (labels == 1)].sum() / w[groups == group].sum()
        assert share == pytest.approx(labels.mean())


def test_threshold_for_rate_is_the_highest_reaching_the_rate() -> None:
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])
    labels = np.ones(10, dtype=np.int64)
    for target in (0.1, 0.35, 0.7, 1.0):
        t = threshold_for_rate(scores, target)
        assert true_positive_rate(scores, labels, t) >= target
        assert true_positive_rate(scores, labels, t + 1e-9) < target


def test_group_thresholds_equalise_true_positive_rates_and_fall_back() -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "race": rng.choice(["White", "Black", "Other"], 3000, p=[0.7, 0.29, 0.01]),
            "sex": rng.choice(["Male", "Female"], 3000),
        }
    )
    labels = (rng.random(3000) < 0.3).astype(np.int64)
    # Scores shifted down for one group, as a biased model would.
    female = (frame["sex"] == "Female").to_numpy()
    scores = np.clip(0.35 * labels + rng.random(3000) * 0.6 - 0.15 * female, 0, 1)
    settings = FairnessParams(mitigation="group_thresholds", min_positives=10)
    fitted = fit_group_thresholds(settings, frame, labels, scores, 0.5)
    crossed = fitted.thresholds["race x sex"]
    assert "Other x Male" not in crossed and "Other x Female" not in crossed  # too few positives
    assert crossed["White x Female"] < crossed["White x Male"]
    groups = group_labels(frame, ("race", "sex"))
    for group, t in crossed.items():
        rows = groups == group
        rate = true_positive_rate(scores[rows], labels[rows], t)
        assert abs(rate - fitted.target_tpr) < 0.03
    rule = ThresholdRule(0.5, fitted)
    assert rule.for_record({"race": "Other", "sex": "Female"}) == fitted.thresholds["sex"]["Female"]
    assert rule.for_record({"race": None, "sex": "Male"}) == fitted.thresholds["sex"]["Male"]
    assert rule.for_record({"race": "Black", "sex": None}) == 0.5
    assert rule.for_record({"race": "Black", "sex": "Unknown"}) == 0.5


def test_the_rule_is_the_same_for_records_lists_and_tables() -> None:
    groups = GroupThresholds(
        groupings=[["race", "sex"], ["sex"]],
        thresholds={"race x sex": {"Black x Female": 0.2}, "sex": {"Female": 0.3, "Male": 0.6}},
        target_tpr=0.7,
        rule="test",
    )
    frame = pd.DataFrame(
        {
            "race": pd.Categorical(["Black", "White", None, "Black"]),
            "sex": ["Female", "Female", "Male", None],
        }
    )
    rule = ThresholdRule(0.5, groups)
    rows = records_of(frame)
    one = [rule.for_record(r) for r in rows]
    assert one == [0.2, 0.3, 0.6, 0.5]
    as_list, as_table = rule.for_records(rows), rule.for_frame(frame)
    assert as_list is not None and as_list.tolist() == one
    assert as_table is not None and as_table.tolist() == one
    assert ThresholdRule(0.5, None).for_frame(frame) is None


def records_of(frame: pd.DataFrame) -> list[dict[str, Any]]:
    rows = frame.astype(object).to_dict("records")
    return [{str(k): v if isinstance(v, str) else None for k, v in row.items()} for row in rows]


def test_a_grouped_model_labels_each_record_at_its_groups_threshold(
    grouped: Path, table: pd.DataFrame
) -> None:
    metadata = read_metadata(grouped / "model.json")
    assert metadata.mitigated and metadata.mitigation is not None
    # Same model file as without the mitigation, so the version must say which rule labels.
    version = f"{__version__}+{metadata.model_sha256[:12]}.group-thresholds"
    assert metadata.model_version == version
    fitted = metadata.mitigation.group_thresholds
    assert fitted is not None and fitted.thresholds["race x sex"]
    with Predictor.load(grouped) as predictor:
        rows = records(table)
        singles = [predictor.predict_one(r) for r in rows]
        many = predictor.predict_many(rows)
        frame = predictor.predict_frame(table)
        expected = [
            POSITIVE_LABEL if p >= predictor.threshold_for(r) else NEGATIVE_LABEL
            for p, r in zip(many.probabilities, rows, strict=True)
        ]
        assert [s.label for s in singles] == many.labels == frame.labels == expected
        assert [s.threshold for s in singles] == many.thresholds.tolist()
        assert len(set(many.thresholds.tolist())) > 1, "every record got the same threshold"
        pairs = zip(singles, rows, strict=True)
        assert [predictor.label(s.probability, r) for s, r in pairs] == expected
        with pytest.raises(ValueError, match="pass the record"):
            predictor.label(0.5)


def test_reweighing_trains_another_deterministic_model(tmp_path: Path) -> None:
    plain = read_metadata(tiny_project(tmp_path / "plain").paths.model_metadata)
    settings: dict[str, object] = {"fairness.mitigation": "reweighing"}
    first = read_metadata(tiny_project(tmp_path / "a", settings).paths.model_metadata)
    second = read_metadata(tiny_project(tmp_path / "b", settings).paths.model_metadata)
    assert first.model_sha256 == second.model_sha256 != plain.model_sha256
    assert first.mitigation is not None and first.mitigation.weights
    assert first.mitigation.group_thresholds is None
    assert plain.mitigation is not None and plain.mitigation.method == "none"
    assert first.model_version.endswith(".reweighing")
    assert plain.model_version == f"{__version__}+{plain.model_sha256[:12]}"
    assert not plain.mitigated


def test_the_gate_policy_switches_for_a_mitigated_model() -> None:
    policy = GateParams().fairness
    assert not policy["fnr"].applies(mitigated=False) and policy["fnr"].applies(mitigated=True)
    assert policy["fdr"].applies(mitigated=False) and not policy["fdr"].applies(mitigated=True)
    assert not policy["fpr"].applies(mitigated=True)


def test_the_audit_says_which_parities_the_gate_will_enforce() -> None:
    from census_pipeline.audit import console_lines

    summary = {
        "parities": {
            "fnr": {"name": "false negative rate", "fair": False, "unfair": ["sex=Female"]},
            "fdr": {"name": "false discovery rate", "fair": True, "unfair": []},
        }
    }
    policy = GateParams().fairness
    plain = console_lines(summary, policy, mitigated=False)
    assert plain[0] == "fnr (false negative rate; reported only): fails for sex=Female"
    assert plain[1] == "fdr (false discovery rate; enforced by the gate): holds"
    assert plain[-1] == "gate policy for an unmitigated model: enforces fdr"
    mitigated = console_lines(summary, policy, mitigated=True)
    assert mitigated[0].startswith("fnr (false negative rate; enforced by the gate)")
    assert mitigated[-1] == "gate policy for a mitigated model: enforces fnr"
