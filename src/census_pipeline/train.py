"""Train the LightGBM model on the clean training table and save it as a verified artifact.

A stratified, seeded validation split carved from the training table serves early stopping,
the small tuning grid and the decision threshold; the official test set is never looked at
here. Training is deterministic (fixed seeds, threads and histogram layout), so the same data
and params give a byte-identical model file.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline import metrics, mitigate
from census_pipeline.artifact import ModelMetadata, save_model
from census_pipeline.config import Params, TrainParams
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_file
from census_pipeline.predict import FeatureEncoder
from census_pipeline.schema import (
    CATEGORICAL,
    CATEGORY_DOMAINS,
    COLUMNS,
    FEATURES,
    LABEL,
    LABELS,
    POSITIVE_LABEL,
)

log = logging.getLogger(__name__)

EXCLUSION_BY_SEARCH = (
    "chosen by the same cross-validation that chose the knobs (census-pipeline tune, "
    "tuning/best.json)"
)
SELECTION_RULE = "lowest log loss on the validation split (early-stopped per candidate)"
EXCLUSION_REASON = (
    "fnlgt is the census's sampling weight, not a trait of the person; 5-fold cross-validation "
    "on the training table gave a lower log loss without it (docs/model.md)"
)


@dataclass(frozen=True)
class TrainResult:
    metadata: ModelMetadata
    model_file: Path
    metadata_file: Path
    seconds: float


@dataclass(frozen=True)
class Candidate:
    overrides: dict[str, Any]
    booster: lgb.Booster
    best_iteration: int
    validation_log_loss: float


def read_clean_table(path: Path) -> pd.DataFrame:
    """A clean table, checked against the clean step's contract before anything uses it."""
    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run `census-pipeline clean` first)") from exc
    if tuple(frame.columns) != COLUMNS:
        raise PipelineError(f"{path}: columns {list(frame.columns)}, expected {list(COLUMNS)}")
    label = frame[LABEL]
    if not isinstance(label.dtype, pd.CategoricalDtype) or tuple(label.cat.categories) != LABELS:
        raise PipelineError(f"{path}: column '{LABEL}' must be a category of {list(LABELS)}")
    if label.isna().any():
        raise PipelineError(f"{path}: column '{LABEL}' has missing values")
    return frame


def labels_of(frame: pd.DataFrame) -> NDArray[np.int64]:
    return np.asarray(frame[LABEL] == POSITIVE_LABEL, dtype=np.int64)


def model_features(settings: TrainParams) -> list[str]:
    return [name for name in FEATURES if name not in settings.exclude_features]


