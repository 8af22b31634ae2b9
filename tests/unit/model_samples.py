"""A small synthetic clean table and a model trained on it by the real train step, in seconds.

The unit tests of the artifact and the predictor need a genuine model file and metadata, not a
mock; training on 1,500 synthetic rows with a few rounds gives one quickly.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from conftest import make_project

from census_pipeline.config import Params
from census_pipeline.schema import (
    CATEGORY_DOMAINS,
    COLUMNS,
    FEATURES,
    LABELS,
    NULLABLE,
    NUMERIC_RANGES,
)
from census_pipeline.train import train


def synthetic_clean_table(rows: int = 1500, seed: int = 7) -> pd.DataFrame:
    """A table honouring the clean contract, whose label depends on a few features."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for name in FEATURES:
        if name in NUMERIC_RANGES:
            low, high = NUMERIC_RANGES[name]
            data[name] = rng.integers(low, min(high, low + 80) + 1, rows).astype("int64")
        else:
            domain = list(CATEGORY_DOMAINS[name])
            values = np.array(domain, dtype=object)[rng.integers(0, len(domain), rows)]
            if name in NULLABLE:
                values[rng.random(rows) < 0.05] = None
            data[name] = pd.Categorical(values, categories=domain)
    frame = pd.DataFrame(data)
    married = (frame["marital-status"] == "Married-civ-spouse").to_numpy()
    logit = 0.5 * (frame["education-num"].to_numpy() - 9) + 2.0 * married - 1.0
    positive = rng.random(rows) < 1 / (1 + np.exp(-logit))
    frame["salary"] = pd.Categorical(np.where(positive, LABELS[1], LABELS[0]), list(LABELS))
    return frame[list(COLUMNS)]


def tiny_project(root: Path, overrides: dict[str, object] | None = None) -> Params:
    """A temp project with the synthetic clean tables and a quickly trained model."""
    settings: dict[str, object] = {"train.max_rounds": 30, "train.tuning_grid": {}}
    params = make_project(root, {**settings, **(overrides or {})})
    params.paths.clean_dir.mkdir(parents=True, exist_ok=True)
    synthetic_clean_table().to_parquet(params.paths.clean_train, index=False)
    synthetic_clean_table(rows=400, seed=8).to_parquet(params.paths.clean_test, index=False)
    train(params)
    return params


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the service receives them: hyphenated keys, plain Python values, None if missing."""
    rows = frame[list(FEATURES)].astype(object).to_dict("records")
    return [{str(k): None if _missing(v) else v for k, v in row.items()} for row in rows]


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))
