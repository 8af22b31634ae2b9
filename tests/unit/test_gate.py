"""Gate: passes and fails on crafted metric files, refuses missing metrics, compares baselines."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from trust_samples import (
    FAIR_ON_FDR_CELLS,
    GOOD_METRICS,
    frame_from_cells,
    identity,
    slices_table,
    trust_project,
    write_metrics,
    write_predictions,
)
from typer.testing import CliRunner

from census_pipeline import gate as gate_module
from census_pipeline.audit import audit
from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import read_json, sha256_file, write_json_atomic
from census_pipeline.gate import Check, Verdict, gate, promote
from census_pipeline.signing import SIGNING_KEY_FILE_ENV, VerifyKeys, keygen, signature_problem
from census_pipeline.verdict import canonical_bytes


@pytest.fixture(scope="module")
def audited(tmp_path_factory: pytest.TempPathFactory) -> Params:
    """One audit of the crafted predictions, copied into each test's project (audits are slow)."""
    params = trust_project(tmp_path_factory.mktemp("audited"))
    audit(params)
    return params


@pytest.fixture
def make(audited: Params, tmp_path: Path) -> Callable[..., Params]:
    def build(**kwargs: Any) -> Params:
        params = trust_project(tmp_path, **kwargs)
        shutil.copy2(audited.paths.test_predictions, params.paths.test_predictions)
        shutil.copytree(audited.paths.audit_dir, params.paths.audit_dir)
        return params

    return build


def _check(verdict: Verdict, name: str) -> Check:
    return next(c for c in verdict.checks if c.name == name)


def _with(**changes: float) -> dict[str, Any]:
    return {**GOOD_METRICS, **changes}


@pytest.fixture
def good(make: Callable[..., Params]) -> Params:
    return make()


def test_a_good_model_is_blessed_with_every_check_listed(good: Params) -> None:
    verdict = gate(good)
    assert verdict.blessed and verdict.override is None
    kinds = {c.kind for c in verdict.checks}
    assert kinds == {"overall", "slice", "fairness", "change"}
    assert _check(verdict, "overall:roc_auc").value == GOOD_METRICS["roc_auc"]
    assert verdict.headline_metrics["threshold"] == GOOD_METRICS["threshold"]
    written = read_json(good.paths.verdict)
    assert written["blessed"] is True
    assert written["model_sha256"] == read_json(good.paths.model_metadata)["model_sha256"]
    for check in written["checks"]:
        assert check["reason"].endswith(".") and check["bound"]


def test_reported_only_parity_fails_visibly_without_blocking(good: Params) -> None:
    # The crafted women's FPR is about 0.29x men's: outside the band, reported only by default.
    verdict = gate(good)
    fpr = _check(verdict, "fairness:fpr:sex")
    assert fpr.status == "failed" and not fpr.enforced
    assert fpr.value == pytest.approx((20 + 4) / 504 / ((100 + 10 + 2) / 682), rel=1e-6)
    assert "Female" in fpr.reason
    assert _check(verdict, "fairness:fdr:sex").status == "passed"
    assert verdict.blessed


def test_enforcing_a_failing_parity_blocks(make: Callable[..., Params]) -> None:
    rule = {"enforced": True, "reason": "Test policy: false positives must be balanced."}
    params = make(overrides={"gate.fairness.fpr": rule})
    verdict = gate(params)
    assert not verdict.blessed
    assert "fairness:fpr:sex" in [c.name for c in verdict.failures]


def test_a_metric_below_its_bound_fails_with_the_numbers(make: Callable[..., Params]) -> None:
    params = make(metrics=_with(roc_auc=0.9012))
    verdict = gate(params)
    assert not verdict.blessed
    check = _check(verdict, "overall:roc_auc")
    assert check.status == "failed" and check.bound == ">= 0.92"
    assert "0.9012" in check.reason


def test_an_upper_bound_fails_too(make: Callable[..., Params]) -> None:
    params = make(metrics=_with(brier=0.12))
    assert _check(gate(params), "overall:brier").status == "failed"


