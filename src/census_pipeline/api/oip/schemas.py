"""The Open Inference Protocol v2 (REST) messages, as the protocol's specification names them.

Only the envelope is modelled here: tensor `data` stays a plain list, because what an element
may be is the census record's business (`census_pipeline.api.schemas.CensusRecord`), checked by
the adapter after it has turned the columns into records (see `tensors.py`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# Every datatype the protocol defines; a tensor of any other is not an OIP tensor at all.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip

_ELEMENTS = (
    "Row-major tensor elements, flat or nested. BYTES elements are strings; an empty string "
    "or null is a missing value (accepted where /predict accepts null)."
)


class ServerMetadata(BaseModel):
    """`GET /v2`: who answers, and which protocol extensions it speaks."""

    name: str
    version: str
    extensions: list[str]


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 marks the variable batch dimension.")


class ModelMetadata(BaseModel):
    """`GET /v2/models/{name}`: the tensors an inference request sends and receives."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    """One input tensor: here, one feature's column of values."""

    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int] = Field(min_length=1, description="[N] (or [N, 1]) for N records.")
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = Field(
        None, description=_ELEMENTS + " Left out for a tensor sent as binary data."
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """`POST /v2/models/{name}/infer`: one tensor per feature, all of the same length."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, description="Echoed in the response.")
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        None, description="The outputs wanted (default: all of them)."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[float] | list[str]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class InferenceError(BaseModel):
    """Every OIP error: one line naming what is wrong (tensor, element index, problem)."""

    error: str
