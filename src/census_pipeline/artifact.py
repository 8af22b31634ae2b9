"""The model artifact: LightGBM's text model plus a JSON metadata file, verified on every load.

The model file is plain text (no pickle) and the metadata records its sha256, so a changed or
truncated model is refused instead of silently scoring. The metadata also records the model's
shape (objective, class count, models per iteration, feature count), and every load refuses a
model that is not a single-output binary classifier, or whose shape disagrees with its record,
before LightGBM parses it and again from the parsed booster: the predictor's buffers hold one
probability per row, so a 32-class model must never reach them. The service imports this
module, so it depends on nothing beyond numpy, LightGBM, pydantic and the standard library.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import lightgbm as lgb
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from census_pipeline import __version__
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes, write_bytes_atomic, write_json_atomic


class ArtifactError(PipelineError):
    """The model or its metadata is missing, changed, truncated or inconsistent."""


class GroupThresholds(BaseModel):
    """Per-group decision thresholds (the `group_thresholds` mitigation), applied by `Predictor`.

    `groupings` are tried in order: a record takes the threshold of the first grouping whose
    group (its values joined by " x ", e.g. "Black x Female") is listed, else the model's single
    threshold. Plain JSON, so the servable artifact stays free of pickle.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    groupings: list[list[str]]
    # Grouping name ("race x sex") -> group -> threshold.
    thresholds: dict[str, dict[str, float]]
    target_tpr: float
    rule: str

    @model_validator(mode="after")
    def _consistent(self) -> GroupThresholds:
        names = [" x ".join(g) for g in self.groupings]
        if set(self.thresholds) - set(names):
            raise ValueError(f"thresholds name groupings not in {names}")
        bad = [t for table in self.thresholds.values() for t in table.values() if not 0 <= t <= 1]
        if bad:
            raise ValueError(f"group threshold {bad[0]} is not a probability")
        return self


class MitigationRecord(BaseModel):
    """How the model was mitigated for fairness, and what the predictor must apply."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["none", "group_thresholds", "reweighing"]
    description: str
    group_thresholds: GroupThresholds | None = None
    # Reweighing: "group | label" -> the weight its training rows got.
    weights: dict[str, float] | None = None

    @model_validator(mode="after")
    def _has_what_it_needs(self) -> MitigationRecord:
        if (self.method == "group_thresholds") != (self.group_thresholds is not None):
            raise ValueError("group_thresholds is required by, and only by, that method")
        return self


# The only kind of model anything here scores: one probability per row.
BINARY_OBJECTIVE = "binary"


class ModelShape(BaseModel):
    """What the model computes, as LightGBM's model text states it (recorded by `train`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    objective: str
    num_class: int
    num_model_per_iteration: int
    num_features: int

    def problem(self) -> str | None:
        """Why this is not a single-output binary classifier, or None."""
        if self.objective != BINARY_OBJECTIVE:
            return f"objective {self.objective!r} (only {BINARY_OBJECTIVE!r} is served)"
        if self.num_class != 1 or self.num_model_per_iteration != 1:
            return (
                f"{self.num_class} classes with {self.num_model_per_iteration} models per "
                "iteration (a binary model has 1 and 1)"
            )
        return None


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
    model_shape: ModelShape
    train_data_sha256: str
    model_sha256: str
    package_version: str
    lightgbm_version: str
    validation_metrics: dict[str, float]
    tuning: dict[str, Any]
    # Absent in models trained before mitigations existed: they are unmitigated.
    mitigation: MitigationRecord | None = None

    @property
    def mitigated(self) -> bool:
        return self.mitigation is not None and self.mitigation.method != "none"

    @model_validator(mode="after")
    def _consistent(self) -> ModelMetadata:
        stray = [f for f in self.categorical_features if f not in self.feature_names]
        if stray:
            raise ValueError(f"categorical_features {stray} are not in feature_names")
        if set(self.categories) != set(self.categorical_features):
            raise ValueError("categories must list exactly the categorical_features")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold {self.threshold} is not a probability")
        if self.model_shape.num_features != len(self.feature_names):
            raise ValueError(
                f"model_shape.num_features {self.model_shape.num_features} but "
                f"{len(self.feature_names)} feature_names"
            )
        return self


def model_version(model_sha256: str, mitigation: str = "none") -> str:
    """Package version plus a short model digest: readable, and unique per model file. A model
    labelled by group thresholds shares its file with the unmitigated one, so the mitigation is
    part of the version (`0.1.0+c906c70e1ada.group-thresholds`) and answers say which rule
    labelled them."""
    version = f"{__version__}+{model_sha256[:12]}"
    return version if mitigation == "none" else f"{version}.{mitigation.replace('_', '-')}"