@pytest.mark.parametrize("bad", [None, "high", float("nan"), True])
def test_a_missing_or_non_numeric_metric_is_an_error(
    make: Callable[..., Params], bad: object
) -> None:
    metrics = dict(GOOD_METRICS)
    if bad is None:
        del metrics["brier"]
    else:
        metrics["brier"] = bad
    params = make()
    gate(params)  # an earlier blessing, which a gate that cannot judge must not leave behind
    params.paths.metrics.write_text(json.dumps(metrics), encoding="utf-8")  # NaN as JSON's NaN
    write_json_atomic(params.paths.evaluation_identity, identity(params))
    with pytest.raises(PipelineError, match=r"metrics\.json: metric 'brier'"):
        gate(params)
    assert not params.paths.verdict.exists()


def test_a_slice_confidently_below_the_floor_fails(make: Callable[..., Params]) -> None:
    weak = {("race", "Black"): {"recall_ci_high": 0.21}}
    params = make(slices=slices_table(weak))
    check = _check(gate(params), "slice:recall")
    assert check.status == "failed" and check.value == pytest.approx(0.21)
    assert check.detail["failing"] == ["race=Black"]


def test_a_small_slice_below_the_floor_is_not_judged(make: Callable[..., Params]) -> None:
    # race=Amer-Indian-Eskimo has n = 60 < 100 and a recall CI upper bound of 0.30.
    weak = {("race", "Amer-Indian-Eskimo"): {"recall_ci_high": 0.05}}
    params = make(slices=slices_table(weak))
    assert _check(gate(params), "slice:recall").status == "passed"


def test_without_a_baseline_change_checks_are_skipped_not_passed(good: Params) -> None:
    verdict = gate(good)
    changes = [c for c in verdict.checks if c.kind == "change"]
    assert changes and all(c.status == "skipped" and c.passed is None for c in changes)
    assert verdict.baseline is None


def test_promote_then_a_drop_beyond_the_bound_fails(make: Callable[..., Params]) -> None:
    params = make()
    gate(params)
    folder = promote(params)
    assert read_json(folder / "metrics.json")["roc_auc"] == GOOD_METRICS["roc_auc"]
    write_metrics(params, _with(roc_auc=GOOD_METRICS["roc_auc"] - 0.006))
    verdict = gate(params)
    check = _check(verdict, "change:roc_auc")
    assert check.status == "failed" and check.value == pytest.approx(-0.006)
    assert verdict.baseline is not None and not verdict.blessed
    write_metrics(params, _with(roc_auc=GOOD_METRICS["roc_auc"] - 0.004))
    assert _check(gate(params), "change:roc_auc").status == "passed"


@pytest.mark.parametrize("delta", [-0.0005, -1e-9])
def test_a_zero_drop_bound_allows_no_drop_at_all(make: Callable[..., Params], delta: float) -> None:
    params = make(overrides={"gate.change.max_drop": {"roc_auc": 0}, "gate.change.max_rise": {}})
    gate(params)
    promote(params)
    write_metrics(params, _with(roc_auc=GOOD_METRICS["roc_auc"] + delta))
    check = _check(gate(params), "change:roc_auc")
    assert check.status == "failed" and check.bound == "drop <= 0"
    write_metrics(params, _with(roc_auc=GOOD_METRICS["roc_auc"]))
    assert _check(gate(params), "change:roc_auc").status == "passed"


def test_a_zero_rise_bound_allows_no_rise(make: Callable[..., Params]) -> None:
    params = make(overrides={"gate.change.max_rise": {"brier": 0.0}})
    gate(params)
    promote(params)
    write_metrics(params, _with(brier=GOOD_METRICS["brier"] + 0.0001))
    check = _check(gate(params), "change:brier")
    assert check.status == "failed" and check.bound == "rise <= 0"
    write_metrics(params, _with(brier=GOOD_METRICS["brier"] - 0.0001))
    assert _check(gate(params), "change:brier").status == "passed"


def test_a_rise_of_a_lower_is_better_metric_is_bounded(make: Callable[..., Params]) -> None:
    params = make()
    gate(params)
    promote(params)
    write_metrics(params, _with(brier=GOOD_METRICS["brier"] + 0.006))
    assert _check(gate(params), "change:brier").status == "failed"


