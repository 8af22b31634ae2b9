"""Search LightGBM's knobs by cross-validation on the training table, with a seeded Optuna study.

Every trial is scored by stratified k-fold cross-validated log loss on the clean *training* table,
with early stopping inside the cross-validation; the official test set is never opened here, so
it stays an honest estimate for `evaluate`. Which features to leave out (fnlgt) is one more
choice of the same search. The sampler is seeded and every fit runs on one thread, so the same
inputs give the same best parameters. The study lives in an SQLite file so a search can be
extended (more trials) instead of restarted; a fresh search and an extended one may differ,
because the sampler's history differs.

Among the trials whose CV log loss is within `tie_tolerance` of the best, the smallest model
(trees x leaves) wins: a much larger model that wins by a hair costs serving speed for nothing
the cross-validation can tell apart.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import optuna
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.config import Params, ServingProfile, TrainParams, TuneParams
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_file, write_bytes_atomic
from census_pipeline.predict import FeatureEncoder
from census_pipeline.schema import CATEGORICAL, CATEGORY_DOMAINS, FEATURES
from census_pipeline.train import fixed_lightgbm_params, labels_of, read_clean_table

log = logging.getLogger(__name__)

SELECTION_RULE = (
    "lowest {folds}-fold stratified CV log loss on the training table; among trials within "
    "{tolerance:g} of it, the fewest trees x leaves"
)
# How an exclusion option is named in the study (Optuna's categorical choices are strings).
NO_EXCLUSION = "none"


@dataclass(frozen=True)
class TuneResult:
    best: dict[str, Any]
    trials_run: int
    trials_total: int
    seconds: float


@dataclass(frozen=True)
class Trial:
    """A finished trial as the selection and the outputs see it."""

    number: int
    log_loss: float
    log_loss_std: float
    roc_auc: float
    trees: int
    params: dict[str, Any]

    @property
    def excluded(self) -> tuple[str, ...]:
        return exclusion_of(self.params["exclude"])

    @property
    def knobs(self) -> dict[str, Any]:
        return {k: v for k, v in self.params.items() if k != "exclude"}

    @property
    def size(self) -> int:
        return self.trees * int(self.knobs.get("num_leaves", 31))


def exclusion_of(label: str) -> tuple[str, ...]:
    """The features an option (`fnlgt`, `a,b` or `none`) leaves out."""
    return () if label == NO_EXCLUSION else tuple(label.split(","))


class CrossValidation:
    """The training table, encoded once per exclusion option, and one CV run per trial."""

    def __init__(self, frame: pd.DataFrame, settings: TuneParams, seed: int) -> None:
        self.y: NDArray[np.int64] = labels_of(frame)
        self.frame = frame
        self.settings = settings
        self.seed = seed
        self._encoded: dict[tuple[str, ...], tuple[NDArray[np.float64], list[str], list[str]]] = {}

    def encoded(
        self, excluded: tuple[str, ...]
    ) -> tuple[NDArray[np.float64], list[str], list[str]]:
        if excluded not in self._encoded:
            features = [name for name in FEATURES if name not in excluded]
            categorical: list[str] = [name for name in features if name in CATEGORICAL]
            encoder = FeatureEncoder(
                features, {name: CATEGORY_DOMAINS[name] for name in categorical}
            )
            self._encoded[excluded] = (encoder.encode_frame(self.frame), features, categorical)
        return self._encoded[excluded]

    def score(self, knobs: dict[str, Any], excluded: tuple[str, ...]) -> dict[str, float]:
        x, features, categorical = self.encoded(excluded)
        # A fresh Dataset per trial: knobs such as min_child_samples change how it is binned.
        dataset = lgb.Dataset(
            x, self.y, feature_name=features, categorical_feature=categorical,
            params={"verbosity": -1, "seed": self.seed, "feature_pre_filter": False},
        )  # fmt: skip
        fixed = fixed_lightgbm_params_for_cv(self.seed)
        result: dict[str, Any] = lgb.cv(
            {**knobs, **fixed},
            dataset,
            num_boost_round=rounds_cap(self.settings),
            nfold=self.settings.folds,
            stratified=True,
            shuffle=True,
            seed=self.seed,
            callbacks=[
                lgb.early_stopping(
                    self.settings.early_stopping_rounds, first_metric_only=True, verbose=False
                )
            ],
        )
        losses = result["valid binary_logloss-mean"]
        return {
            "log_loss": float(losses[-1]),
            "log_loss_std": float(result["valid binary_logloss-stdv"][-1]),
            "roc_auc": float(result["valid auc-mean"][-1]),
            "trees": len(losses),
        }


def fixed_lightgbm_params_for_cv(seed: int) -> dict[str, Any]:
    """The train step's determinism settings, one thread, and AUC reported beside log loss."""
    fixed = fixed_lightgbm_params(TrainParams(num_threads=1), seed)
    return {**fixed, "metric": ["binary_logloss", "auc"]}


