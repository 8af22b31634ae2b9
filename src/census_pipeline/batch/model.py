"""The model on the workers: checked by the client, shipped as verified bytes, loaded once per
worker and checked there again.

The client decides whether the model may be used with the one check the service and CD use
(`trust.load_trusted_model`: missing, tampered, wrong shape, not blessed, blessed for another
model, a bad signature), on the user's folder, so a refusal names the user's files and stops the
run before any cluster starts. It then ships the bytes of `model.txt`, `model.json` and
`verdict.json`, proven to be the checked ones by their digests, plus the public verify keys it
used, rather than a path: a worker on another machine needs no copy of the folder, and nothing
can change between the check and the load. Each worker runs the same `trust` check on those bytes
when the plugin is set up (so a worker never scores with a model the check would refuse, even
if the bytes were corrupted on the way) and keeps one `Predictor` for all its tasks. The plugin's
name carries the model digest, so two runs with different models on one cluster never mix.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from distributed import WorkerPlugin, get_worker

from census_pipeline.artifact import ModelMetadata
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes
from census_pipeline.predict import Predictor
from census_pipeline.signing import VerifyKeys, verify_keys_from_env
from census_pipeline.trust import (
    METADATA_FILE,
    MODEL_FILE,
    UNSIGNED_WARNING,
    VERDICT_FILE,
    TrustedModel,
    UntrustedModel,
    load_trusted_files,
    load_trusted_model,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShippedModel:
    """The checked model's bytes, the verdict on them, and how they were judged."""

    model_text: bytes
    metadata_text: bytes
    verdict_text: bytes | None
    verify_pem: bytes | None  # the public keys the client checked the signature with
    allow_unblessed: bool
    metadata: ModelMetadata
    metadata_sha256: str
    blessed: bool

    @property
    def plugin_name(self) -> str:
        return f"census-model-{self.metadata.model_sha256[:16]}"

    def predictor(self) -> Predictor:
        """The trust check again, on these bytes; a Predictor only if it agrees with the client."""
        keys = VerifyKeys.from_pem(self.verify_pem, "shipped keys") if self.verify_pem else None
        with tempfile.TemporaryDirectory(prefix="census-model-") as folder:
            files = [Path(folder) / name for name in (MODEL_FILE, METADATA_FILE, VERDICT_FILE)]
            for path, data in zip(files, self._texts(), strict=True):
                if data is not None:
                    path.write_bytes(data)
            trusted = load_trusted_files(
                *files, allow_unblessed=self.allow_unblessed, verify_keys=keys
            )
        if (trusted.metadata_sha256, trusted.blessed) != (self.metadata_sha256, self.blessed):
            trusted.predictor.close()
            raise PipelineError("the model shipped to this worker is not the one checked")
        return trusted.predictor

    def _texts(self) -> tuple[bytes, bytes, bytes | None]:
        return self.model_text, self.metadata_text, self.verdict_text


def checked_model(model_dir: Path, allow_unblessed: bool) -> ShippedModel:
    """The shared trust check on the user's folder, then the bytes to ship, proven to be the
    checked ones (the model's digest is in the checked metadata, whose digest the check
    returns; the verdict is checked again on every worker)."""
    keys = verify_keys_from_env()
    trusted = _trusted(model_dir, allow_unblessed, keys)
    trusted.predictor.close()
    model_text = (model_dir / MODEL_FILE).read_bytes()
    metadata_text = (model_dir / METADATA_FILE).read_bytes()
    verdict = model_dir / VERDICT_FILE
    changed = (
        sha256_bytes(model_text) != trusted.metadata.model_sha256
        or sha256_bytes(metadata_text) != trusted.metadata_sha256
    )
    if changed:
        raise PipelineError(f"{model_dir}: the model files changed while being checked; retry")
    return ShippedModel(
        model_text=model_text,
        metadata_text=metadata_text,
        verdict_text=verdict.read_bytes() if verdict.is_file() else None,
        verify_pem=_pem(keys),
        allow_unblessed=allow_unblessed,
        metadata=trusted.metadata,
        metadata_sha256=trusted.metadata_sha256,
        blessed=trusted.blessed,
    )


def _trusted(model_dir: Path, allow_unblessed: bool, keys: VerifyKeys | None) -> TrustedModel:
    try:
        trusted = load_trusted_model(model_dir, allow_unblessed=allow_unblessed, verify_keys=keys)
    except UntrustedModel as exc:
        raise PipelineError(
            f"{exc.problem}; pass --allow-unblessed to score with it anyway (development only)"
        ) from None
    if not trusted.blessed:
        log.warning("scoring with an UNBLESSED model (--allow-unblessed): %s", trusted.problem)
    if not trusted.signed:
        log.warning(UNSIGNED_WARNING)
    return trusted


def _pem(keys: VerifyKeys | None) -> bytes | None:
    if keys is None:
        return None
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return b"".join(
        key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        for key in keys.keys.values()
    )


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
