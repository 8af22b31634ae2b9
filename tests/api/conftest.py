"""Fixtures for the service tests: a served model folder, settings pointing at it, and clients.

The model, the gate's verdict and the card are the real ones from the session's pipeline run
(see the root conftest); tests that need a broken, tampered or unblessed variant copy them into
their own temporary folder first.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.api.settings import ENV_PREFIX
from census_pipeline.config import Params
from census_pipeline.files import read_json

from .service_samples import settings_for


@pytest.fixture(scope="session", autouse=True)
def _no_service_environment() -> Iterator[None]:
    """A developer's CENSUS_API_* (or verify key) variables must not leak into the tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in list(os.environ):
            # A developer's verify key would make the session's unsigned verdict unservable.
            if name.startswith((ENV_PREFIX, "CENSUS_VERIFY_KEY")):
                patch.delenv(name)
        yield


@pytest.fixture(scope="session")
def served_dir(carded_project: Params, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a deployment holds: the model, its metadata, the gate's verdict and the card."""
    folder = tmp_path_factory.mktemp("served")
    paths = carded_project.paths
    for source in (paths.model_file, paths.model_metadata, paths.verdict):
        shutil.copy2(source, folder / source.name)
    shutil.copy2(paths.model_card_html, folder / "model_card.html")
    assert read_json(folder / "verdict.json")["blessed"], "the session's gate refused its model"
    return folder


@pytest.fixture
def model_copy(served_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the served folder, for tests that break it."""
    return Path(shutil.copytree(served_dir, tmp_path / "models"))


@pytest.fixture(scope="session")
def app(served_dir: Path) -> FastAPI:
    return create_app(settings_for(served_dir, enable_bare_endpoint=True))


@pytest.fixture(scope="session")
def client(app: FastAPI) -> Iterator[TestClient]:
    """A started service (lifespan ran) shared by the read-only tests."""
    with TestClient(app, raise_server_exceptions=False) as started:
        yield started
