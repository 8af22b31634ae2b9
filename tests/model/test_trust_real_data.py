"""Audit, gate and card on the real census data, through the session's pipeline run.

The audit is cross-checked against a plain crosstab of the test predictions, the verdict against
the metrics and metadata files, and the card against all of them, so none of the three can drift
from the artifacts it describes.
"""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import pytest

from census_pipeline.config import Params
from census_pipeline.files import read_json, sha256_file

pytestmark = pytest.mark.slow


def _summary(params: Params) -> dict[str, Any]:
    summary: dict[str, Any] = read_json(params.paths.audit_dir / "summary.json")
    return summary


def _women(params: Params, parity: str) -> dict[str, Any]:
    groups = _summary(params)["parities"][parity]["groups"]
    record: dict[str, Any] = next(
        g for g in groups if g["attribute"] == "sex" and g["group"] == "Female"
    )
    return record


def test_audit_counts_match_a_plain_crosstab(audited_project: Params) -> None:
    predictions = pd.read_parquet(audited_project.paths.test_predictions)
    table = pd.read_csv(audited_project.paths.audit_dir / "group_metrics.csv")
    crossed = predictions["race"].astype(str) + " x " + predictions["sex"].astype(str)
    for attribute, column in (("sex", predictions["sex"].astype(str)), ("race x sex", crossed)):
        for group, rows in predictions.groupby(column, observed=True):
            audited = table[(table["attribute"] == attribute) & (table["group"] == group)].iloc[0]
            fp = int(((rows["prediction"] == 1) & (rows["label"] == 0)).sum())
            tn = int(((rows["prediction"] == 0) & (rows["label"] == 0)).sum())
            assert (audited["n"], audited["fp"], audited["tn"]) == (len(rows), fp, tn)
            assert audited["fpr"] == pytest.approx(fp / (fp + tn))


def test_women_vs_men_fpr_disparity_is_reported(audited_project: Params) -> None:
    predictions = pd.read_parquet(audited_project.paths.test_predictions)
    negatives = predictions[predictions["label"] == 0]
    fpr = negatives.groupby(negatives["sex"].astype(str), observed=True)["prediction"].mean()
    women = _women(audited_project, "fpr")
    assert women["reference"] == "Male"
    assert women["value"] == pytest.approx(fpr["Female"])
    assert women["disparity"] == pytest.approx(fpr["Female"] / fpr["Male"])
    assert women["status"] in {"fair", "unfair", "inconclusive"}
    assert women["p_holm"] is not None


def test_figures_are_modest_pngs(audited_project: Params) -> None:
    figures = sorted((audited_project.paths.audit_dir / "figures").glob("*.png"))
    assert [f.stem for f in figures] == [
        "disparities_race",
        "disparities_race_x_sex",
        "disparities_sex",
    ]
    for figure in figures:
        assert figure.read_bytes().startswith(b"\x89PNG")
        assert figure.stat().st_size < 150_000


def test_verdict_belongs_to_the_model_and_quotes_its_metrics(gated_project: Params) -> None:
    paths = gated_project.paths
    verdict, metrics = read_json(paths.verdict), read_json(paths.metrics)
    metadata = read_json(paths.model_metadata)
    assert verdict["model_sha256"] == metadata["model_sha256"]
    assert verdict["model_version"] == metadata["model_version"]
    for key, value in verdict["headline_metrics"].items():
        assert value == metrics[key]
    assert verdict["inputs"]["metrics"] == sha256_file(paths.metrics)


def test_verdict_is_explainable_from_its_json_alone(gated_project: Params) -> None:
    verdict = read_json(gated_project.paths.verdict)
    metrics = read_json(gated_project.paths.metrics)
    for check in verdict["checks"]:
        assert {"name", "kind", "value", "bound", "passed", "enforced", "reason"} <= set(check)
        assert check["reason"].endswith(".") and check["bound"]
        if check["kind"] == "overall":
            metric = check["name"].split(":", 1)[1]
            assert check["value"] == metrics[metric]
            assert f"{metrics[metric]:.4f}" in check["reason"]
    women_fpr = next(c for c in verdict["checks"] if c["name"] == "fairness:fpr:sex")
    assert women_fpr["enforced"] is False  # the policy reports FPR parity; see docs/trust.md
    failed = [c["name"] for c in verdict["checks"] if c["enforced"] and c["status"] == "failed"]
    assert verdict["blessed"] == (not failed or verdict["override"] is not None)


def test_default_policy_blesses_the_default_model(gated_project: Params) -> None:
    # The pipeline gates every build, so the default model must pass the default policy.
    verdict = read_json(gated_project.paths.verdict)
    failed = [c["reason"] for c in verdict["checks"] if c["enforced"] and c["status"] == "failed"]
    assert verdict["blessed"], failed


def test_card_numbers_equal_the_metrics_file(carded_project: Params) -> None:
    paths = carded_project.paths
    text = paths.model_card_md.read_text(encoding="utf-8")
    metrics = read_json(paths.metrics)
    for label, key in (
        ("ROC AUC", "roc_auc"),
        ("F1", "f1"),
        ("Accuracy at 0.5", "accuracy_at_half"),
    ):
        assert f"| {label} | {metrics[key]:.4f} |" in text
    assert f"**{metrics['threshold']:.4f}**" in text
    assert f"{metrics['n']:,} rows with {metrics['positives']:,} positives" in text
    metadata = read_json(paths.model_metadata)
    assert metadata["model_sha256"] in text and metadata["train_data_sha256"] in text


def test_card_discusses_the_women_vs_men_fpr_disparity(carded_project: Params) -> None:
    text = carded_project.paths.model_card_md.read_text(encoding="utf-8")
    women = _women(carded_project, "fpr")
    assert (
        f"False positive rate {women['value']:.3f} against {women['reference_value']:.3f} "
        f"(disparity {women['disparity']:.2f}"
    ) in text


def test_card_slice_rows_match_the_slices_table(carded_project: Params) -> None:
    text = carded_project.paths.model_card_md.read_text(encoding="utf-8")
    slices = pd.read_csv(carded_project.paths.slices)
    for row in slices[slices["feature"] == "sex"].itertuples():
        assert re.search(
            rf"\| {row.value} \| {row.n:,} \| {row.positives:,} \| {row.precision:.3f} \[", text
        )


def test_card_html_is_self_contained(carded_project: Params) -> None:
    html = carded_project.paths.model_card_html.read_text(encoding="utf-8")
    markdown = carded_project.paths.model_card_md.read_text(encoding="utf-8")
    # Every figure the Markdown card links to is embedded in the HTML, and nothing else.
    figures = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", markdown)
    assert len(figures) >= 7
    assert html.count('src="data:image/png;base64,') == len(figures)
    assert not re.search(r"<(script|link)\b|src=\"(?!data:)", html)
    assert len(html) < 1_500_000
