"""The deploy gate: check the evaluated model against the policy in params.yaml and say why.

The verdict lists every check with its value, bound, outcome and a one-sentence reason, so it can
be read and argued with on its own. It is written next to the model (never into the model's
metadata, which belongs to the train step) and names the model's sha256, so the service can tell
whether a verdict belongs to the model it loads. A blessed model can be promoted: its metrics and
verdict are copied to the committed baseline folder, which later gates compare against.

Nothing here passes by default: a metric the policy names but the artifacts lack is an error,
inputs that belong to another model (or an audit of other predictions, or with another
tolerance) are refused, an enforced parity that cannot be measured fails, and a check that cannot
run (no baseline yet) says so as `skipped` instead of vanishing.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Final, Literal

import pandas as pd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import BaseModel, ConfigDict, ValidationError

from census_pipeline.artifact import ModelMetadata, read_metadata
from census_pipeline.audit import PARITY_NAMES, distance_from_parity
from census_pipeline.config import PREDICTIONS_MODEL_KEY, GateParams, MetricBound, Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import (
    parquet_metadata,
    read_json,
    replace_all,
    sha256_file,
    write_json_atomic,
)
from census_pipeline.signing import sign, signing_key_from_env
from census_pipeline.verdict import (
    SIGNATURE_KEY,
    Check,
    Override,
    Verdict,
    canonical_bytes,
    consistency_problem,
)

__all__ = ["Check", "Override", "Verdict", "gate", "judge", "promote"]

log = logging.getLogger(__name__)

HEADLINE: Final = ("roc_auc", "accuracy", "f1", "precision", "recall", "threshold")
BASELINE_METRICS: Final = "metrics.json"
BASELINE_VERDICT: Final = "verdict.json"


def gate(
    params: Params, override: str | None = None, signing_key: Ed25519PrivateKey | None = None
) -> Verdict:
    """Judge the model, write models/verdict.json and return the verdict.

    The verdict is signed with `signing_key`, else with the key the environment configures
    (`signing.SIGNING_KEY_ENV` / `SIGNING_KEY_FILE_ENV`), else left unsigned. The signature
    covers the whole verdict: the model's sha256, every judged input's sha256 (the metadata's
    included), every check and the decision.

    When the gate fails for any reason (a missing metric, a stale audit, a malformed file, a
    broken key, an interrupt), any earlier verdict is removed: a blessing must never outlive a
    gate that could not run.
    """
    if override is not None and not override.strip():
        raise PipelineError(
            "--override needs a reason: say why this model may ship despite failing"
        )
    paths = params.paths
    try:
        key = signing_key if signing_key is not None else signing_key_from_env()
        verdict = signed(judge(params, override), key)
        write_json_atomic(paths.verdict, verdict.model_dump(mode="json"))
    except BaseException:
        paths.verdict.unlink(missing_ok=True)
        raise
    log.info("gate: blessed=%s, %d failing checks", verdict.blessed, len(verdict.failures))
    return verdict


def signed(verdict: Verdict, key: Ed25519PrivateKey | None) -> Verdict:
    """The verdict with its signature over its canonical bytes (unchanged without a key)."""
    if key is None:
        return verdict
    content = verdict.model_dump(mode="json", exclude={SIGNATURE_KEY})
    return verdict.model_copy(update={SIGNATURE_KEY: sign(canonical_bytes(content), key)})


def judge(params: Params, override: str | None) -> Verdict:
    paths = params.paths
    metadata = read_metadata(paths.model_metadata)
    metrics = read_metrics(paths.metrics)
    check_evaluation_identity(metadata, params)
    summary = read_audit_summary(paths.audit_summary, paths.test_predictions, metadata)
    check_audit_settings(summary, params)
    baseline = read_baseline(paths.baseline_dir)
    checks = [
        *overall_checks(metrics, params.gate, paths.metrics),
        *slice_checks(read_slices(paths.slices), params.gate),
        *fairness_checks(summary, params.gate, metadata.mitigated),
        *change_checks(metrics, baseline, params.gate, paths.baseline_dir / BASELINE_METRICS),
    ]
    return decide(checks, override, metadata, metrics, summary, params, baseline)


def decide(
    checks: list[Check],
    override: str | None,
    metadata: ModelMetadata,
    metrics: dict[str, Any],
    summary: AuditSummary,
    params: Params,
    baseline: dict[str, Any] | None,
) -> Verdict:
    """Blessed when no enforced check failed, or when a reason to ship anyway was given."""
    failed = [c.name for c in checks if c.enforced and c.status == "failed"]
    recorded = None
    if override is not None:
        recorded = Override(reason=override.strip(), failed_checks=failed)
    return Verdict(
        blessed=not failed or recorded is not None,
        model_version=metadata.model_version,
        model_sha256=metadata.model_sha256,
        checks=checks,
        override=recorded,
        policy=policy_record(params.gate, summary, metadata),
        headline_metrics={k: float(metrics[k]) for k in HEADLINE},
        baseline=_baseline_identity(baseline),
        inputs=input_digests(params, baseline is not None),
    )


def policy_record(
    policy: GateParams, summary: AuditSummary, metadata: ModelMetadata
) -> dict[str, Any]:
    """What was applied, including the tolerance the audit used (checked equal to params).

    Each parity's `enforced` is what applied to this model: `enforced_when_mitigated` when the
    model carries a mitigation (and the policy sets it), so the card shows what was enforced.
    """
    record = policy.model_dump(mode="json")
    mitigated = metadata.mitigated
    for parity, rule in policy.fairness.items():
        record["fairness"][parity]["enforced"] = rule.applies(mitigated)
    mitigation = metadata.mitigation.method if metadata.mitigation is not None else "none"
    return {
        **record,
        "mitigation": mitigation,
        "audit": {"tau": summary.tau, "alpha": summary.alpha, "min_support": summary.min_support},
    }


# --- reading the inputs -----------------------------------------------------------------------


def read_metrics(path: Path) -> dict[str, Any]:
    metrics = read_json(path)
    if not isinstance(metrics, dict):
        raise PipelineError(f"{path}: expected a JSON object of metrics")
    for key in HEADLINE:
        metric_value(metrics, key, path)
    return metrics


def metric_value(metrics: dict[str, Any], name: str, source: Path) -> float:
    """A finite number or an error: a check must never pass because its metric is absent."""
    if name not in metrics:
        raise PipelineError(f"{source}: metric {name!r} missing (the gate policy needs it)")
    value = metrics[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise PipelineError(f"{source}: metric {name!r} is {value!r}, expected a finite number")
    return float(value)


def check_evaluation_identity(metadata: ModelMetadata, params: Params) -> None:
    """The evaluation outputs must all come from one evaluation of the model being judged.

    identity.json names the model evaluated and the digests of metrics.json, the slices table
    and the predictions written beside it; the predictions file names its model in its own
    metadata.
    """
    paths = params.paths
    rerun = "run `census-pipeline evaluate`"
    identity = read_json(paths.evaluation_identity)
    if not isinstance(identity, dict):
        raise PipelineError(f"{paths.evaluation_identity}: expected a JSON object; {rerun}")
    model = metadata.model_sha256
    evaluated = identity.get("model_sha256")
    if evaluated != model:
        raise PipelineError(
            f"{paths.evaluation_identity}: evaluates model {_short(evaluated)}, not the current "
            f"{model[:12]} of {paths.model_metadata.name}; {rerun}"
        )
    written = identity.get("outputs_sha256")
    if not isinstance(written, dict):
        raise PipelineError(f"{paths.evaluation_identity}: no 'outputs_sha256' record; {rerun}")
    checked = (
        ("metrics", paths.metrics),
        ("slices", paths.slices),
        ("test_predictions", paths.test_predictions),
    )
    for key, path in checked:
        if not path.is_file():
            raise PipelineError(f"{path}: not found; {rerun}")
        if written.get(key) != sha256_file(path):
            raise PipelineError(
                f"{path}: not the file the evaluation in {paths.evaluation_identity.name} wrote; "
                f"{rerun}"
            )
    scored_by = parquet_metadata(paths.test_predictions).get(PREDICTIONS_MODEL_KEY)
    if scored_by != model:
        raise PipelineError(
            f"{paths.test_predictions}: scored by model {_short(scored_by)}, not the current "
            f"{model[:12]}; {rerun}"
        )


def _short(digest: object) -> str:
    return digest[:12] if isinstance(digest, str) else "(not recorded)"


def read_slices(path: Path) -> pd.DataFrame:
    """The slices table with text kept as text (a slice value is never read as a number or NA)
    and every other column numeric, where only an empty cell or NaN means undefined."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `census-pipeline evaluate` first)") from exc
    for column in table.columns.drop(["feature", "value", "small"], errors="ignore"):
        text = table[column].str.strip()
        undefined = text.isin(["", "NaN", "nan"])
        numbers = pd.to_numeric(text.where(~undefined), errors="coerce")
        if bad := (numbers.isna() & ~undefined).to_numpy().nonzero()[0].tolist():
            row = bad[0]
            raise PipelineError(
                f"{path}: row {row + 2}: column {column!r}: {table[column].iloc[row]!r} "
                "is not a number"
            )
        table[column] = numbers
    return table