def stratified_split(
    y: NDArray[np.int64], share: float, seed: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(fit rows, validation rows): the same share of each class, chosen by a seeded shuffle."""
    rng = np.random.default_rng(seed)
    fit_parts, validation_parts = [], []
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        cut = round(share * rows.size)
        validation_parts.append(rows[:cut])
        fit_parts.append(rows[cut:])
    return np.sort(np.concatenate(fit_parts)), np.sort(np.concatenate(validation_parts))


def fixed_lightgbm_params(settings: TrainParams, seed: int) -> dict[str, Any]:
    """What makes training deterministic; params.yaml may not override these."""
    return {
        "objective": "binary",
        "metric": "binary_logloss",
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": settings.num_threads,
        "verbosity": -1,
    }


def candidate_overrides(settings: TrainParams) -> list[dict[str, Any]]:
    """Every combination of the tuning grid (just the base params when the grid is empty)."""
    keys = list(settings.tuning_grid)
    return [
        dict(zip(keys, values, strict=True))
        for values in itertools.product(*settings.tuning_grid.values())
    ]


def fit_candidate(
    base: dict[str, Any],
    overrides: dict[str, Any],
    fit: lgb.Dataset,
    validation: lgb.Dataset,
    settings: TrainParams,
) -> Candidate:
    booster = lgb.train(
        {**base, **overrides},
        fit,
        num_boost_round=settings.max_rounds,
        valid_sets=[validation],
        valid_names=["validation"],
        callbacks=[lgb.early_stopping(settings.early_stopping_rounds, verbose=False)],
    )
    best = booster.best_iteration or settings.max_rounds
    loss = float(booster.best_score["validation"]["binary_logloss"])
    return Candidate(overrides, booster, best, loss)


def read_tuned(path: Path) -> dict[str, Any] | None:
    """The tune step's choice (tuning/best.json), or None when no search has run."""
    if not path.is_file():
        return None
    try:
        record: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PipelineError(f"{path}: unreadable ({exc}): rerun `census-pipeline tune`") from exc
    missing = [k for k in ("lightgbm", "exclude_features", "serving_profile") if k not in record]
    if missing or not isinstance(record.get("lightgbm"), dict):
        raise PipelineError(f"{path}: no {missing or ['lightgbm']}: rerun `census-pipeline tune`")
    return record


def effective_settings(params: Params) -> tuple[TrainParams, dict[str, Any] | None]:
    """train's settings with the search's choice applied, when `train.use_tuned` asks for it.

    The searched knobs override `train.lightgbm` (which keeps the knobs nobody searches), the
    search's feature exclusion replaces `train.exclude_features`, the serving profile's tree cap
    bounds `train.max_rounds`, and the grid is not used: the search replaced it.
    """
    settings = params.train
    tuned = read_tuned(params.paths.tuned_params) if settings.use_tuned else None
    if tuned is None:
        return settings, None
    max_trees = tuned.get("max_trees")
    rounds = settings.max_rounds if max_trees is None else min(settings.max_rounds, max_trees)
    update = {
        "lightgbm": {**settings.lightgbm, **tuned["lightgbm"]},
        "exclude_features": tuple(tuned["exclude_features"]),
        "max_rounds": rounds,
        "tuning_grid": {},
    }
    return settings.model_copy(update=update), tuned


def train(params: Params) -> TrainResult:
    started = time.perf_counter()
    settings, tuned = effective_settings(params)
    if tuned is None and params.train.use_tuned:
        log.info(
            "no tuned parameters at %s: training with train.lightgbm and the grid "
            "(run `census-pipeline tune` for a search)",
            params.paths.tuned_params,
        )
    frame = read_clean_table(params.paths.clean_train)
    features = model_features(settings)
    categorical: list[str] = [name for name in features if name in CATEGORICAL]
    encoder = FeatureEncoder(features, {name: CATEGORY_DOMAINS[name] for name in categorical})
    x, y = encoder.encode_frame(frame), labels_of(frame)
    fit_rows, validation_rows = stratified_split(y, settings.validation_share, params.seed)

    dataset_params = {"verbosity": -1, "seed": params.seed}
    # None unless fairness.mitigation is `reweighing` (mitigate.py).
    weights, weight_table = mitigate.training_weights(
        params.fairness, frame.iloc[fit_rows], y[fit_rows]
    )
    fit = lgb.Dataset(
        x[fit_rows], y[fit_rows], weight=weights, feature_name=features,
        categorical_feature=categorical, params=dataset_params, free_raw_data=False,
    )  # fmt: skip
    validation = fit.create_valid(x[validation_rows], y[validation_rows])
    base = {**settings.lightgbm, **fixed_lightgbm_params(settings, params.seed)}
    candidates = [
        fit_candidate(base, o, fit, validation, settings) for o in candidate_overrides(settings)
    ]
    chosen = min(range(len(candidates)), key=lambda i: candidates[i].validation_log_loss)
    best = candidates[chosen]

    model_text = best.booster.model_to_string(num_iteration=best.best_iteration)
    validation_scores = np.asarray(
        best.booster.predict(x[validation_rows], num_iteration=best.best_iteration),
        dtype=np.float64,
    )
    threshold, _ = metrics.best_fbeta_threshold(
        y[validation_rows], validation_scores, settings.fbeta_beta
    )
    validation_set = (y[validation_rows], validation_scores)
    mitigation = mitigate.mitigation_record(
        params.fairness,
        (frame.iloc[validation_rows], y[validation_rows], validation_scores),
        threshold,
        weight_table,
    )
    fields = metadata_fields(
        params,
        settings,
        encoder,
        base,
        candidates,
        chosen,
        threshold,
        validation_set,
        len(fit_rows),
    )
    fields["mitigation"] = mitigation.model_dump(mode="json")
    # At the labels the predictor will give (its groups' thresholds, if any).
    predicted = mitigate.predicted_labels(
        mitigation, frame.iloc[validation_rows], validation_scores, threshold
    )
    fields["validation_metrics"] = metrics.summary(
        y[validation_rows], validation_scores, threshold, settings.fbeta_beta, predicted
    )
    fields["tuning"]["search"] = tuned
    if tuned is not None:
        fields["tuning"]["selection"] = tuned.get("selection", SELECTION_RULE)
        fields["tuning"]["exclusion_reason"] = EXCLUSION_BY_SEARCH
    metadata = save_model(model_text, fields, params.paths.model_file, params.paths.model_metadata)
    seconds = time.perf_counter() - started
    log.info("trained %s in %.1f s", metadata.model_version, seconds)
    return TrainResult(metadata, params.paths.model_file, params.paths.model_metadata, seconds)


def metadata_fields(
    params: Params,
    settings: TrainParams,
    encoder: FeatureEncoder,
    base: dict[str, Any],
    candidates: list[Candidate],
    chosen: int,
    threshold: float,
    validation_set: tuple[NDArray[np.int64], NDArray[np.float64]],
    n_fit: int,
) -> dict[str, Any]:
    """The metadata the train step knows (save_model adds the digest and versions)."""
    best = candidates[chosen]
    validation_labels, validation_scores = validation_set
    return {
        "feature_names": list(encoder.feature_names),
        "categorical_features": list(encoder.categories),
        "categories": encoder.categories,
        "excluded_features": list(settings.exclude_features),
        "threshold": threshold,
        "threshold_rule": threshold_rule(settings),
        "fbeta_beta": settings.fbeta_beta,
        "params": {**base, **best.overrides, "num_trees": best.best_iteration},
        "num_trees": best.best_iteration,
        "train_data_sha256": sha256_file(params.paths.clean_train),
        "validation_metrics": metrics.summary(
            validation_labels, validation_scores, threshold, settings.fbeta_beta
        ),
        "tuning": tuning_record(settings, candidates, chosen, n_fit, len(validation_labels)),
    }


def threshold_rule(settings: TrainParams) -> str:
    beta = settings.fbeta_beta
    name = "F1" if beta == 1 else f"F-beta (beta={beta:g})"
    return (
        f"maximises {name} on the validation split (a stratified, seeded "
        f"{settings.validation_share:.0%} of the training table)"
    )


def tuning_record(
    settings: TrainParams, candidates: list[Candidate], chosen: int, n_fit: int, n_validation: int
) -> dict[str, Any]:
    """What was tried and why the winner won, for the metadata and the model card."""
    return {
        "selection": SELECTION_RULE,
        "grid": {key: list(values) for key, values in settings.tuning_grid.items()},
        "candidates": [
            {
                "params": c.overrides,
                "best_iteration": c.best_iteration,
                "validation_log_loss": c.validation_log_loss,
            }
            for c in candidates
        ],
        "chosen": chosen,
        "rows": {"fit": n_fit, "validation": n_validation},
        "max_rounds": settings.max_rounds,
        "early_stopping_rounds": settings.early_stopping_rounds,
        "excluded_features": list(settings.exclude_features),
        "exclusion_reason": exclusion_reason(settings.exclude_features),
        "refit_on_full_training_data": False,
    }


def exclusion_reason(excluded: tuple[str, ...]) -> str | None:
    if not excluded:
        return None
    return (
        EXCLUSION_REASON
        if excluded == ("fnlgt",)
        else "set in params.yaml (train.exclude_features)"
    )
