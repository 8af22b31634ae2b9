"""The model artifact: LightGBM's text model plus a JSON metadata file, verified on every load.

The model file is plain text (no pickle) and the metadata records its sha256, so a changed or
truncated model is refused instead of silently scoring. The service imports this module, so it
depends on nothing beyond numpy, LightGBM, pydantic and the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from census_pipeline import __version__
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes, write_bytes_atomic, write_json_atomic


class ArtifactError(PipelineError):
    """The model or its metadata is missing, changed, truncated or inconsistent."""


class ModelMetadata(BaseModel):
    """Everything needed to score with, trust and trace a model file.

    Nothing here depends on when or where training ran (no timestamp, host, path or commit):
    the same data and params give byte-identical metadata, so DVC sees an unchanged output and
    a retrain on the same data reruns nothing downstream. When a model was published is
    recorded by `census-pipeline publish`, outside the pipeline's outputs.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_version: str
    feature_names: list[str]
    categorical_features: list[str]
    # Feature -> vocabulary; a value's position is the integer code the model was trained on.
    categories: dict[str, list[str]]
    excluded_features: list[str]
    threshold: float
    threshold_rule: str
    fbeta_beta: float
    params: dict[str, Any]
    num_trees: int
    train_data_sha256: str
    model_sha256: str
    package_version: str
    lightgbm_version: str
    validation_metrics: dict[str, float]
    tuning: dict[str, Any]

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        stray = [f for f in self.categorical_features if f not in self.feature_names]
        if stray:
            raise ValueError(f"categorical_features {stray} are not in feature_names")
        if set(self.categories) != set(self.categorical_features):
            raise ValueError("categories must list exactly the categorical_features")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not a probability")
        return self


def model_version(model_sha256: str) -> str:
    """Package version plus a short model digest: readable, and unique per model file."""
    return f"{__version__}+{model_sha256[:12]}"


def save_model(
    model_text: str, fields: dict[str, Any], model_file: Path, metadata_file: Path
) -> ModelMetadata:
    """Write the model, then metadata naming its digest; a crash in between is caught on load."""
    data = model_text.encode("utf-8")
    digest = sha256_bytes(data)
    metadata = ModelMetadata(
        **fields,
        model_sha256=digest,
        model_version=model_version(digest),
        package_version=__version__,
        lightgbm_version=lgb.__version__,
    )
    write_bytes_atomic(model_file, data)
    write_json_atomic(metadata_file, metadata.model_dump(mode="json"))
    return metadata


def read_metadata(metadata_file: Path) -> ModelMetadata:
    try:
        raw = json.loads(metadata_file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ArtifactError(f"{metadata_file}: not found (run `census-pipeline train`)") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{metadata_file}: not valid JSON ({exc})") from exc
    try:
        return ModelMetadata.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise ArtifactError(f"{metadata_file}: {where}: {first['msg']}") from exc


def load_model(model_file: Path, metadata_file: Path) -> tuple[lgb.Booster, ModelMetadata]:
    """Load a model only if its bytes match the recorded digest and it agrees with its metadata.

    The booster is built from the very bytes that were hashed, so the file cannot change between
    the check and the load.
    """
    metadata = read_metadata(metadata_file)
    try:
        data = model_file.read_bytes()
    except FileNotFoundError as exc:
        raise ArtifactError(f"{model_file}: not found (run `census-pipeline train`)") from exc
    digest = sha256_bytes(data)
    if digest != metadata.model_sha256:
        raise ArtifactError(
            f"{model_file}: sha256 {digest[:12]}… does not match {metadata_file.name}'s "
            f"model_sha256 {metadata.model_sha256[:12]}…: the model file was changed or "
            "truncated; retrain or restore both files together"
        )
    try:
        booster = lgb.Booster(model_str=data.decode("utf-8"))
    except (lgb.basic.LightGBMError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{model_file}: not a LightGBM text model ({exc})") from exc
    _check_agreement(booster, metadata, model_file)
    return booster, metadata


def _check_agreement(booster: lgb.Booster, metadata: ModelMetadata, model_file: Path) -> None:
    names = list(booster.feature_name())
    if names != metadata.feature_names:
        raise ArtifactError(
            f"{model_file}: the model's features {names} disagree with the metadata's "
            f"feature_names {metadata.feature_names}"
        )
    if booster.num_trees() != metadata.num_trees:
        raise ArtifactError(
            f"{model_file}: the model has {booster.num_trees()} trees, the metadata says "
            f"num_trees={metadata.num_trees}"
        )
