"""The model on the workers: checked once by the client, shipped as verified bytes, loaded once
per worker.

The client decides whether the model may be used at all, with the one check the service uses
too (missing, tampered, not blessed, blessed for another model). It then ships the very bytes of
`model.txt` and `model.json` that passed, not a path: a worker on another machine needs no copy
of the model folder, and no file can change between the check and the load. Each worker
re-verifies what it received through `artifact.load_model` (digest, parse, agreement with the
metadata) when the plugin is set up, and keeps one `Predictor` for all its tasks. The plugin's
name carries the model digest, so two runs with different models on one cluster never mix.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from census_pipeline.artifact import ModelMetadata
from census_pipeline.config import PathsParams
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes
from census_pipeline.predict import Predictor


@dataclass(frozen=True)
class ShippedModel:
    """The checked model's bytes plus what the client learnt about it."""

    model_text: bytes
    metadata_text: bytes
    metadata: ModelMetadata
    blessed: bool

    @property
    def plugin_name(self) -> str:
        return f"census-model-{self.metadata.model_sha256[:16]}"

    def predictor(self) -> Predictor:
        """A Predictor built from these bytes through the artifact's own verification."""
        if ModelMetadata.model_validate_json(self.metadata_text) != self.metadata:
            raise PipelineError("the shipped model metadata differs from the checked one")
        with tempfile.TemporaryDirectory(prefix="census-model-") as folder:
            paths = PathsParams(model_dir=Path(folder))
            paths.model_file.write_bytes(self.model_text)
            paths.model_metadata.write_bytes(self.metadata_text)
            return Predictor.from_files(paths.model_file, paths.model_metadata)


def checked_model(model_dir: Path, allow_unblessed: bool) -> ShippedModel:
    """Run the shared trust check, then read the bytes to ship and prove they are the checked
    ones (the model's digest is in the checked metadata; the metadata must parse equal)."""
    metadata, blessed = _trust_check(model_dir, allow_unblessed)
    paths = PathsParams(model_dir=model_dir)
    model_text = paths.model_file.read_bytes()
    metadata_text = paths.model_metadata.read_bytes()
    changed = sha256_bytes(model_text) != metadata.model_sha256 or (
        ModelMetadata.model_validate_json(metadata_text) != metadata
    )
    if changed:
        raise PipelineError(f"{model_dir}: the model files changed while being checked; retry")
    return ShippedModel(model_text, metadata_text, metadata, blessed)


def _trust_check(model_dir: Path, allow_unblessed: bool) -> tuple[ModelMetadata, bool]:
    # Interim: the artifact's digest and agreement check only, until the shared trust check
    # (`census_pipeline.trust.load_trusted_model`) lands; the blessing is not checked yet.
    if not model_dir.is_dir():
        raise PipelineError(f"{model_dir}: model folder not found")
    with Predictor.load(model_dir) as predictor:
        return predictor.metadata, False


class ModelPlugin(WorkerPlugin):
    """Loads the shipped model once when a worker joins (again on a replacement worker)."""

    def __init__(self, model: ShippedModel):
        self.name = model.plugin_name
        self.model = model
        self.predictor: Predictor | None = None

    def setup(self, worker: Any) -> None:
        self.predictor = self.model.predictor()

    def teardown(self, worker: Any) -> None:
        if self.predictor is not None:
            self.predictor.close()


def worker_predictor(plugin_name: str) -> Predictor:
    """The Predictor of this worker's plugin (inside a task)."""
    plugin = get_worker().plugins.get(plugin_name)
    predictor = getattr(plugin, "predictor", None)
    if not isinstance(predictor, Predictor):
        raise RuntimeError(f"worker has no model plugin {plugin_name} (was it registered?)")
    return predictor
