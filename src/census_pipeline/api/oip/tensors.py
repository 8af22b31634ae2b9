"""The adapter between OIP tensors and census records: columns in, records through `/predict`'s
validation, predictions out as tensors.

Nothing here judges a value: the protocol's own rules (tensor names, datatypes, shapes, equal
lengths, the batch limit) are checked here, then the columns become records and go through
`body.RECORDS`, the very validator of `/predict/batch`, so every element meets the same domains,
ranges and missing-value rules. Its errors are only re-worded to name the tensor and the element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from itertools import repeat
from typing import Any

from pydantic import TypeAdapter, ValidationError

from census_pipeline.api.body import RECORDS
from census_pipeline.api.loading import ServedModel
from census_pipeline.api.oip import binary
from census_pipeline.api.oip.schemas import InferenceRequest, RequestInput
from census_pipeline.api.schemas import EXAMPLE_RECORD
from census_pipeline.schema import FEATURES, NUMERIC_RANGES

PLATFORM = "lightgbm"
# The outputs, in the order a response lists them: name -> datatype.
OUTPUTS = {"probability": "FP64", "label": "BYTES"}
# Parameters of Triton's binary tensor data extension asking for binary outputs.
BINARY_OUTPUT = "binary_data_output"
BINARY_DATA = "binary_data"

_REQUEST = TypeAdapter(InferenceRequest)


class InferenceFailure(Exception):
    """A request the protocol answers with `{"error": message}` and `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# The inputs are the census record's fields, as /predict takes them (the record schema requires
# all of them, even one the model may not use).


def datatype(feature: str) -> str:
    """INT64 for the census's integer features, BYTES (strings) for its categories."""
    return "INT64" if feature in NUMERIC_RANGES else "BYTES"


def model_metadata(model: ServedModel, name: str) -> dict[str, Any]:
    return {
        "name": name,
        "versions": [model.version],
        "platform": PLATFORM,
        "inputs": [
            {"name": feature, "datatype": datatype(feature), "shape": [-1]} for feature in FEATURES
        ],
        "outputs": [
            {"name": out, "datatype": kind, "shape": [-1]} for out, kind in OUTPUTS.items()
        ],
    }


def example_request() -> dict[str, Any]:
    """`/predict`'s example record as an inference request (for the OpenAPI document)."""
    return {
        "id": "example-1",
        "inputs": [
            {"name": name, "shape": [1], "datatype": datatype(name), "data": [value]}
            for name, value in EXAMPLE_RECORD.items()
        ],
    }


# Told what was scored (the records and `ServedModel`'s answers), to log and count it.
OnScored = Callable[[list[dict[str, Any]], list[dict[str, Any]]], None]


def infer(
    model: ServedModel,
    name: str,
    body: bytes,
    limit: int,
    header_length: str | None = None,
    on_scored: OnScored | None = None,
) -> tuple[bytes, int | None]:
    """Parse, validate, score and serialise one inference request (run off the event loop).

    Answers the response body and, when binary outputs follow its JSON header, that header's
    length. `header_length` is the request's `Inference-Header-Content-Length`, if any.
    """
    try:
        header, payload = binary.split(body, header_length) if header_length else (body, b"")
        request = parse_request(header)
        if header_length:
            binary.attach(request, payload)
    except binary.FramingError as exc:
        raise InferenceFailure(400, str(exc)) from None
    wanted = requested_outputs(request)
    records = to_records(request.inputs, FEATURES, limit)
    predictions = model.predict_many(records)
    if on_scored is not None:
        on_scored(records, predictions)
    answer: dict[str, Any] = {"model_name": name, "model_version": model.version}
    if request.id is not None:
        answer["id"] = request.id
    answer["outputs"] = [_output(out, predictions) for out in wanted]
    return binary.frame(answer, [out for out, raw in wanted.items() if raw])


def parse_request(body: bytes) -> InferenceRequest:
    try:
        return _REQUEST.validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        message = f"invalid inference request: {where}: {first['msg']}{more}"
        raise InferenceFailure(400, message) from None


def requested_outputs(request: InferenceRequest) -> dict[str, bool]:
    """The outputs to answer with (all by default), each with whether it goes as binary data:
    an output's own `binary_data` parameter, else the request's `binary_data_output`."""
    default = (request.parameters or {}).get(BINARY_OUTPUT) is True
    if request.outputs is None:
        return dict.fromkeys(OUTPUTS, default)
    wanted: dict[str, bool] = {}
    for out in request.outputs:
        if out.name not in OUTPUTS:
            raise InferenceFailure(
                400, f"unknown output tensor '{out.name}': the outputs are {', '.join(OUTPUTS)}"
            )
        if out.name in wanted:
            raise InferenceFailure(400, f"output tensor '{out.name}' is requested twice")
        wanted[out.name] = (out.parameters or {}).get(BINARY_DATA, default) is True
    return wanted


def to_records(
    inputs: Sequence[RequestInput], features: Sequence[str], limit: int
) -> list[dict[str, Any]]:
    """One record per row, validated by `/predict/batch`'s own validator."""
    _check_names(inputs, features)
    columns = {tensor.name: _column(tensor) for tensor in inputs}
    rows = _row_count(columns, limit)
    names = list(columns)
    # Rows from the columns (equal lengths checked above), built in C loops: a third cheaper
    # than a comprehension, and this is the adapter's main cost over /predict/batch.
    records = list(map(dict, map(zip, repeat(names), zip(*columns.values(), strict=True))))
    try:
        validated: list[dict[str, Any]] = RECORDS.validate_python(records)
    except ValidationError as exc:
        raise InferenceFailure(400, _element_error(exc)) from None
    assert len(validated) == rows
    return validated


def _check_names(inputs: Sequence[RequestInput], features: Sequence[str]) -> None:
    seen: set[str] = set()
    for tensor in inputs:
        if tensor.name not in features:
            raise InferenceFailure(
                400,
                f"unknown input tensor '{tensor.name}': the inputs are the census record's "
                f"fields ({', '.join(features)})",
            )
        if tensor.name in seen:
            raise InferenceFailure(400, f"input tensor '{tensor.name}' is sent twice")
        seen.add(tensor.name)
        if tensor.datatype != datatype(tensor.name):
            raise InferenceFailure(
                400,
                f"input tensor '{tensor.name}': datatype {tensor.datatype}, "
                f"expected {datatype(tensor.name)}",
            )
    missing = [feature for feature in features if feature not in seen]
    if missing:
        raise InferenceFailure(400, f"missing input tensor(s): {', '.join(missing)}")


def _column(tensor: RequestInput) -> list[Any]:
    """The tensor's elements as a flat column, once its shape is known to hold them."""
    shape, data = tensor.shape, tensor.data
    if data is None:
        raise InferenceFailure(
            400,
            f"input tensor '{tensor.name}' has no data: send `data`, or binary data "
            f"announced by the parameter {binary.SIZE}",
        )
    if len(shape) == 2 and shape[1] == 1 and data and type(data[0]) is list:
        data = _unnest(tensor.name, data)
    if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)) or shape[0] < 0:
        raise InferenceFailure(
            400, f"input tensor '{tensor.name}': shape {shape}, expected [N] (or [N, 1])"
        )
    if shape[0] != len(data):
        raise InferenceFailure(
            400,
            f"input tensor '{tensor.name}': shape {shape} does not match its "
            f"{len(data)} data elements",
        )
    if tensor.datatype == "BYTES":
        # The protocol has no null: an empty string is how clients send a missing category.
        return [None if value == "" else value for value in data]
    return data


def _unnest(name: str, data: list[Any]) -> list[Any]:
    if any(type(row) is not list or len(row) != 1 for row in data):
        raise InferenceFailure(400, f"input tensor '{name}': nested data must be [[x], [y], ...]")
    return [row[0] for row in data]


def _row_count(columns: dict[str, list[Any]], limit: int) -> int:
    lengths = {name: len(column) for name, column in columns.items()}
    rows = max(lengths.values())
    if rows > limit:
        raise InferenceFailure(
            413,
            f"batch of {rows} records is over the limit of {limit}: split it into smaller requests",
        )
    short = next((name for name, length in lengths.items() if length != rows), None)
    if short is not None:
        longest = max(lengths, key=lambda name: lengths[name])
        raise InferenceFailure(
            400,
            f"input tensors differ in length: '{short}' has {lengths[short]} elements, "
            f"'{longest}' has {rows}; every tensor holds one element per record",
        )
    if rows == 0:
        raise InferenceFailure(400, "the input tensors are empty: send at least one record")
    return rows


def _element_error(exc: ValidationError) -> str:
    """The first problem, as `input tensor 'education' element 17: <what /predict says>`."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    if len(loc) >= 2:
        value = first.get("input")
        got = "a missing value" if value is None else repr(value)
        got = got if len(got) <= 40 else got[:37] + "..."
        where = f"input tensor '{loc[1]}' element {loc[0]}"
        return f"{where}: {first['msg']} (got {got}){more}"
    return f"invalid records: {first['msg']}{more}"


def _output(name: str, predictions: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": OUTPUTS[name],
        "shape": [len(predictions)],
        "data": [prediction[name] for prediction in predictions],
    }
