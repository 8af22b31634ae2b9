"""`score`: batch scoring of census files on Dask, the same code on a laptop or a cluster.

Order matters for what a user sees when something is wrong: the model is checked first (a
refused model stops the run before any cluster starts), then the input is planned (a file that
is not census-shaped stops it before any task runs), then the tasks run, one per piece, each
writing its part into a temporary folder. Only when every task succeeded and the invalid share
is within bounds is the folder renamed to the output, so a failed run leaves no partial output.
The quarantine (invalid rows with their file, row and reason) is written beside the output in
every case, because it is the diagnosis when the share is too high.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from census_pipeline.batch.model import ModelPlugin, ShippedModel, checked_model
from census_pipeline.batch.parts import (
    QUARANTINE_PARTS,
    TEMPORARY_PART,
    UNKNOWN_PREFIX,
    Job,
    run_piece,
    summary_meta,
)
from census_pipeline.batch.sources import Piece, plan
from census_pipeline.errors import PipelineError
from census_pipeline.files import atomic_path, json_bytes

log = logging.getLogger(__name__)

OUTPUT_FORMATS = ("parquet", "csv")
SUMMARY_FILE = "_summary.json"


@dataclass(frozen=True)
class Engine:
    """Where the tasks run: an existing scheduler, or a local cluster of this size."""

    scheduler: str | None = None
    workers: int | None = None  # local cluster; None: one per core
    threads_per_worker: int = 1
    progress: bool = False
    connect_timeout_s: float = 10.0  # how long to try reaching `scheduler`


@dataclass(frozen=True)
class BatchResult:
    output: str
    quarantine: str
    rows: int
    scored: int
    quarantined: int
    seconds: float
    model_version: str
    blessed: bool
    unknown_categories: dict[str, int] = field(default_factory=dict)
    first_invalid: str | None = None  # "file: row N: reason" of the first quarantined row

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def score(
    source: str,
    output: str,
    *,
    model_dir: Path,
    output_format: str = "parquet",
    quarantine: str | None = None,
    engine: Engine = Engine(),
    blocksize: int = 32 * 2**20,
    max_invalid_share: float = 0.01,
    allow_unblessed: bool = False,
    overwrite: bool = False,
    announce: Callable[[str], None] = log.info,
) -> BatchResult:
    """Score every row of `source` into `output`; see the module docstring for the order."""
    if output_format not in OUTPUT_FORMATS:
        raise PipelineError(f"output format {output_format!r}: expected one of {OUTPUT_FORMATS}")
    model = checked_model(Path(model_dir), allow_unblessed)
    source, output = _absolute(source), _absolute(output)
    quarantine = _absolute(quarantine) if quarantine else f"{output}.quarantine.csv"
    _refuse_existing(output, overwrite)
    _, pieces = plan(source, blocksize)
    folder = _temporary_sibling(output)
    job = Job(model.plugin_name, model.metadata.model_version, folder, output_format)
    started = time.perf_counter()
    try:
        summaries = _run(pieces, job, model, engine, announce)
        result = _finish(summaries, job, model, output, quarantine, started)
        _enforce_share(result, summaries, quarantine, max_invalid_share)
        _publish(folder, output, result)
    finally:
        _remove(folder)
    return result


def _absolute(location: str) -> str:
    """Local paths made absolute: workers may run with another current directory."""
    fs, _ = url_to_fs(location)
    if isinstance(fs, LocalFileSystem) and "://" not in location:
        return str(Path(location).expanduser().resolve())
    return location


def _refuse_existing(output: str, overwrite: bool) -> None:
    fs, path = url_to_fs(output)
    if fs.exists(path) and not overwrite:
        raise PipelineError(f"{output}: already exists (pass --overwrite to replace it)")


def _temporary_sibling(output: str) -> str:
    parent, _, name = output.rstrip("/").rpartition("/")
    return f"{parent}/.{name}.tmp-{uuid.uuid4().hex[:12]}"


def _run(
    pieces: list[Piece],
    job: Job,
    model: ShippedModel,
    engine: Engine,
    announce: Callable[[str], None],
) -> pd.DataFrame:
    import dask.dataframe as dd
    from distributed import progress

    with _client(engine, announce) as client:
        client.register_plugin(ModelPlugin(model))
        try:
            summaries = dd.from_map(  # type: ignore[no-untyped-call]
                run_piece, pieces, job=job, meta=summary_meta(), enforce_metadata=False
            )
            futures = client.compute(summaries.to_delayed())
            if engine.progress:
                progress(futures)  # type: ignore[no-untyped-call]
            parts: list[pd.DataFrame] = client.gather(futures)
        finally:
            with contextlib.suppress(Exception):
                client.unregister_worker_plugin(model.plugin_name)
    return pd.concat(parts, ignore_index=True).sort_values("index", ignore_index=True)


@contextlib.contextmanager
def _client(engine: Engine, announce: Callable[[str], None]) -> Iterator[Any]:
    from distributed import Client, LocalCluster

    if engine.scheduler:
        try:
            client = Client(  # type: ignore[no-untyped-call]
                engine.scheduler, timeout=f"{engine.connect_timeout_s}s"
            )
        except (OSError, TimeoutError) as exc:
            raise PipelineError(
                f"cannot reach the Dask scheduler at {engine.scheduler} ({exc})"
            ) from None
        with client:
            announce(
                f"cluster: {engine.scheduler} ({len(client.scheduler_info()['workers'])} workers)"
            )
            yield client
        return
    workers = engine.workers or _cores()
    with (
        LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=workers,
            threads_per_worker=engine.threads_per_worker,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:0",
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        announce(
            f"local cluster: {workers} workers x {engine.threads_per_worker} threads; "
            f"dashboard: {client.dashboard_link}"
        )
        yield client


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _finish(
    summaries: pd.DataFrame,
    job: Job,
    model: ShippedModel,
    output: str,
    quarantine: str,
    started: float,
) -> BatchResult:
    first_invalid = _write_quarantine(summaries, job, quarantine)
    unknown = {
        column.removeprefix(UNKNOWN_PREFIX): int(summaries[column].sum())
        for column in summaries.columns
        if column.startswith(UNKNOWN_PREFIX)
    }
    return BatchResult(
        output=output,
        quarantine=quarantine,
        rows=int(summaries["rows"].sum()),
        scored=int(summaries["scored"].sum()),
        quarantined=int(summaries["quarantined"].sum()),
        seconds=time.perf_counter() - started,
        model_version=model.metadata.model_version,
        blessed=model.blessed,
        unknown_categories={name: count for name, count in unknown.items() if count},
        first_invalid=first_invalid,
    )


def _write_quarantine(summaries: pd.DataFrame, job: Job, quarantine: str) -> str | None:
    """One CSV: the file, the 1-based data row in that file, the reason, the row as read.

    Parts are read one at a time, so memory stays bounded by the largest part. Returns the
    first quarantined row as `file: row N: reason`, for the error line.
    """
    offsets = summaries.groupby("source")["rows"].cumsum() - summaries["rows"]
    fs, folder = url_to_fs(f"{job.folder}/{QUARANTINE_PARTS}")
    fs.invalidate_cache()  # the workers wrote here; an object store's listing cache is stale
    first = True
    first_invalid: str | None = None
    with _open_atomic(quarantine) as handle:
        for index, offset in zip(summaries["index"], offsets, strict=True):
            part = f"{folder}/part-{int(index):05d}.parquet"
            if not fs.exists(part):
                continue
            with fs.open(part, "rb") as source:
                frame = pd.read_parquet(source)
            frame.insert(1, "row", frame.pop("position") + int(offset) + 1)
            frame.to_csv(handle, index=False, header=first)
            if first:
                top = frame.iloc[0]
                first_invalid = f"{top['source']}: row {top['row']}: {top['reason']}"
            first = False
        if first:
            handle.write(b"source,row,reason\n")
    return first_invalid


@contextlib.contextmanager
def _open_atomic(url: str) -> Iterator[Any]:
    fs, path = url_to_fs(url)
    if isinstance(fs, LocalFileSystem):
        with atomic_path(Path(path)) as tmp, tmp.open("wb") as handle:
            yield handle
        return
    with fs.open(path, "wb") as handle:
        yield handle


def _enforce_share(
    result: BatchResult, summaries: pd.DataFrame, quarantine: str, limit: float
) -> None:
    if result.rows == 0:
        raise PipelineError("the input holds no data rows")
    share = result.quarantined / result.rows
    if share <= limit:
        return
    raise PipelineError(
        f"{result.first_invalid} ({result.quarantined} of {result.rows} rows fail the schema, "
        f"{share:.2%} > the allowed {limit:.2%}; nothing written to {result.output}; "
        f"every invalid row listed with its file, row and reason in {quarantine})"
    )


def _publish(folder: str, output: str, result: BatchResult) -> None:
    """Rename the finished folder to the output (atomic on a local disk; on an object store a
    copy, so readers should wait for `_summary.json`, written before the move)."""
    fs, path = url_to_fs(folder)
    if fs.exists(f"{path}/{QUARANTINE_PARTS}"):
        fs.rm(f"{path}/{QUARANTINE_PARTS}", recursive=True)
    # What a worker killed mid-write left behind (its task was rerun elsewhere).
    for leftover in fs.glob(f"{path}/{TEMPORARY_PART}"):
        fs.rm(leftover)
    with fs.open(f"{path}/{SUMMARY_FILE}", "wb") as handle:
        handle.write(json_bytes(dict(result.__dict__)))
    fs.invalidate_cache()  # an object store's cached listing would still hold the removed parts
    _, target = url_to_fs(output)
    if fs.exists(target):
        old = _temporary_sibling(target)
        _move_folder(fs, target, old)
        _move_folder(fs, path, target)
        fs.rm(old, recursive=True)
    else:
        _move_folder(fs, path, target)


def _move_folder(fs: Any, source: str, target: str) -> None:
    """A rename on a local disk; on an object store a copy of every object, then a delete
    (fsspec's recursive `mv` also tries to copy the folder itself, which is no object there)."""
    if isinstance(fs, LocalFileSystem):
        fs.mv(source, target, recursive=True)
        return
    for name in fs.find(source):
        fs.copy(name, target + name[len(source) :])
    fs.rm(source, recursive=True)


def _remove(folder: str) -> None:
    fs, path = url_to_fs(folder)
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(path):
            fs.rm(path, recursive=True)
