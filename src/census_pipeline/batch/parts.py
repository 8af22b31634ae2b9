"""One task of a batch run: read a piece, check its rows, score the valid ones, write both parts.

A task's outputs are files named after its piece, written whole (a temporary name, then a
rename on a local disk; object stores publish a put whole), so a task that Dask reruns after a
lost worker simply rewrites the same files. It returns only a one-row summary, so the client
never holds data, whatever the input's size. Row positions are local to the piece here; the
client turns them into positions in the file once it knows every piece's row count.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from census_pipeline.batch.model import worker_predictor
from census_pipeline.batch.rows import DOMAIN_DTYPES, check_rows
from census_pipeline.batch.sources import Piece, read_piece
from census_pipeline.errors import PipelineError
from census_pipeline.predict import Predictor
from census_pipeline.schema import CATEGORICAL, LABELS

QUARANTINE_PARTS = "_quarantine"
TEMPORARY_PART = ".*.tmp"  # a part being written (see `_write`)
SUMMARY_COLUMNS = ("index", "source", "rows", "scored", "quarantined")
UNKNOWN_PREFIX = "unknown:"


@dataclass(frozen=True)
class Job:
    """What every task needs besides its piece (small: it travels with each task)."""

    plugin_name: str
    model_version: str
    folder: str  # the run's temporary output folder (URL)
    output_format: str  # "parquet" or "csv"


def summary_meta() -> pd.DataFrame:
    """The empty shape of a task's summary (Dask's `meta`)."""
    columns: dict[str, Any] = {
        "index": pd.Series(dtype="int64"),
        "source": pd.Series(dtype="object"),
        "rows": pd.Series(dtype="int64"),
        "scored": pd.Series(dtype="int64"),
        "quarantined": pd.Series(dtype="int64"),
    }
    for name in CATEGORICAL:
        columns[UNKNOWN_PREFIX + name] = pd.Series(dtype="int64")
    return pd.DataFrame(columns)


def run_piece(piece: Piece, job: Job) -> pd.DataFrame:
    """Read, check, score and write one piece; a file problem names the file."""
    predictor = worker_predictor(job.plugin_name)
    try:
        frame = read_piece(piece)
        checked = check_rows(frame)
    except PipelineError as exc:
        message = str(exc)
        raise PipelineError(
            message if piece.url in message else f"{piece.url}: {message}"
        ) from None
    scored = _scored(predictor, checked.valid, job.model_version)
    _write_part(job, f"part-{piece.index:05d}", scored)
    if checked.reasons:
        _write_quarantine_part(job, piece, frame, checked.invalid_positions, checked.reasons)
    return _summary(piece, len(frame), checked.valid, len(checked.reasons), predictor)


def _scored(predictor: Predictor, valid: pd.DataFrame, model_version: str) -> pd.DataFrame:
    """The rows plus probability, label and model_version; labels by the Predictor's own rule."""
    result = predictor.predict_frame(valid)
    positive = result.positive.astype(np.int8)
    # pandas-stubs type the codes as a Sequence; a numpy array is what pandas documents.
    labels = pd.Categorical.from_codes(
        positive,  # type: ignore[arg-type]
        dtype=pd.CategoricalDtype(list(LABELS)),
    )
    versions = pd.Categorical.from_codes(
        np.zeros(len(valid), dtype=np.int8),  # type: ignore[arg-type]
        dtype=pd.CategoricalDtype([model_version]),
    )
    columns: dict[Any, Any] = {name: valid[name] for name in valid}
    columns.update(probability=result.probabilities, label=labels, model_version=versions)
    # A new frame over the same columns, not `assign` (which copies every input column).
    return pd.DataFrame(columns, copy=False)


def _write_part(job: Job, stem: str, frame: pd.DataFrame) -> None:
    suffix = ".parquet" if job.output_format == "parquet" else ".csv"
    _write(f"{job.folder}/{stem}{suffix}", frame, job.output_format)


def _write_quarantine_part(
    job: Job, piece: Piece, frame: pd.DataFrame, positions: np.ndarray[Any, Any], reasons: list[str]
) -> None:
    rows = frame.iloc[positions].astype("string").reset_index(drop=True)
    head = pd.DataFrame({"source": piece.url, "position": positions, "reason": reasons})
    quarantined = pd.concat([head, rows], axis=1)
    _write(
        f"{job.folder}/{QUARANTINE_PARTS}/part-{piece.index:05d}.parquet", quarantined, "parquet"
    )


def _write(url: str, frame: pd.DataFrame, fmt: str) -> None:
    """Write whole: on a local disk through a temporary name and a rename.

    The temporary name starts with a dot, which Parquet dataset readers (pyarrow, Dask, Spark)
    skip: a worker killed mid-write leaves a file no reader takes for a part, and the publish
    step removes it (`TEMPORARY_PART`)."""
    fs, path = url_to_fs(url)
    folder, name = path.rsplit("/", 1)
    fs.makedirs(folder, exist_ok=True)
    local = isinstance(fs, LocalFileSystem)
    target = f"{folder}/.{name}.{uuid.uuid4().hex}.tmp" if local else path
    with fs.open(target, "wb") as handle:
        if fmt == "parquet":
            frame.to_parquet(handle, index=False)
        else:
            frame.to_csv(handle, index=False)
    if target != path:
        fs.mv(target, path)


def _summary(
    piece: Piece, rows: int, valid: pd.DataFrame, quarantined: int, predictor: Predictor
) -> pd.DataFrame:
    record: dict[str, Any] = {
        "index": piece.index,
        "source": piece.url,
        "rows": rows,
        "scored": len(valid),
        "quarantined": quarantined,
    }
    for name, count in unknown_categories(predictor, valid).items():
        record[UNKNOWN_PREFIX + name] = count
    return pd.DataFrame([record]).astype(summary_meta().dtypes.to_dict())


def unknown_categories(predictor: Predictor, valid: pd.DataFrame) -> dict[str, int]:
    """Per feature, valid values the model never saw in training (scored as missing).

    Counted here per piece rather than read from the Predictor's running total, which belongs
    to the worker process: a rerun task or a second run on the same cluster would count twice.
    """
    counts: dict[str, int] = {}
    for name in CATEGORICAL:
        vocabulary = predictor.encoder.categories.get(name)
        if vocabulary is None:
            counts[name] = 0
            continue
        column = valid[name]
        seen = np.asarray(DOMAIN_DTYPES[name].categories.isin(vocabulary), dtype=bool)
        codes = column.cat.codes.to_numpy()
        counts[name] = int(np.count_nonzero((codes >= 0) & ~seen[np.maximum(codes, 0)]))
    return counts