def save_model(
    model_text: str, fields: dict[str, Any], model_file: Path, metadata_file: Path
) -> ModelMetadata:
    """Write the model, then metadata naming its digest; a crash in between is caught on load.

    The shape is read from the model text itself, and a model that is not a binary classifier is
    refused here already, so no step can write one that every load would refuse.
    """
    data = model_text.encode("utf-8")
    digest = sha256_bytes(data)
    shape = model_shape(model_text, model_file)
    if problem := shape.problem():
        raise ArtifactError(f"{model_file}: not a single-output binary model: {problem}")
    metadata = ModelMetadata(
        **fields,
        model_shape=shape,
        model_sha256=digest,
        model_version=model_version(digest, (fields.get("mitigation") or {}).get("method", "none")),
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
    except OSError as exc:
        raise ArtifactError(f"{metadata_file}: cannot read the metadata ({exc.strerror})") from exc
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
    except OSError as exc:  # a folder, no permission: one line, not a traceback
        raise ArtifactError(f"{model_file}: cannot read the model file ({exc.strerror})") from exc
    digest = sha256_bytes(data)
    if digest != metadata.model_sha256:
        raise ArtifactError(
            f"{model_file}: sha256 {digest[:12]}… does not match {metadata_file.name}'s "
            f"model_sha256 {metadata.model_sha256[:12]}…: the model file was changed or "
            "truncated; retrain or restore both files together"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{model_file}: not a LightGBM text model ({exc})") from exc
    # Before LightGBM parses anything: refuse what the text itself says is the wrong kind.
    _check_shape(model_shape(text, model_file), metadata, model_file)
    try:
        booster = lgb.Booster(model_str=text)
    except lgb.basic.LightGBMError as exc:
        raise ArtifactError(f"{model_file}: not a LightGBM text model ({exc})") from exc
    _check_agreement(booster, metadata, model_file)
    return booster, metadata


_SHAPE_KEYS = ("objective", "num_class", "num_tree_per_iteration", "max_feature_idx")
_HEADER_ENDS = ("\nTree=", "\nend of trees", "\nparameters:")


def model_shape(text: str, model_file: Path) -> ModelShape:
    """The shape LightGBM's text header declares (the key=value lines before the first tree)."""
    header: dict[str, str] = {}
    # The header ends where the first tree (or, for a model without trees, the trailer) begins;
    # only that prefix is scanned, not the megabytes of trees after it.
    end = next((i for i in map(text.find, _HEADER_ENDS) if i >= 0), len(text))
    for line in text[:end].splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() in _SHAPE_KEYS:
            if key.strip() in header:
                raise ArtifactError(f"{model_file}: its header states {key.strip()}= twice")
            header[key.strip()] = value.strip()
    needed = _SHAPE_KEYS
    if missing := [key for key in needed if key not in header]:
        raise ArtifactError(f"{model_file}: not a LightGBM text model (no {missing[0]}= header)")
    try:
        counts = [int(header[key]) for key in needed[1:]]
    except ValueError:
        raise ArtifactError(
            f"{model_file}: not a LightGBM text model (a non-integer count in its header)"
        ) from None
    return ModelShape(
        objective=header["objective"].split(" ", 1)[0],
        num_class=counts[0],
        num_model_per_iteration=counts[1],
        num_features=counts[2] + 1,
    )


def _check_shape(shape: ModelShape, metadata: ModelMetadata, model_file: Path) -> None:
    if problem := shape.problem():
        raise ArtifactError(
            f"{model_file}: not a single-output binary model: {problem}; only binary "
            "classifiers trained by `census-pipeline train` can be loaded"
        )
    if shape != metadata.model_shape:
        raise ArtifactError(
            f"{model_file}: the model's shape {shape.model_dump()} disagrees with the "
            f"metadata's model_shape {metadata.model_shape.model_dump()}; retrain"
        )


def _check_agreement(booster: lgb.Booster, metadata: ModelMetadata, model_file: Path) -> None:
    """The parsed booster, asked through LightGBM's public API, must be what the text said."""
    parsed = (booster.num_model_per_iteration(), booster.num_feature())
    recorded = (1, metadata.model_shape.num_features)
    if parsed != recorded:
        raise ArtifactError(
            f"{model_file}: LightGBM parsed {parsed[0]} models per iteration over {parsed[1]} "
            f"features, expected {recorded[0]} over {recorded[1]}; not a model this loads"
        )
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