def test_promote_saves_the_training_data_profile_for_the_next_shift_report(
    make: Callable[..., Params],
) -> None:
    params = make()
    gate(params)
    profile = params.paths.train_profile
    profile.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(profile, {"version": 1, "rows": 3, "numeric": {}, "categorical": {}})
    promote(params)
    assert params.paths.baseline_profile.read_bytes() == profile.read_bytes()
    # A model promoted without a profile must not leave the previous model's profile behind.
    profile.unlink()
    gate(params)
    promote(params)
    assert not params.paths.baseline_profile.exists()


def test_promote_refuses_an_unblessed_model(make: Callable[..., Params]) -> None:
    params = make(metrics=_with(f1=0.5))
    gate(params)
    with pytest.raises(PipelineError, match="not blessed"):
        promote(params)
    assert not (params.paths.baseline_dir / "metrics.json").exists()


def test_promote_refuses_a_verdict_for_another_model(make: Callable[..., Params]) -> None:
    params = make()
    gate(params)
    meta = read_json(params.paths.model_metadata)
    write_json_atomic(params.paths.model_metadata, {**meta, "model_sha256": "f" * 64})
    with pytest.raises(PipelineError, match="run `census-pipeline gate` first"):
        promote(params)


def test_override_blesses_and_records_the_reason(make: Callable[..., Params]) -> None:
    params = make(metrics=_with(f1=0.61))
    verdict = gate(params, override="Demo build for the course review, not for users.")
    assert verdict.blessed
    assert verdict.override is not None
    assert verdict.override.failed_checks == ["overall:f1"]
    assert read_json(params.paths.verdict)["override"]["reason"].startswith("Demo build")


@pytest.mark.parametrize("reason", ["", "   "])
def test_an_empty_override_reason_is_refused(good: Params, reason: str) -> None:
    with pytest.raises(PipelineError, match="needs a reason"):
        gate(good, override=reason)


def test_a_stale_audit_is_refused(make: Callable[..., Params]) -> None:
    params = make()
    # A new evaluation of the same model (its predictions changed), but no new audit.
    cells = {**FAIR_ON_FDR_CELLS, ("Black", "Male"): (31, 10, 59, 10)}
    write_predictions(params, frame_from_cells(cells))
    write_metrics(params, GOOD_METRICS)
    with pytest.raises(PipelineError, match=r"audits other predictions.*census-pipeline audit"):
        gate(params)


def test_cli_exit_status_follows_the_blessing(make: Callable[..., Params]) -> None:
    runner = CliRunner()
    params = make(metrics=_with(accuracy=0.80))
    yaml_path = str(params.paths.metrics.parents[2] / "params.yaml")
    failed = runner.invoke(app, ["gate", "--params", yaml_path])
    assert failed.exit_code == 1
    assert "overall:accuracy" in failed.output
    blessed = runner.invoke(app, ["gate", "--params", yaml_path, "--override", "Known, accepted."])
    assert blessed.exit_code == 0, blessed.output
    assert runner.invoke(app, ["promote", "--params", yaml_path]).exit_code == 0


# --- the inputs must belong to the model the gate blesses -----------------------------------


@dataclass
class Blessed:
    params: Params

    def refuses(self, match: str) -> None:
        """The gate fails with `match` and leaves no verdict (the earlier blessing is gone)."""
        with pytest.raises(PipelineError, match=match):
            gate(self.params)
        assert not self.params.paths.verdict.exists()


@pytest.fixture
def blessed(make: Callable[..., Params]) -> Blessed:
    params = make()
    assert gate(params).blessed
    return Blessed(params)


def test_verdict_records_the_digest_of_every_input(good: Params) -> None:
    paths = good.paths
    inputs = gate(good).inputs
    assert inputs == {
        "metrics": sha256_file(paths.metrics),
        "evaluation_identity": sha256_file(paths.evaluation_identity),
        "slices": sha256_file(paths.slices),
        "audit_summary": sha256_file(paths.audit_summary),
        "model_metadata": sha256_file(paths.model_metadata),
        "test_predictions": sha256_file(paths.test_predictions),
    }


