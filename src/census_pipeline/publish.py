"""Publish the blessed model to the folder the service serves (`paths.serving_dir`).

The pipeline's `models/` and `reports/` are its workspace: every run rewrites them, and a gate
that refuses a model removes its verdict there. Serving from the workspace would let a failed
experiment leave the service unable to start. So the service reads a separate folder that only
this step writes, and only with a model the service itself would accept: the files are copied
into a staging folder first, checked there exactly as the service checks them (model digest,
verdict for this model and this metadata, blessed), and the staging folder then replaces the
published one. A refused model leaves the published one untouched.

The folder is not a DVC output and is ignored by git, so the publication record may say when it
happened without making `dvc.lock` or `git status` differ between machines.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import json_bytes, sha256_file
from census_pipeline.signing import card_seal_path

# The files the service reads, by their name in the published folder.
MODEL: Final = "model.txt"
METADATA: Final = "model.json"
VERDICT: Final = "verdict.json"
CARD: Final = "model_card.html"
# The card's seal (the card's digests and the verdict it shows), read beside the card.
SEAL: Final = card_seal_path(Path(CARD)).name
RECORD: Final = "publication.json"


@dataclass(frozen=True)
class Publication:
    folder: Path
    model_version: str
    model_sha256: str


def sources(params: Params) -> dict[str, Path]:
    """Published name -> the pipeline output it is copied from."""
    paths = params.paths
    return {
        MODEL: paths.model_file,
        METADATA: paths.model_metadata,
        VERDICT: paths.verdict,
        CARD: paths.model_card_html,
        SEAL: card_seal_path(paths.model_card_html),
    }


def publish(params: Params) -> Publication:
    """Copy the blessed model, its verdict and card to `paths.serving_dir`, all or nothing."""
    target = params.paths.serving_dir
    staging = target.with_name(f".{target.name}.new-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        _copy(sources(params), staging)
        publication = _check(staging, target)
        _write(staging / RECORD, _record(staging, publication))
        _fsync_folder(staging)
        _swap(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return publication


def _copy(files: dict[str, Path], folder: Path) -> None:
    for name, source in files.items():
        if not source.is_file():
            raise PipelineError(
                f"{source}: not found; run the pipeline (`make pipeline`) before publishing"
            )
        shutil.copyfile(source, folder / name)
        os.chmod(folder / name, 0o644)


def _check(staging: Path, target: Path) -> Publication:
    """Refuse exactly what the service would refuse to start with: the shared trust check
    (`census_pipeline.trust`, never allowing an unblessed model), run on the copies."""
    from census_pipeline.trust import load_trusted_model

    try:
        trusted = load_trusted_model(staging)
    except PipelineError as exc:
        raise PipelineError(f"not published ({target} is unchanged): {exc}") from None
    trusted.predictor.close()
    metadata = trusted.metadata
    return Publication(target, metadata.model_version, metadata.model_sha256)


def _record(staging: Path, publication: Publication) -> dict[str, object]:
    return {
        "model_version": publication.model_version,
        "model_sha256": publication.model_sha256,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files_sha256": {p.name: sha256_file(p) for p in sorted(staging.iterdir())},
    }


def _write(path: Path, record: dict[str, object]) -> None:
    path.write_bytes(json_bytes(record))
    os.chmod(path, 0o644)


def _fsync_folder(folder: Path) -> None:
    """The bytes reach the disk before the folder takes the published name."""
    for path in folder.iterdir():
        with path.open("rb") as handle:
            os.fsync(handle.fileno())


def _swap(staging: Path, target: Path) -> None:
    """Replace `target` by `staging` with two renames: the old folder is never half-updated."""
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    try:
        os.replace(staging, target)
    except OSError:
        if old.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
