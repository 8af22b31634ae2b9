"""Census records as Open Inference Protocol tensors, for the OIP tests (and tests/e2e)."""

from __future__ import annotations

import copy
import json
import struct
from collections.abc import Collection
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


def packed(datatype: str, data: list[Any]) -> bytes:
    """Tensor elements in Triton's binary form: little-endian INT64, or length-prefixed BYTES."""
    if datatype == "INT64":
        return struct.pack(f"<{len(data)}q", *data)
    encoded = [value.encode("utf-8") for value in data]
    return b"".join(struct.pack("<I", len(value)) + value for value in encoded)


def binary_request(body: dict[str, Any], names: Collection[str]) -> tuple[bytes, dict[str, str]]:
    """`body` with the tensors in `names` moved to binary data; answers content and headers."""
    body = copy.deepcopy(body)
    chunks = []
    for t in body["inputs"]:
        if t["name"] in names:
            raw = packed(t["datatype"], t.pop("data"))
            t["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
    header = json.dumps(body).encode()
    return header + b"".join(chunks), {"Inference-Header-Content-Length": str(len(header))}


def binary_outputs(content: bytes, header_length: int) -> dict[str, list[Any]]:
    """The outputs of a binary answer, decoded."""
    header = json.loads(content[:header_length])
    offset, outputs = header_length, {}
    for out in header["outputs"]:
        size = out["parameters"]["binary_data_size"]
        raw = content[offset : offset + size]
        offset += size
        if out["datatype"] == "FP64":
            outputs[out["name"]] = list(struct.unpack(f"<{size // 8}d", raw))
        else:
            values, at = [], 0
            while at < len(raw):
                (length,) = struct.unpack_from("<I", raw, at)
                values.append(raw[at + 4 : at + 4 + length].decode())
                at += 4 + length
            outputs[out["name"]] = values
    assert offset == len(content)
    return outputs
