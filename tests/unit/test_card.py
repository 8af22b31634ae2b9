"""Card: rendered only from the artifacts, follows them when they change, never half-filled."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from trust_samples import GOOD_METRICS, slices_table, trust_project, write_curves

from census_pipeline.audit import audit
from census_pipeline.card import card, refuse_placeholders
from census_pipeline.config import FAIRNESS_PARITIES, Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import read_json, sha256_bytes, write_json_atomic
from census_pipeline.gate import gate
from census_pipeline.signing import (
    SIGNING_KEY_FILE_ENV,
    VerifyKeys,
    card_problem,
    card_seal_path,
    keygen,
)
from census_pipeline.verdict import canonical_bytes

SECTIONS = (
    "**Contents**",
    "## Model details",
    "## Intended use",
    "## Factors",
    "## Training data",
    "## Evaluation data",
    "## Metrics",
    "## Quantitative analyses",
    "### Feature importance",
    "### Per slice",
    "### Intersectional",
    "## Ethical considerations",
    "## Fairness mitigation",
    "## Caveats and recommendations",
    "## Version history",
    "## Deployment gate verdict",
)
TABLE_ROWS = {
    "ROC AUC": "roc_auc",
    "PR AUC (average precision)": "pr_auc",
    "Precision": "precision",
    "Recall": "recall",
    "F1": "f1",
    "Accuracy at the threshold": "accuracy",
    "Accuracy at 0.5": "accuracy_at_half",
    "Log loss": "log_loss",
    "Brier score": "brier",
}


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Params:
    params = trust_project(tmp_path_factory.mktemp("audited"))
    audit(params)
    return params


@pytest.fixture
def make(audited: Params, tmp_path: Path) -> Callable[..., Params]:
    """A gated project with crafted artifacts; the audit is copied from one shared run."""

    def build(override: str | None = None, **kwargs: Any) -> Params:
        params = trust_project(tmp_path, **kwargs)
        shutil.copy2(audited.paths.test_predictions, params.paths.test_predictions)
        shutil.copytree(audited.paths.audit_dir, params.paths.audit_dir, dirs_exist_ok=True)
        write_curves(params)
        gate(params, override=override)
        return params

    return build


def _text(params: Params) -> str:
    card(params)
    return params.paths.model_card_md.read_text(encoding="utf-8")


def test_card_has_every_section_in_order(make: Callable[..., Params]) -> None:
    text = _text(make())
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)


def test_card_metrics_equal_the_metrics_file(make: Callable[..., Params]) -> None:
    params = make()
    text = _text(params)
    metrics = read_json(params.paths.metrics)
    for label, key in TABLE_ROWS.items():
        assert f"| {label} | {metrics[key]:.4f} |" in text
    assert f"**{metrics['threshold']:.4f}**" in text
    cells = metrics["confusion_matrix"]
    assert f"{cells['tp']:,} true positives, {cells['fp']:,} false positives" in text


def test_changing_a_metric_changes_the_card(make: Callable[..., Params]) -> None:
    before = _text(make())
    assert f"| ROC AUC | {GOOD_METRICS['roc_auc']:.4f} |" in before
    after = _text(make(metrics={**GOOD_METRICS, "roc_auc": 0.9377}))
    assert "| ROC AUC | 0.9377 |" in after
    assert f"{GOOD_METRICS['roc_auc']:.4f}" not in after


def test_card_states_the_women_vs_men_fpr_disparity(make: Callable[..., Params]) -> None:
    params = make()
    text = _text(params)
    fpr = read_json(params.paths.audit_summary)["parities"]["fpr"]["groups"]
    women = next(g for g in fpr if g["attribute"] == "sex" and g["group"] == "Female")
    sentence = (
        f"False positive rate {women['value']:.3f} against {women['reference_value']:.3f} "
        f"(disparity {women['disparity']:.2f}"
    )
    assert sentence in text
    assert "Why the Female group's false positive rate is lower than the Male group's" in text


def test_card_shows_the_policy_choice_and_reasoning(make: Callable[..., Params]) -> None:
    params = make()
    text = _text(params)
    for parity in FAIRNESS_PARITIES:
        rule = params.gate.fairness[parity]
        label = "enforced" if rule.enforced else "reported only"
        assert re.search(rf"\({parity}\) \| {label} \| {re.escape(rule.reason)} \|", text)


def test_an_override_reason_is_on_the_card(make: Callable[..., Params]) -> None:
    reason = "Classroom demo on 2 May; the F1 shortfall is known and accepted."
    params = make(override=reason, metrics={**GOOD_METRICS, "f1": 0.61})
    text = _text(params)
    assert "Deploy gate: blessed by override." in text
    assert reason in text
    assert "overall:f1" in text


def test_an_unblessed_model_says_so_first(make: Callable[..., Params]) -> None:
    text = _text(make(metrics={**GOOD_METRICS, "roc_auc": 0.88}))
    assert text.index("Deploy gate: NOT blessed.") < text.index("## Model details")


def test_html_is_one_self_contained_page(make: Callable[..., Params]) -> None:
    params = make()
    card(params)
    html = params.paths.model_card_html.read_text(encoding="utf-8")
    # ROC, PR, calibration, slices, importance, three disparity plots, the trade-off.
    assert html.count('<img src="data:image/png;base64,') == 9
    assert not re.search(r"<(script|link)\b|src=\"(?!data:)|url\(", html)
    assert "<style>" in html and "<table>" in html
    assert f"<td>{GOOD_METRICS['roc_auc']:.4f}</td>" in html


def test_no_placeholder_text_survives(make: Callable[..., Params]) -> None:
    params = make()
    card(params)
    for path in (params.paths.model_card_md, params.paths.model_card_html):
        text = path.read_text(encoding="utf-8")
        refuse_placeholders(text, path.name)  # the same guard the card step runs
        assert not re.search(r"\{\{|\{%|\bTODO\b|\bTBD\b|\bNone\b|(?i:\bnan\b)", text)


@pytest.mark.parametrize("leftover", ["{{ model.version }}", "{% if x %}", "TODO", "TBD", "None"])
def test_placeholder_guard_catches_leftovers(leftover: str) -> None:
    with pytest.raises(PipelineError, match="line 2: placeholder"):
        refuse_placeholders(f"ROC AUC 0.93\nversion {leftover}\n", "model_card.md")


@pytest.mark.parametrize("missing", ["nan", "NaN", "inf"])
def test_placeholder_guard_catches_missing_numbers(missing: str) -> None:
    with pytest.raises(PipelineError, match="placeholder"):
        refuse_placeholders(f"ROC AUC {missing}\n", "model_card.md")


def test_plain_words_are_not_placeholders() -> None:
    refuse_placeholders("Unfair groups: none. Financial data, maintenance.\n", "model_card.md")


def test_a_field_missing_from_the_artifacts_is_an_error(make: Callable[..., Params]) -> None:
    params = make()
    meta = read_json(params.paths.model_metadata)
    del meta["num_trees"]
    write_json_atomic(params.paths.model_metadata, meta)
    with pytest.raises(PipelineError, match="num_trees"):
        card(params)
    assert not params.paths.model_card_md.exists()


def test_a_verdict_for_another_model_is_refused(make: Callable[..., Params]) -> None:
    params = make()
    verdict = read_json(params.paths.verdict)
    write_json_atomic(params.paths.verdict, {**verdict, "model_sha256": "0" * 64})
    with pytest.raises(PipelineError, match="judges another model"):
        card(params)


# --- the card describes exactly what the gate judged --------------------------------------


@pytest.mark.parametrize(
    "judged", ["metrics", "evaluation_identity", "slices", "audit_summary", "model_metadata"]
)
def test_an_input_changed_since_the_verdict_is_refused(
    make: Callable[..., Params], judged: str
) -> None:
    params = make()
    card(params)
    path = {
        "metrics": params.paths.metrics,
        "evaluation_identity": params.paths.evaluation_identity,
        "slices": params.paths.slices,
        "audit_summary": params.paths.audit_summary,
        "model_metadata": params.paths.model_metadata,
    }[judged]
    if path.suffix == ".json":
        # The same content in other bytes (compact JSON): the digest, not the meaning, decides.
        path.write_text(json.dumps(read_json(path)), encoding="utf-8")
    else:
        path.write_text(path.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(PipelineError, match=rf"is not the {judged} the verdict judged"):
        card(params)
    # The earlier card is gone with its figures: nothing can pair it with the new inputs.
    assert not params.paths.model_card_md.exists() and not params.paths.model_card_html.exists()
    assert not list(params.paths.card_figures_dir.glob("*.png"))


def test_a_verdict_without_input_digests_is_refused(make: Callable[..., Params]) -> None:
    params = make()
    verdict = read_json(params.paths.verdict)
    del verdict["inputs"]
    write_json_atomic(params.paths.verdict, verdict)
    with pytest.raises(PipelineError, match="records no input digests"):
        card(params)


def test_a_card_refused_by_the_placeholder_guard_writes_nothing(
    make: Callable[..., Params],
) -> None:
    params = make()
    card(params)
    metadata = read_json(params.paths.model_metadata)
    write_json_atomic(params.paths.model_metadata, {**metadata, "threshold_rule": "TBD"})
    gate(params)
    with pytest.raises(PipelineError, match="placeholder text 'TBD'"):
        card(params)
    assert not params.paths.model_card_md.exists() and not params.paths.model_card_html.exists()
    assert not list(params.paths.card_figures_dir.glob("*.png"))


def test_the_interval_level_is_the_one_evaluated(make: Callable[..., Params]) -> None:
    settings = {"confidence": 0.9, "bootstrap_resamples": 400, "min_slice_size": 30}
    params = make()
    identity = read_json(params.paths.evaluation_identity)
    write_json_atomic(params.paths.evaluation_identity, {**identity, "slice_settings": settings})
    gate(params)
    text = _text(params)
    assert "Each value is the metric with its 90% bootstrap interval (400 resamples)" in text
    assert "95%" not in text


def test_a_metric_the_figures_need_is_read_not_recomputed(make: Callable[..., Params]) -> None:
    metrics = dict(GOOD_METRICS)
    del metrics["fpr"]
    params = make(metrics=metrics)
    with pytest.raises(PipelineError, match="'fpr' missing"):
        card(params)


def test_crossed_slices_are_intersectional_whatever_the_audit_crosses(
    make: Callable[..., Params],
) -> None:
    crossed = slices_table().iloc[[0]].assign(feature="education x sex", value="Bachelors x Male")
    text = _text(make(slices=pd.concat([slices_table(), crossed], ignore_index=True)))
    per_slice, intersectional = text.split("### Intersectional")
    assert "**education x sex**" in intersectional.split("## Ethical considerations")[0]
    assert "**education x sex**" not in per_slice
    assert "**sex**" in per_slice


def test_only_the_figures_the_audit_lists_reach_the_card(make: Callable[..., Params]) -> None:
    params = make()
    leftover = params.paths.audit_figures_dir / "disparities_education.png"
    leftover.write_bytes((params.paths.audit_figures_dir / "disparities_sex.png").read_bytes())
    card(params)
    text = params.paths.model_card_md.read_text(encoding="utf-8")
    assert "disparities_education" not in text
    assert not (params.paths.card_figures_dir / "disparities_education.png").exists()


def test_the_metrics_section_states_both_accuracies(make: Callable[..., Params]) -> None:
    text = _text(make())
    m = GOOD_METRICS
    assert f"at this threshold ({m['accuracy']:.4f})" in text
    assert f"at 0.5 ({m['accuracy_at_half']:.4f})" in text


def test_every_section_is_in_the_table_of_contents_and_its_links_land(
    make: Callable[..., Params],
) -> None:
    params = make()
    text = _text(params)
    titles = re.findall(r"^## (.+)$", text, flags=re.MULTILINE)
    links = re.findall(r"^- \[(.+?)\]\(#([\w-]+)\)$", text, flags=re.MULTILINE)
    assert [title for title, _ in links] == titles and len(titles) >= 12
    html = params.paths.model_card_html.read_text(encoding="utf-8")
    for _, target in links:
        assert html.count(f'href="#{target}"') == 1
        assert html.count(f'id="{target}"') == 1


def test_the_card_names_its_owner_licence_citation_contact_and_history(
    make: Callable[..., Params],
) -> None:
    params = make()
    text = _text(params)
    about = params.card
    for value in (about.owner, about.contact, about.licence, about.citation):
        assert value.strip() in text
    history = text[text.index("## Version history") : text.index("## Deployment gate verdict")]
    assert read_json(params.paths.model_metadata)["model_version"] in history


def test_the_trade_off_and_the_cost_of_a_mitigation_are_stated(
    make: Callable[..., Params],
) -> None:
    from trust_samples import tradeoff_summary, write_tradeoff

    params = make()
    text = _text(params)
    section = text[text.index("## Fairness mitigation") : text.index("## Caveats")]
    assert "**No mitigation is applied.**" in section
    assert "would be 1.05 for sex (now 1.30)" in section
    for method in ("none", "reweighing", "group_thresholds", "threshold_optimizer (reference)"):
        assert f"| {method} | test |" in section
    write_tradeoff(params, configured="group_thresholds")
    text = _text(params)
    summary = tradeoff_summary("group_thresholds")["methods"]
    drop = summary["group_thresholds"]["test"]["accuracy"] - summary["none"]["test"]["accuracy"]
    assert f"accuracy {drop:+.4f}" not in text  # the model itself is unmitigated: no cost claimed
    assert "![Global feature importance](figures/importance.png)" in text


def test_card_says_where_the_training_data_came_from_and_how_it_shifted(
    make: Callable[..., Params],
) -> None:
    params = make()
    text = _text(params)
    assert "**User-supplied data** (not a known release" in text
    assert "no space after commas, CRLF line ends, a UTF-8 byte order mark, gzip-compressed" in text
    shift = read_json(params.paths.data_report)["shift"]
    assert "### Shift from the baseline's training data" in text
    assert "30,000 rows then and 32,561 now" in text
    # Largest shift first, each feature with its PSI and level, as the data report has them.
    rows = [
        f"| {n} | {e['kind']} | {e['psi']:.4f} | {e['level']} |"
        for n, e in (sorted(shift["features"].items(), key=lambda item: -item[1]["psi"]))
    ]
    positions = [text.index(row) for row in rows]
    assert positions == sorted(positions)
    report = read_json(params.paths.data_report)
    report["shift"] = {"baseline": "baseline/train_profile.json", "status": "no baseline profile"}
    write_json_atomic(params.paths.data_report, report)
    gate(params)
    assert "Not compared: no baseline profile." in _text(params)


def test_the_card_is_sealed_for_the_verdict_it_shows(
    make: Callable[..., Params], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = keygen(tmp_path / "keys")
    monkeypatch.setenv(SIGNING_KEY_FILE_ENV, str(private))
    params = make()
    card(params)
    paths = params.paths
    seal = read_json(card_seal_path(paths.model_card_html))
    html = paths.model_card_html.read_bytes()
    verdict_sha256 = sha256_bytes(canonical_bytes(read_json(paths.verdict)))
    keys = VerifyKeys.from_file(public)
    assert card_problem(html, seal, verdict_sha256, keys) is None
    assert "changed after" in (card_problem(html + b" ", seal, verdict_sha256, keys) or "")
    assert "another verdict" in (card_problem(html, seal, "0" * 64, keys) or "")


def test_without_a_key_the_card_seal_records_digests_but_no_signature(
    make: Callable[..., Params], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CENSUS_SIGNING_KEY", raising=False)
    monkeypatch.delenv(SIGNING_KEY_FILE_ENV, raising=False)
    params = make()
    card(params)
    seal = read_json(card_seal_path(params.paths.model_card_html))
    assert seal["signature"] is None
    assert seal["card_html_sha256"] == sha256_bytes(params.paths.model_card_html.read_bytes())