def test_an_evaluation_of_another_model_is_refused(blessed: Blessed) -> None:
    paths = blessed.params.paths
    other = {**read_json(paths.evaluation_identity), "model_sha256": "e" * 64}
    write_json_atomic(paths.evaluation_identity, other)
    blessed.refuses(r"evaluates model eeeeeeeeeeee, not the current")


def test_an_evaluation_without_a_model_identity_is_refused(blessed: Blessed) -> None:
    paths = blessed.params.paths
    old = read_json(paths.evaluation_identity)
    del old["model_sha256"]
    write_json_atomic(paths.evaluation_identity, old)
    blessed.refuses(r"evaluates model \(not recorded\)")


def test_slices_from_another_evaluation_are_refused(blessed: Blessed) -> None:
    weak = {("race", "Black"): {"recall_ci_high": 0.21}}
    slices_table(weak).to_csv(blessed.params.paths.slices, index=False)
    blessed.refuses(r"slices\.csv: not the file the evaluation in identity\.json wrote")


def test_metrics_from_another_evaluation_are_refused(blessed: Blessed) -> None:
    paths = blessed.params.paths
    write_json_atomic(paths.metrics, {**read_json(paths.metrics), "roc_auc": 0.99})
    blessed.refuses(r"metrics\.json: not the file the evaluation in identity\.json wrote")


def test_predictions_scored_by_another_model_are_refused(blessed: Blessed) -> None:
    params = blessed.params
    write_predictions(params, frame_from_cells(FAIR_ON_FDR_CELLS), model_sha256="d" * 64)
    write_metrics(params, GOOD_METRICS)
    blessed.refuses(r"scored by model dddddddddddd")


def test_missing_predictions_are_an_error_not_a_skipped_check(blessed: Blessed) -> None:
    blessed.params.paths.test_predictions.unlink()
    blessed.refuses(r"test_predictions\.parquet: not found")


def test_an_audit_of_another_model_is_refused(blessed: Blessed) -> None:
    paths = blessed.params.paths
    write_json_atomic(paths.audit_summary, {**read_json(paths.audit_summary), "model_sha256": None})
    blessed.refuses(r"audits model \(not recorded\).*census-pipeline audit")


@pytest.mark.parametrize("field", ["band", "parities", "tau", "predictions_sha256"])
def test_a_malformed_audit_summary_removes_the_old_blessing(blessed: Blessed, field: str) -> None:
    paths = blessed.params.paths
    summary = read_json(paths.audit_summary)
    del summary[field]
    write_json_atomic(paths.audit_summary, summary)
    blessed.refuses(rf"summary\.json: not a valid audit summary \({field}: Field required\)")


def test_a_group_record_without_a_status_is_malformed(blessed: Blessed) -> None:
    paths = blessed.params.paths
    summary = read_json(paths.audit_summary)
    del summary["parities"]["fdr"]["groups"][0]["status"]
    write_json_atomic(paths.audit_summary, summary)
    blessed.refuses(r"not a valid audit summary \(parities\.fdr\.groups\.0\.status")


def test_any_failure_removes_the_old_blessing(
    blessed: Blessed, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_: object) -> list[Check]:
        raise KeyError("band")

    monkeypatch.setattr(gate_module, "fairness_checks", broken)
    with pytest.raises(KeyError):
        gate(blessed.params)
    assert not blessed.params.paths.verdict.exists()


@pytest.mark.parametrize(
    ("knob", "value", "recorded"),
    [("tau", 0.75, "tau 0.8 (params.yaml: 0.75)"), ("min_support", 50, "min_support 30")],
)
def test_an_audit_with_another_tolerance_is_stale(
    make: Callable[..., Params], knob: str, value: float, recorded: str
) -> None:
    params = make(overrides={f"audit.{knob}": value})
    with pytest.raises(PipelineError, match=rf"stale audit: it applied {re.escape(recorded)}"):
        gate(params)
    assert not params.paths.verdict.exists()


def test_the_policy_records_the_tolerance_the_audit_applied(good: Params) -> None:
    applied = read_json(good.paths.audit_summary)
    policy = gate(good).policy["audit"]
    assert policy == {k: applied[k] for k in ("tau", "alpha", "min_support")}


