"""The artifact: round trip, recorded provenance, and refusal of changed or inconsistent files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from model_samples import tiny_project
from typer.testing import CliRunner

from census_pipeline.artifact import ArtifactError, ModelMetadata, load_model, read_metadata
from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_file
from census_pipeline.metrics import summary
from census_pipeline.predict import FeatureEncoder
from census_pipeline.train import labels_of, read_clean_table, stratified_split

CONTRACT_KEYS = {
    "model_version", "feature_names", "categorical_features", "categories",
    "threshold", "threshold_rule", "fbeta_beta", "params", "num_trees", "train_data_sha256",
    "model_sha256", "package_version", "validation_metrics", "tuning",
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Params:
    return tiny_project(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def copy(tiny: Params, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of the model files that a test may damage."""
    model = shutil.copy(tiny.paths.model_file, tmp_path / "model.txt")
    meta = shutil.copy(tiny.paths.model_metadata, tmp_path / "model.json")
    return Path(model), Path(meta)


def _edit_metadata(path: Path, **changes: Any) -> None:
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def test_round_trip_gives_the_same_model_and_metadata(tiny: Params) -> None:
    booster, metadata = load_model(tiny.paths.model_file, tiny.paths.model_metadata)
    raw = json.loads(tiny.paths.model_metadata.read_text())
    assert raw.keys() >= CONTRACT_KEYS
    assert metadata == ModelMetadata.model_validate(raw)
    assert booster.num_trees() == metadata.num_trees > 0
    assert booster.feature_name() == metadata.feature_names


def test_metadata_records_digests_vocabularies_and_choices(tiny: Params) -> None:
    metadata = read_metadata(tiny.paths.model_metadata)
    assert metadata.model_sha256 == sha256_file(tiny.paths.model_file)
    assert metadata.train_data_sha256 == sha256_file(tiny.paths.clean_train)
    assert metadata.model_version.endswith(metadata.model_sha256[:12])
    assert metadata.categories["sex"] == ["Female", "Male"]
    assert "fnlgt" not in metadata.feature_names and metadata.excluded_features == ["fnlgt"]
    assert 0 < metadata.threshold < 1 and "validation" in metadata.threshold_rule
    assert {"roc_auc", "f1", "log_loss"} <= metadata.validation_metrics.keys()
    assert metadata.tuning["candidates"][metadata.tuning["chosen"]]["best_iteration"] == (
        metadata.num_trees
    )


def test_a_changed_byte_is_refused(copy: tuple[Path, Path]) -> None:
    model, meta = copy
    data = bytearray(model.read_bytes())
    position = data.index(b"leaf_value=") + len(b"leaf_value=") + 3
    data[position] = ord("7") if data[position] != ord("7") else ord("3")
    model.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match=r"sha256 .* does not match"):
        load_model(model, meta)


def test_a_truncated_file_is_refused(copy: tuple[Path, Path]) -> None:
    model, meta = copy
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match="changed or truncated"):
        load_model(model, meta)


def test_metadata_naming_other_features_is_refused(copy: tuple[Path, Path]) -> None:
    model, meta = copy
    names = read_metadata(meta).feature_names
    _edit_metadata(meta, feature_names=[names[1], names[0], *names[2:]])
    with pytest.raises(ArtifactError, match="disagree with the metadata's feature_names"):
        load_model(model, meta)


def test_metadata_counting_other_trees_is_refused(copy: tuple[Path, Path]) -> None:
    model, meta = copy
    _edit_metadata(meta, num_trees=read_metadata(meta).num_trees + 1)
    with pytest.raises(ArtifactError, match="trees"):
        load_model(model, meta)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_text("{not json"), "not valid JSON"),
        (lambda p: _edit_metadata(p, threshold=1.5), "threshold"),
        (lambda p: _edit_metadata(p, model_sha256=None), "model_sha256"),
        (lambda p: p.unlink(), "not found"),
    ],
)
def test_broken_metadata_is_a_clear_error(
    copy: tuple[Path, Path], damage: Any, message: str
) -> None:
    model, meta = copy
    damage(meta)
    with pytest.raises(ArtifactError, match=message) as caught:
        load_model(model, meta)
    assert isinstance(caught.value, PipelineError)
    assert str(meta) in str(caught.value)


def test_loaded_model_reproduces_the_recorded_validation_metrics(tiny: Params) -> None:
    """The text round trip loses nothing: the file scores the split exactly as training did."""
    booster, metadata = load_model(tiny.paths.model_file, tiny.paths.model_metadata)
    frame = read_clean_table(tiny.paths.clean_train)
    encoder = FeatureEncoder(metadata.feature_names, metadata.categories)
    y = labels_of(frame)
    _, validation = stratified_split(y, tiny.train.validation_share, tiny.seed)
    scores = booster.predict(encoder.encode_frame(frame)[validation])
    recomputed = summary(y[validation], scores, metadata.threshold, metadata.fbeta_beta)
    assert recomputed == pytest.approx(metadata.validation_metrics, rel=1e-12)


def test_evaluate_refuses_a_tampered_model_with_one_line(tiny: Params, tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(tiny.paths.model_dir.parent, project)
    model = project / tiny.paths.model_file.relative_to(tiny.paths.model_dir.parent)
    model.write_bytes(model.read_bytes()[:-10])
    result = CliRunner().invoke(app, ["evaluate", "--params", str(project / "params.yaml")])
    assert result.exit_code == 1
    assert "does not match" in result.output and "Traceback" not in result.output
