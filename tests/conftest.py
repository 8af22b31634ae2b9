"""Shared fixtures.

Unit tests build small synthetic frames. Integration tests share one real pipeline run per test
session, in a temporary project folder, each fixture taking the run one step further.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import yaml

from census_pipeline.config import Params, load_params

REPO_ROOT = Path(__file__).resolve().parents[1]


def real_data_dir() -> Path | None:
    """Where the real census files are, if anywhere locally; None means use the download chain."""
    if env := os.environ.get("CENSUS_DATA_DIR"):
        return Path(env)
    candidate = REPO_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def make_project(root: Path, overrides: dict[str, object] | None = None) -> Params:
    """A throwaway project: the repo's params.yaml with outputs under `root`."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in (overrides or {}).items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    # The committed baseline and search result, as a clone has them: train uses the search's
    # choice exactly as the pipeline does.
    for folder in (raw["paths"]["baseline_dir"], raw["paths"].get("tuning_dir", "tuning")):
        if (REPO_ROOT / folder).is_dir():
            shutil.copytree(
                REPO_ROOT / folder, root / folder, dirs_exist_ok=True,
                ignore=shutil.ignore_patterns("study.db*"),
            )  # fmt: skip
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return load_params(path)


@pytest.fixture(scope="session")
def project_params(tmp_path_factory: pytest.TempPathFactory) -> Params:
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture(scope="session")
def clean_project(project_params: Params) -> Params:
    """Real data ingested, validated and cleaned."""
    from census_pipeline.clean import clean
    from census_pipeline.ingest import ingest
    from census_pipeline.validate import validate

    ingest(project_params, source_dir=real_data_dir())
    validate(project_params)
    clean(project_params)
    return project_params


@pytest.fixture(scope="session")
def trained_project(clean_project: Params) -> Params:
    from census_pipeline.train import train

    train(clean_project)
    return clean_project


@pytest.fixture(scope="session")
def evaluated_project(trained_project: Params) -> Params:
    from census_pipeline.evaluate import evaluate

    evaluate(trained_project)
    return trained_project


@pytest.fixture(scope="session")
def audited_project(evaluated_project: Params) -> Params:
    from census_pipeline.audit import audit

    audit(evaluated_project)
    return evaluated_project


@pytest.fixture(scope="session")
def gated_project(audited_project: Params) -> Params:
    from census_pipeline.gate import gate

    gate(audited_project)
    return audited_project


@pytest.fixture(scope="session")
def carded_project(gated_project: Params) -> Params:
    from census_pipeline.card import card
    from census_pipeline.tradeoff import tradeoff

    tradeoff(gated_project)
    card(gated_project)
    return gated_project


@pytest.fixture(scope="session")
def published_project(carded_project: Params) -> Params:
    """The blessed model published to the project's serving folder, as `make run` does."""
    from census_pipeline.publish import publish

    publish(carded_project)
    return carded_project


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (for servers the tests start)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