def rounds_cap(settings: TuneParams) -> int:
    cap = settings.profile.tree_cap
    return settings.max_rounds if cap is None else min(settings.max_rounds, cap)


def suggest(trial: optuna.Trial, settings: TuneParams) -> tuple[dict[str, Any], tuple[str, ...]]:
    """The trial's knobs from the search space (clipped to the profile) and its exclusion."""
    chosen: dict[str, Any] = {}
    for name, space in distributions(settings).items():
        if isinstance(space, optuna.distributions.IntDistribution):
            chosen[name] = trial.suggest_int(name, space.low, space.high, log=space.log)
        elif isinstance(space, optuna.distributions.FloatDistribution):
            chosen[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
        else:
            chosen[name] = trial.suggest_categorical(name, list(space.choices))  # type: ignore[attr-defined]
    label = str(chosen.pop("exclude"))
    return chosen, exclusion_of(label)


def study_name(settings: TuneParams, seed: int, data_sha256: str) -> str:
    """Names the search: a study is extended only with trials of the very same search."""
    identity = {
        "search": settings.model_dump(mode="json", exclude={"n_trials"}),
        "seed": seed,
        "data": data_sha256,
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
    return f"census-{digest[:16]}"


def open_study(path: Path, name: str, seed: int) -> optuna.Study:
    path.parent.mkdir(parents=True, exist_ok=True)
    return optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{path}",
        sampler=optuna.samplers.TPESampler(seed=seed),
        direction="minimize",
        load_if_exists=True,
    )


def finished(study: optuna.Study, limit: int) -> list[Trial]:
    """The first `limit` complete trials: a shorter budget reads a prefix of a longer search."""
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    complete.sort(key=lambda t: t.number)
    return [
        Trial(
            number=t.number,
            log_loss=float(t.value if t.value is not None else math.inf),
            log_loss_std=float(t.user_attrs["log_loss_std"]),
            roc_auc=float(t.user_attrs["roc_auc"]),
            trees=int(t.user_attrs["trees"]),
            params=dict(t.params),
        )
        for t in complete[:limit]
    ]


def choose(trials: list[Trial], tolerance: float) -> tuple[Trial, Trial]:
    """(chosen, best by CV): the smallest model among those tied with the best."""
    if not trials:
        raise PipelineError("the search finished no trial: see the log for each trial's error")
    best = min(trials, key=lambda t: (t.log_loss, t.number))
    tied = [t for t in trials if t.log_loss <= best.log_loss + tolerance]
    chosen = min(tied, key=lambda t: (t.size, t.log_loss, t.number))
    return chosen, best


def tune(params: Params, progress: bool | None = None) -> TuneResult:
    """Run (or extend) the search up to `tune.n_trials`; write best.json, trials and importances."""
    started = time.perf_counter()
    settings = params.tune
    paths = params.paths
    frame = read_clean_table(paths.clean_train)
    data_sha256 = sha256_file(paths.clean_train)
    cv = CrossValidation(frame, settings, params.seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(
        paths.tuning_study, study_name(settings, params.seed, data_sha256), params.seed
    )
    remaining = settings.n_trials - len(finished(study, settings.n_trials))
    if remaining > 0:
        show = sys.stderr.isatty() if progress is None else progress
        study.optimize(
            lambda trial: objective(trial, cv, settings),
            n_trials=remaining,
            n_jobs=1,
            show_progress_bar=show,
            callbacks=[_log_trial(settings.n_trials)],
        )
    trials = finished(study, settings.n_trials)
    chosen, best = choose(trials, settings.tie_tolerance)
    record = best_record(params, chosen, best, trials, data_sha256, study.study_name)
    write_outputs(params, record, trials)
    seconds = time.perf_counter() - started
    return TuneResult(record, max(remaining, 0), len(trials), seconds)


def objective(trial: optuna.Trial, cv: CrossValidation, settings: TuneParams) -> float:
    knobs, excluded = suggest(trial, settings)
    scores = cv.score(knobs, excluded)
    for key in ("log_loss_std", "roc_auc", "trees"):
        trial.set_user_attr(key, scores[key])
    return scores["log_loss"]


def _log_trial(total: int) -> Any:
    def callback(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        log.info(
            "trial %d of %d: CV log loss %.5f (best so far %.5f)",
            trial.number + 1, total, trial.value if trial.value is not None else math.nan,
            study.best_value,
        )  # fmt: skip

    return callback


def best_record(
    params: Params,
    chosen: Trial,
    best: Trial,
    trials: list[Trial],
    data_sha256: str,
    name: str,
) -> dict[str, Any]:
    """best.json: what `train` uses and what the card reports; no dates, no paths."""
    settings = params.tune
    profile: ServingProfile = settings.profile
    return {
        "serving_profile": settings.serving_profile,
        "caps": profile.model_dump(mode="json"),
        "lightgbm": chosen.knobs,
        "exclude_features": list(chosen.excluded),
        "max_trees": profile.tree_cap,
        "cv": {
            "folds": settings.folds,
            "log_loss": chosen.log_loss,
            "log_loss_std": chosen.log_loss_std,
            "roc_auc": chosen.roc_auc,
            "trees": chosen.trees,
        },
        "trial": chosen.number,
        "best_trial": {"number": best.number, "log_loss": best.log_loss, "trees": best.trees},
        "selection": SELECTION_RULE.format(folds=settings.folds, tolerance=settings.tie_tolerance),
        "n_trials": len(trials),
        "seed": params.seed,
        "study": name,
        "train_data_sha256": data_sha256,
    }


def write_outputs(params: Params, record: dict[str, Any], trials: list[Trial]) -> None:
    paths = params.paths
    write_bytes_atomic(paths.tuning_trials, trials_csv(trials).encode())
    write_bytes_atomic(
        paths.tuning_importances, importances_csv(trials, params.tune, params.seed).encode()
    )
    write_bytes_atomic(paths.tuned_params, (json.dumps(record, indent=2) + "\n").encode())


def trials_csv(trials: list[Trial]) -> str:
    """One row per trial, with the best value so far (the optimisation history plot)."""
    knobs = sorted({k for t in trials for k in t.knobs})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["trial", "log_loss", "best_so_far", "roc_auc", "trees", "exclude", *knobs])
    best = math.inf
    for t in trials:
        best = min(best, t.log_loss)
        writer.writerow(
            [t.number, f"{t.log_loss:.6f}", f"{best:.6f}", f"{t.roc_auc:.6f}", t.trees,
             t.params["exclude"], *(_fmt(t.knobs.get(k)) for k in knobs)]
        )  # fmt: skip
    return out.getvalue()


def importances_csv(trials: list[Trial], settings: TuneParams, seed: int) -> str:
    """Optuna's fANOVA parameter importances (seeded), over exactly the trials used."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["param", "importance"])
    if len(trials) >= 2:
        for name, value in parameter_importances(trials, settings, seed).items():
            writer.writerow([name, f"{value:.6f}"])
    return out.getvalue()


def parameter_importances(trials: list[Trial], settings: TuneParams, seed: int) -> dict[str, float]:
    study = optuna.create_study(direction="minimize")
    spaces = distributions(settings)
    study.add_trials(
        optuna.trial.create_trial(
            params=t.params,
            distributions={k: spaces[k] for k in t.params},
            value=t.log_loss,
        )
        for t in trials
    )
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=seed)
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (RuntimeError, ValueError) as exc:
        # Too few distinct trials (every knob constant, say): nothing to attribute.
        log.warning("no parameter importances: %s", exc)
        return {}
    return {name: float(value) for name, value in found.items()}


def distributions(settings: TuneParams) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna's view of the search space, with the serving profile's leaf cap applied."""
    found: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, space in settings.search_space.items():
        high = space.high
        if name == "num_leaves" and settings.profile.leaf_cap is not None:
            high = min(high, settings.profile.leaf_cap)
        if space.integer:
            found[name] = optuna.distributions.IntDistribution(
                int(space.low), int(high), log=space.log
            )
        else:
            found[name] = optuna.distributions.FloatDistribution(space.low, high, log=space.log)
    found["exclude"] = optuna.distributions.CategoricalDistribution(list(settings.exclude_options))
    return found


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
