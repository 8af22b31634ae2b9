"""Extra trainings on the session's clean data, in their own temp projects."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import make_project

from census_pipeline.config import Params
from census_pipeline.train import train


def project_with_clean_data(
    root: Path, clean_project: Params, overrides: dict[str, object] | None = None
) -> Params:
    """A fresh project holding a copy of `clean_project`'s clean tables, not yet trained."""
    params = make_project(root, overrides)
    shutil.copytree(clean_project.paths.clean_dir, params.paths.clean_dir)
    return params


def trained_variant(
    root: Path, clean_project: Params, overrides: dict[str, object] | None = None
) -> Params:
    params = project_with_clean_data(root, clean_project, overrides)
    train(params)
    return params
