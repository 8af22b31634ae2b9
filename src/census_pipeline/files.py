"""Atomic writes and digests: a failed step must never leave half a file for the next one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20
_OUTPUT_MODE = 0o644


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files do not load into memory."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds.

    The temporary file lives in the same directory so the final rename is atomic on POSIX.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # The bytes reach the disk before the name does, so a crash cannot leave an empty file
        # under the final name.
        with tmp.open("rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); outputs are ordinary files others must read.
        os.chmod(tmp, _OUTPUT_MODE)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(target: Path, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def remove_all(targets: Iterable[Path]) -> None:
    for target in targets:
        target.unlink(missing_ok=True)


@contextmanager
def all_or_nothing(targets: Iterable[Path]) -> Iterator[None]:
    """On any failure inside the block, remove every one of `targets`, then re-raise.

    A step that writes several files wraps its whole run in this: after a failure none of its
    outputs is left, so the next step cannot pair a new file with an old one.
    """
    listed = list(targets)
    try:
        yield
    except BaseException:
        remove_all(listed)
        raise


def replace_all(outputs: Mapping[Path, bytes]) -> None:
    """Write each file atomically; if any write fails, none of `outputs` is left behind."""
    with all_or_nothing(outputs):
        for target, data in outputs.items():
            write_bytes_atomic(target, data)


def json_bytes(payload: Any) -> bytes:
    """Stable JSON (sorted keys, trailing newline) so DVC and git diffs stay meaningful."""
    return (json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n").encode("utf-8")


def write_text_atomic(target: Path, text: str) -> None:
    write_bytes_atomic(target, text.encode("utf-8"))


def write_json_atomic(target: Path, payload: Any) -> None:
    write_bytes_atomic(target, json_bytes(payload))


def parquet_bytes(frame: Any, metadata: Mapping[str, str]) -> bytes:
    """A pandas frame as Parquet bytes (no index), with `metadata` added to the file's key-value
    metadata. pyarrow is imported here only, so the serving install never needs it."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {key.encode("utf-8"): value.encode("utf-8") for key, value in metadata.items()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue().to_pybytes())


def parquet_metadata(path: Path) -> dict[str, str]:
    """A Parquet file's key-value metadata as text (pandas' own entry included)."""
    import pyarrow.parquet as pq

    from census_pipeline.errors import PipelineError

    try:
        raw = pq.read_schema(path).metadata or {}
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run the step that produces it first)") from exc
    except (OSError, ValueError) as exc:  # ArrowInvalid (a ValueError): not Parquet
        raise PipelineError(f"{path}: not a readable Parquet file ({exc})") from exc
    return {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in raw.items()}


def read_json(path: Path) -> Any:
    from census_pipeline.errors import PipelineError

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: not found (run the step that produces it first)") from exc
    except json.JSONDecodeError as exc:
        raise PipelineError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