def _undefine(params: Params, parity: str, attribute: str) -> None:
    """Every group of `attribute` on `parity` undefined, as when the reference rate is zero."""
    summary = read_json(params.paths.audit_summary)
    for group in summary["parities"][parity]["groups"]:
        if group["attribute"] == attribute:
            group.update(disparity=None, p_value=None, p_holm=None, status="undefined")
    write_json_atomic(params.paths.audit_summary, summary)


def test_an_enforced_parity_with_nothing_measurable_fails(good: Params) -> None:
    _undefine(good, "fdr", "sex")
    verdict = gate(good)
    check = _check(verdict, "fairness:fdr:sex")
    assert check.enforced and check.status == "failed" and check.passed is False
    assert check.value is None
    assert "could not be checked" in check.reason and "Male" in check.reason
    assert check.detail["undefined"] == ["Female"]
    assert not verdict.blessed
    assert "fairness:fdr:sex" in [c.name for c in verdict.failures]


def test_a_reported_parity_with_nothing_measurable_is_not_shown_as_passed(good: Params) -> None:
    _undefine(good, "prev", "race")
    verdict = gate(good)
    check = _check(verdict, "fairness:prev:race")
    assert check.status == "failed" and not check.enforced
    assert verdict.blessed


# --- signing ----------------------------------------------------------------------------------


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_the_gate_signs_the_verdict_as_written_when_a_key_is_configured(
    good: Params, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = keygen(tmp_path / "keys")
    monkeypatch.setenv(SIGNING_KEY_FILE_ENV, str(private))
    runner = CliRunner()
    result = runner.invoke(
        app, ["gate", "--params", str(good.paths.metrics.parents[2] / "params.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "verdict signed by key" in result.output
    raw = read_json(good.paths.verdict)
    verdict = Verdict.model_validate(raw)
    keys = VerifyKeys.from_file(public)
    # What a verifier re-reads from the file verifies: the signature covers the model's digest,
    # every input's digest (the metadata's among them), every check and the decision.
    assert signature_problem(canonical_bytes(raw), verdict.signature, keys) is None
    assert {"model_sha256", "inputs", "checks", "blessed"} <= set(json.loads(canonical_bytes(raw)))
    assert set(raw["inputs"]) >= {"model_metadata", "metrics", "slices", "audit_summary"}
    raw["inputs"]["metrics"] = "0" * 64
    assert "edited" in (signature_problem(canonical_bytes(raw), verdict.signature, keys) or "")


def test_without_a_key_the_gate_says_the_verdict_is_unsigned(
    good: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CENSUS_SIGNING_KEY", SIGNING_KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner()
    result = runner.invoke(
        app, ["gate", "--params", str(good.paths.metrics.parents[2] / "params.yaml")]
    )
    assert "verdict NOT signed" in result.output
    assert read_json(good.paths.verdict)["signature"] is None


def test_a_broken_signing_key_fails_the_gate_and_removes_the_old_verdict(
    good: Params, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate(good)
    monkeypatch.setenv("CENSUS_SIGNING_KEY", _public_pem(Ed25519PrivateKey.generate()).decode())
    with pytest.raises(PipelineError, match="CENSUS_SIGNING_KEY: not a readable"):
        gate(good)
    assert not good.paths.verdict.exists()


def test_a_signed_verdict_is_promoted_with_its_signature(good: Params) -> None:
    gate(good, signing_key=Ed25519PrivateKey.generate())
    folder = promote(good)
    assert read_json(folder / "verdict.json")["signature"]["algorithm"] == "ed25519"


def test_promote_refuses_a_hand_flipped_blessing(make: Callable[..., Params]) -> None:
    params = make(metrics=_with(accuracy=0.80))
    gate(params)
    verdict = read_json(params.paths.verdict)
    write_json_atomic(params.paths.verdict, {**verdict, "blessed": True})
    with pytest.raises(
        PipelineError, match=r"not a verdict the gate wrote \(blessed=True although"
    ):
        promote(params)
    assert not (params.paths.baseline_dir / "verdict.json").exists()
