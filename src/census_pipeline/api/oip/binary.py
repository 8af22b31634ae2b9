"""Triton's binary tensor data extension: tensors as raw bytes after the JSON header.

A request says `Inference-Header-Content-Length: <n>`: its first n bytes are the usual JSON
header, and each input with the parameter `binary_data_size` takes that many bytes of the rest,
in the order of `inputs`. INT64 elements are 8-byte little-endian integers; BYTES elements are a
4-byte little-endian length and then the bytes. Decoded, they are plain lists that go down the
same path as JSON data: nothing about a value is judged here, only the framing.

Answers use the same framing for the outputs asked for in binary (`binary_data` on an output,
else `binary_data_output` on the request).
"""

from __future__ import annotations

import struct
from collections.abc import Collection
from typing import Any

from pydantic_core import to_json

from census_pipeline.api.oip.schemas import InferenceRequest, RequestInput

EXTENSION = "binary_tensor_data"  # its name in the server metadata's `extensions`
HEADER = "Inference-Header-Content-Length"
SIZE = "binary_data_size"
_LENGTH = struct.Struct("<I")


class FramingError(ValueError):
    """The binary part does not frame the tensors it claims to (400, with this message)."""


def split(body: bytes, header_length: str) -> tuple[bytes, bytes]:
    """The JSON header and the binary rest of a request body."""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise FramingError(
            f"{HEADER} is {header_length!r}: expected the JSON header's length in bytes, "
            f"at most the body's {len(body)}"
        )
    return body[: int(header_length)], body[int(header_length) :]


def attach(request: InferenceRequest, payload: bytes) -> None:
    """Give each binary input its decoded elements, in place, consuming all of `payload`."""
    offset = 0
    for tensor in request.inputs:
        size = (tensor.parameters or {}).get(SIZE)
        if size is None:
            continue
        if type(size) is not int or size < 0 or offset + size > len(payload):
            raise FramingError(
                f"input tensor '{tensor.name}': {SIZE} {size!r} does not fit the "
                f"{len(payload) - offset} bytes left after the JSON header"
            )
        if tensor.data is not None:
            raise FramingError(f"input tensor '{tensor.name}': both {SIZE} and JSON data")
        tensor.data = _decode(tensor, payload[offset : offset + size])
        offset += size
    if offset != len(payload):
        raise FramingError(
            f"{len(payload) - offset} bytes after the JSON header belong to no input tensor"
        )


def _decode(tensor: RequestInput, chunk: bytes) -> list[Any] | None:
    if tensor.datatype == "INT64":
        if len(chunk) % 8:
            raise FramingError(
                f"input tensor '{tensor.name}': {len(chunk)} bytes is no INT64 array"
            )
        return list(struct.unpack(f"<{len(chunk) // 8}q", chunk))
    if tensor.datatype == "BYTES":
        return _strings(tensor.name, chunk)
    # Any other datatype is refused by name, like a JSON tensor of that datatype.
    return None


def _strings(name: str, chunk: bytes) -> list[str]:
    values: list[str] = []
    offset = 0
    while offset < len(chunk):
        if offset + 4 > len(chunk):
            raise FramingError(f"input tensor '{name}': element {len(values)} is cut short")
        (length,) = _LENGTH.unpack_from(chunk, offset)
        raw = chunk[offset + 4 : offset + 4 + length]
        if len(raw) != length:
            raise FramingError(f"input tensor '{name}': element {len(values)} is cut short")
        try:
            values.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise FramingError(
                f"input tensor '{name}' element {len(values)}: not UTF-8 text"
            ) from None
        offset += 4 + length
    return values


def frame(answer: dict[str, Any], binary: Collection[str]) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when outputs in `binary` follow it."""
    if not binary:
        return to_json(answer), None
    chunks = []
    for output in answer["outputs"]:
        if output["name"] in binary:
            raw = _pack(output["datatype"], output.pop("data"))
            output["parameters"] = {SIZE: len(raw)}
            chunks.append(raw)
    header = to_json(answer)
    return header + b"".join(chunks), len(header)


def _pack(datatype: str, data: list[Any]) -> bytes:
    if datatype == "FP64":
        return struct.pack(f"<{len(data)}d", *data)
    encoded = [value.encode("utf-8") for value in data]
    return b"".join(_LENGTH.pack(len(value)) + value for value in encoded)
