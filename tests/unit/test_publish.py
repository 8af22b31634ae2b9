"""Publish: the service's folder changes only to a model the service accepts, and whole.

A failed experiment (a gate that refuses and removes models/verdict.json, a retrained model
with no verdict yet) must leave the published model in place and servable.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from model_samples import tiny_project
from typer.testing import CliRunner

from census_pipeline.api.loading import load_served_model
from census_pipeline.api.settings import Settings
from census_pipeline.cli import app
from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import read_json, sha256_file, write_json_atomic
from census_pipeline.publish import CARD, METADATA, MODEL, RECORD, SEAL, VERDICT, publish
from census_pipeline.signing import card_seal, card_seal_path


def bless(params: Params, blessed: bool = True) -> None:
    """A verdict shaped like the gate's for the workspace model, and a card beside it."""
    paths = params.paths
    metadata = read_json(paths.model_metadata)
    verdict: dict[str, Any] = {
        "blessed": blessed,
        "model_version": metadata["model_version"],
        "model_sha256": metadata["model_sha256"],
        "checks": [],
        "override": None,
        "headline_metrics": {"threshold": metadata["threshold"]},
        "inputs": {"model_metadata": sha256_file(paths.model_metadata)},
    }
    write_json_atomic(paths.verdict, verdict)
    paths.model_card_html.parent.mkdir(parents=True, exist_ok=True)
    html, markdown = b"<html>card</html>", b"# card"
    paths.model_card_html.write_bytes(html)
    seal = card_seal(html, markdown, verdict, None)
    write_json_atomic(card_seal_path(paths.model_card_html), seal)


def served_sha256(params: Params) -> str:
    """What the service itself loads from the published folder (it refuses anything else)."""
    folder = params.paths.serving_dir
    served = load_served_model(Settings(model_dir=folder, model_card_path=folder / CARD))
    served.predictor.close()
    return served.info.model_sha256


@pytest.fixture
def project(tmp_path: Path) -> Params:
    params = tiny_project(tmp_path)
    bless(params)
    return params


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_publish_copies_what_the_service_reads_and_records_when(project: Params) -> None:
    done = publish(project)
    paths = project.paths
    folder = paths.serving_dir
    assert done.folder == folder
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [MODEL, METADATA, VERDICT, CARD, SEAL, RECORD]
    )
    assert (folder / MODEL).read_bytes() == paths.model_file.read_bytes()
    assert (folder / METADATA).read_bytes() == paths.model_metadata.read_bytes()
    record = read_json(folder / RECORD)
    assert record["model_sha256"] == read_json(paths.model_metadata)["model_sha256"]
    assert record["published_at"]
    assert record["files_sha256"][MODEL] == sha256_file(paths.model_file)
    assert served_sha256(project) == record["model_sha256"]
    # Nothing half-made is left beside it.
    assert [p.name for p in folder.parent.iterdir() if p.name.startswith(".serving")] == []


def test_an_unblessed_model_is_not_published_and_the_old_one_stays(project: Params) -> None:
    publish(project)
    before = snapshot(project.paths.serving_dir)
    bless(project, blessed=False)
    with pytest.raises(PipelineError, match=r"not published .* is unchanged"):
        publish(project)
    assert snapshot(project.paths.serving_dir) == before
    assert served_sha256(project) == read_json(project.paths.serving_dir / RECORD)["model_sha256"]


def test_a_failed_experiment_leaves_the_published_model_servable(project: Params) -> None:
    """The gate removes models/verdict.json when it refuses; the service does not care."""
    publish(project)
    published = served_sha256(project)
    project.paths.verdict.unlink()
    shutil.rmtree(project.paths.card_dir)
    with pytest.raises(PipelineError, match="not found"):
        publish(project)
    assert served_sha256(project) == published


def test_a_model_changed_after_the_verdict_is_refused(project: Params) -> None:
    metadata = read_json(project.paths.model_metadata)
    write_json_atomic(project.paths.model_metadata, {**metadata, "threshold": 0.9})
    with pytest.raises(PipelineError, match="not published"):
        publish(project)
    assert not project.paths.serving_dir.exists()


def test_cli_publishes_and_fails_with_one_line(project: Params, tmp_path: Path) -> None:
    params_file = str(project.paths.serving_dir.parent / "params.yaml")
    result = CliRunner().invoke(app, ["publish", "--params", params_file])
    assert result.exit_code == 0, result.output
    assert "published model" in result.output
    bless(project, blessed=False)
    result = CliRunner().invoke(app, ["publish", "--params", params_file])
    assert result.exit_code == 1
    assert result.output.strip().startswith("error: not published")