class _Summary(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class GroupRecord(_Summary):
    attribute: str
    group: str
    value: float | None
    reference_value: float | None
    disparity: float | None
    p_holm: float | None
    support: int
    status: Literal["fair", "unfair", "inconclusive", "undefined"]


class ParitySummary(_Summary):
    groups: list[GroupRecord]


class AuditSummary(_Summary):
    """The fields of the audit's summary.json the gate relies on, validated before use."""

    tau: float
    band: tuple[float, float]
    alpha: float
    min_support: int
    attributes: list[str]
    reference_groups: dict[str, str]
    predictions_sha256: str
    model_sha256: str | None
    parities: dict[str, ParitySummary]


def read_audit_summary(path: Path, predictions: Path, metadata: ModelMetadata) -> AuditSummary:
    """The audit's summary, refused when malformed or when it describes other predictions (or
    another model) than the current ones."""
    raw = read_json(path)
    try:
        summary = AuditSummary.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PipelineError(
            f"{path}: not a valid audit summary ({where}: {first['msg']}); "
            "run `census-pipeline audit`"
        ) from exc
    if not predictions.is_file():
        raise PipelineError(f"{predictions}: not found; run `census-pipeline evaluate`")
    if summary.predictions_sha256 != sha256_file(predictions):
        raise PipelineError(
            f"{path}: audits other predictions than {predictions.name}; run `census-pipeline audit`"
        )
    if summary.model_sha256 != metadata.model_sha256:
        raise PipelineError(
            f"{path}: audits model {_short(summary.model_sha256)}, not the current "
            f"{metadata.model_sha256[:12]}; run `census-pipeline audit`"
        )
    missing = [a for a in summary.attributes if a not in summary.reference_groups]
    if missing:
        raise PipelineError(
            f"{path}: no reference group for {missing}; run `census-pipeline audit`"
        )
    return summary


def check_audit_settings(summary: AuditSummary, params: Params) -> None:
    """The verdict records the tolerance the audit applied; it must be the one params.yaml sets,
    or the audit is stale (run before the tolerance changed)."""
    wanted = params.audit
    applied = {"tau": summary.tau, "alpha": summary.alpha, "min_support": summary.min_support}
    expected = {"tau": wanted.tau, "alpha": wanted.alpha, "min_support": wanted.min_support}
    differ = [
        f"{key} {applied[key]} (params.yaml: {expected[key]})"
        for key in applied
        if applied[key] != expected[key]
    ]
    if differ:
        raise PipelineError(
            f"{params.paths.audit_summary}: stale audit: it applied {', '.join(differ)}; "
            "run `census-pipeline audit`"
        )


def read_baseline(folder: Path) -> dict[str, Any] | None:
    """The promoted baseline's metrics and verdict, or None when nothing was promoted yet."""
    metrics_path = folder / BASELINE_METRICS
    if not metrics_path.is_file():
        return None
    verdict_path = folder / BASELINE_VERDICT
    verdict = read_json(verdict_path) if verdict_path.is_file() else {}
    return {"metrics": read_json(metrics_path), "verdict": verdict}


def _baseline_identity(baseline: dict[str, Any] | None) -> dict[str, Any] | None:
    if baseline is None:
        return None
    verdict = baseline["verdict"]
    return {k: verdict.get(k) for k in ("model_version", "model_sha256")}


def input_files(params: Params, with_baseline: bool) -> dict[str, Path]:
    """Every file the gate judged, by the name the verdict's `inputs` records it under."""
    paths = params.paths
    files = {
        "metrics": paths.metrics,
        "evaluation_identity": paths.evaluation_identity,
        "slices": paths.slices,
        "audit_summary": paths.audit_summary,
        "model_metadata": paths.model_metadata,
        "test_predictions": paths.test_predictions,
    }
    if with_baseline:
        files["baseline_metrics"] = paths.baseline_dir / BASELINE_METRICS
        if (paths.baseline_dir / BASELINE_VERDICT).is_file():
            files["baseline_verdict"] = paths.baseline_dir / BASELINE_VERDICT
    return files


def input_digests(params: Params, with_baseline: bool) -> dict[str, str]:
    """Which files were judged, so a verdict can be traced to exactly these artifacts."""
    return {name: sha256_file(path) for name, path in input_files(params, with_baseline).items()}


# --- the checks -------------------------------------------------------------------------------


def overall_checks(metrics: dict[str, Any], policy: GateParams, source: Path) -> list[Check]:
    return [
        _bound_check(name, metric_value(metrics, name, source), bound)
        for name, bound in policy.overall.items()
    ]


def _bound_check(name: str, value: float, bound: MetricBound) -> Check:
    low_ok = bound.min is None or value >= bound.min
    high_ok = bound.max is None or value <= bound.max
    passed = low_ok and high_ok
    text = _bound_text(bound)
    verb = "meets" if passed else "misses"
    return Check(
        name=f"overall:{name}",
        kind="overall",
        value=value,
        bound=text,
        passed=passed,
        status="passed" if passed else "failed",
        enforced=True,
        reason=f"Test-set {name} is {value:.4f}, which {verb} the bound {text}.",
    )


def _bound_text(bound: MetricBound) -> str:
    parts = []
    if bound.min is not None:
        parts.append(f">= {bound.min:g}")
    if bound.max is not None:
        parts.append(f"<= {bound.max:g}")
    return " and ".join(parts)


def slice_checks(slices: pd.DataFrame, policy: GateParams) -> list[Check]:
    """Per metric: no slice of at least min_n rows whose CI upper end is below the floor."""
    rules = policy.slices
    checks = []
    for metric, floor in rules.floors.items():
        column = f"{metric}_ci_high"
        needed = {"feature", "value", "n", column}
        if missing := needed - set(slices.columns):
            raise PipelineError(f"slices table: column(s) {sorted(missing)} missing (gate.slices)")
        large = slices[slices["n"] >= rules.min_n]
        if large.empty:
            raise PipelineError(f"slices table: no slice has n >= {rules.min_n}; nothing to judge")
        undefined = large[large[column].isna()]
        judged = large[large[column].notna()]
        if judged.empty:
            raise PipelineError(
                f"slices table: {column} is undefined for every slice it should judge"
            )
        below = judged[judged[column] < floor].sort_values(column)
        checks.append(_slice_check(metric, floor, rules.min_n, judged, below, undefined))
    return checks


def _slice_check(
    metric: str,
    floor: float,
    min_n: int,
    judged: pd.DataFrame,
    below: pd.DataFrame,
    undefined: pd.DataFrame,
) -> Check:
    column = f"{metric}_ci_high"
    names = [f"{r.feature}={r.value}" for r in below.itertuples()]
    worst = float(judged[column].min())
    lowest = judged.loc[judged[column].idxmin()]
    worst_name = f"{lowest['feature']}={lowest['value']}"
    if names:
        reason = (
            f"{len(names)} of {len(judged)} slices with n >= {min_n} have {metric} CI upper "
            f"bound below {floor:g}, worst {names[0]} at {worst:.3f}."
        )
    else:
        reason = (
            f"All {len(judged)} slices with n >= {min_n} have {metric} CI upper bounds of at "
            f"least {floor:g}; the lowest is {worst_name} at {worst:.3f}."
        )
    if len(undefined):
        reason = reason[:-1] + f"; {len(undefined)} had no defined {metric} (no cases to measure)."
    return Check(
        name=f"slice:{metric}",
        kind="slice",
        value=worst,
        bound=f"CI upper bound >= {floor:g} for slices with n >= {min_n}",
        passed=not names,
        status="failed" if names else "passed",
        enforced=True,
        reason=reason,
        detail={
            "failing": names,
            "undefined": [f"{r.feature}={r.value}" for r in undefined.itertuples()],
        },
    )


def fairness_checks(
    summary: AuditSummary, policy: GateParams, mitigated: bool = False
) -> list[Check]:
    """One check per parity and attribute, enforced or reported as the policy says (for a
    mitigated model, as its `enforced_when_mitigated` says where set)."""
    checks = []
    for parity, rule in policy.fairness.items():
        if parity not in summary.parities:
            raise PipelineError(
                f"audit summary: parity {parity!r} missing (gate.fairness needs it)"
            )
        groups = summary.parities[parity].groups
        for attribute in summary.attributes:
            own = [g for g in groups if g.attribute == attribute]
            enforced = rule.applies(mitigated)
            checks.append(_fairness_check(parity, attribute, own, enforced, summary))
    return checks


def _fairness_check(
    parity: str,
    attribute: str,
    groups: list[GroupRecord],
    enforced: bool,
    summary: AuditSummary,
) -> Check:
    band = summary.band
    unfair = [g for g in groups if g.status == "unfair"]
    defined = [g for g in groups if g.disparity is not None]
    undefined = [g.group for g in groups if g.disparity is None]
    worst = max(
        unfair or defined, key=lambda g: distance_from_parity(g.disparity or 0.0), default=None
    )
    ref = summary.reference_groups[attribute]
    name = PARITY_NAMES[parity]
    # A parity with no measurable group cannot hold: nothing was compared.
    unmeasured = not defined
    failed = bool(unfair) or unmeasured
    if unmeasured:
        why = "no group to compare" if not groups else f"{ref}'s rate is zero or undefined"
        reason = (
            f"No {attribute} group has a defined {name} disparity against {ref}'s ({why}), "
            "so this parity could not be checked and does not pass."
        )
    elif unfair and worst is not None:
        others = f" (and {len(unfair) - 1} more)" if len(unfair) > 1 else ""
        reason = (
            f"{worst.group}'s {name} is {worst.disparity:.2f}x {ref}'s, outside "
            f"[{band[0]:.2f}, {band[1]:.2f}] and significant "
            f"(Holm p = {worst.p_holm:.2g}){others}."
        )
    else:
        reason = f"No {attribute} group's {name} is significantly outside the band around {ref}'s"
        if worst is not None:
            reason += (
                f"; the furthest, {worst.group} at {worst.disparity:.2f}x, is "
                f"{worst.status} (support {worst.support})"
            )
        reason += "."
    return Check(
        name=f"fairness:{parity}:{attribute}",
        kind="fairness",
        value=None if worst is None else worst.disparity,
        bound=f"disparity within [{band[0]:.2f}, {band[1]:.2f}] unless not significant",
        passed=not failed,
        status="failed" if failed else "passed",
        enforced=enforced,
        reason=reason,
        detail={
            "reference": ref,
            "worst_group": None if worst is None else worst.group,
            "unfair": [g.group for g in unfair],
            "inconclusive": [g.group for g in groups if g.status == "inconclusive"],
            "undefined": undefined,
        },
    )


def change_checks(
    metrics: dict[str, Any], baseline: dict[str, Any] | None, policy: GateParams, source: Path
) -> list[Check]:
    # The direction is carried explicitly: a bound of 0 ("no drop at all") has no sign to tell
    # a drop from a rise by, and -0.0 < 0 is False.
    rules: list[tuple[str, Literal["drop", "rise"], float]]
    rules = [(m, "drop", limit) for m, limit in policy.change.max_drop.items()]
    rules += [(m, "rise", limit) for m, limit in policy.change.max_rise.items()]
    return [_change_check(metrics, baseline, m, way, limit, source) for m, way, limit in rules]


def _change_check(
    metrics: dict[str, Any],
    baseline: dict[str, Any] | None,
    metric: str,
    way: Literal["drop", "rise"],
    limit: float,
    source: Path,
) -> Check:
    """`drop` bounds a fall (higher is better), `rise` a climb (lower is better); 0 allows none."""
    current = metric_value(metrics, metric, Path("current metrics"))
    bound = f"{way} <= {limit:g}"
    name = f"change:{metric}"
    if baseline is None:
        return Check(
            name=name,
            kind="change",
            value=None,
            bound=bound,
            passed=None,
            status="skipped",
            enforced=True,
            reason=f"No promoted baseline at {source.parent.name}/, so {metric} was not compared.",
        )
    previous = metric_value(baseline["metrics"], metric, source)
    delta = current - previous
    passed = -delta <= limit if way == "drop" else delta <= limit
    verb = "within" if passed else "beyond"
    return Check(
        name=name,
        kind="change",
        value=delta,
        bound=bound,
        passed=passed,
        status="passed" if passed else "failed",
        enforced=True,
        reason=(
            f"{metric} moved by {delta:+.4f} from the baseline's {previous:.4f} to "
            f"{current:.4f}, {verb} the allowed {bound}."
        ),
        detail={"baseline": previous, "current": current},
    )


def _forgery(raw: dict[str, Any]) -> str | None:
    """Why `raw` is not a verdict the gate could have written (types, consistency), or None."""
    try:
        return consistency_problem(Verdict.model_validate(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        return f"{'.'.join(str(part) for part in first['loc'])}: {first['msg']}"


# --- promotion --------------------------------------------------------------------------------


def promote(params: Params) -> Path:
    """Copy the blessed model's metrics and verdict into the baseline folder.

    Refused when the verdict is not blessed or belongs to another model than the current one, so
    the baseline can only ever hold a model that passed (or was knowingly overridden).
    """
    paths = params.paths
    verdict = read_json(paths.verdict)
    metadata = read_metadata(paths.model_metadata)
    if verdict.get("model_sha256") != metadata.model_sha256:
        raise PipelineError(
            f"{paths.verdict}: judges model {str(verdict.get('model_sha256'))[:12]}, not the "
            f"current {metadata.model_sha256[:12]}; run `census-pipeline gate` first"
        )
    if verdict.get("blessed") is not True:
        raise PipelineError(f"{paths.verdict}: the model is not blessed, so it cannot be promoted")
    # A hand-edited blessing must not become the baseline later gates compare against.
    if problem := _forgery(verdict):
        raise PipelineError(
            f"{paths.verdict}: not a verdict the gate wrote ({problem}); run `census-pipeline gate`"
        )
    if verdict.get("inputs", {}).get("metrics") != sha256_file(paths.metrics):
        raise PipelineError(
            f"{paths.metrics}: changed since the verdict; run `census-pipeline gate`"
        )
    folder = paths.baseline_dir
    outputs = {
        folder / BASELINE_METRICS: paths.metrics.read_bytes(),
        folder / BASELINE_VERDICT: paths.verdict.read_bytes(),
    }
    # The training data's profile goes along, so the next data report can measure its shift.
    if paths.train_profile.is_file():
        outputs[paths.baseline_profile] = paths.train_profile.read_bytes()
    else:
        log.warning("%s: not found, so the baseline has no data profile", paths.train_profile)
        paths.baseline_profile.unlink(missing_ok=True)
    # All or none: a baseline's metrics must never sit beside another model's verdict.
    replace_all(outputs)
    return folder
