"""Census records as Open Inference Protocol tensors, for the OIP tests (and tests/e2e)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pandas as pd

from census_pipeline.schema import FEATURES, NUMERIC_RANGES


def table_records(table: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` rows of a clean table as /predict's JSON records (null when missing)."""
    frame = pd.read_parquet(table).head(count)
    records = [
        {
            name: (None if pd.isna(value) else value)
            for name, value in zip(FEATURES, row, strict=True)
        }
        for row in frame[list(FEATURES)].astype(object).itertuples(index=False)
    ]
    plain: list[dict[str, Any]] = json.loads(json.dumps(records, default=int))  # numpy ints
    return plain


def datatype(name: str) -> str:
    return "INT64" if name in NUMERIC_RANGES else "BYTES"


def json_inputs(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One tensor per field; a missing category is an empty string, as the protocol has no null."""
    return [
        {
            "name": name,
            "datatype": datatype(name),
            "shape": [len(records)],
            "data": ["" if r[name] is None else r[name] for r in records],
        }
        for name in FEATURES
    ]


def infer_body(records: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"inputs": json_inputs(records), **extra}


def tensor(body: dict[str, Any], name: str) -> dict[str, Any]:
    """The input tensor `name` of a (deep-copied) request body, to spoil it."""
    found: dict[str, Any] = next(t for t in body["inputs"] if t["name"] == name)
    return found


def spoiled(body: dict[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(body)
