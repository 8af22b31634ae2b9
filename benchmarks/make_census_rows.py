"""Write N census-shaped rows, resampled with a seed from the real rows, as CSV and/or Parquet.

Scale benchmarks (ingest of a million rows, batch scoring of ten million) need files far larger
than the 32,561 real training rows, yet shaped exactly like them: same columns, same category
spellings, same missing values, the same joint distribution. So every generated row is a real
row drawn with replacement (numpy's seeded generator: the same seed gives the same bytes). Only
`fnlgt`, the survey's sampling weight, is jittered by up to +-10% (`--exact` turns this off), so
that the generated rows are nearly all distinct: without it a million rows would hold only the
32k real ones, and clean's duplicate removal would make any downstream timing meaningless.

Outputs:
- `--csv PATH`: the course layout (header row, `, ` between fields, `?` for missing, LF line
  ends); gzip-compressed when PATH ends in `.gz`.
- `--parquet PATH`: the raw record columns under the CSV header's names: numbers as int64,
  categories and the label as strings, missing as null.

Rows are produced in chunks (`--chunk-rows`), so memory stays flat for ten million rows.

    python benchmarks/make_census_rows.py --rows 1000000 --csv /tmp/census_1m.csv
    python benchmarks/make_census_rows.py --rows 10000000 --parquet /tmp/census_10m.parquet \
        --source ../shared/data/census.csv --seed 7

The source is `--source` (any layout ingest reads: course CSV or UCI, LF or CRLF, BOM, gzip),
else `$CENSUS_DATA_DIR/census.csv` (or `adult.data`), else this project's ingested training
file (`data/raw`, after `census-pipeline ingest`).
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from census_pipeline.config import load_params
from census_pipeline.raw import MISSING_MARK, read_census_file, read_manifest
from census_pipeline.schema import COLUMNS, NUMERIC_RANGES

REPO_ROOT = Path(__file__).resolve().parents[1]
SEPARATOR = ", "
JITTER = 0.10
DEFAULT_CHUNK = 500_000
ROW_GROUP_ROWS = 100_000


def default_source() -> Path:
    """`$CENSUS_DATA_DIR`'s training file, else the project's ingested one."""
    if folder := os.environ.get("CENSUS_DATA_DIR"):
        for name in ("census.csv", "adult.data", "census.csv.gz", "adult.data.gz"):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    params = load_params(REPO_ROOT / "params.yaml")
    try:
        entry = read_manifest(params)["train"]
    except Exception as exc:  # no manifest yet: say what to do instead
        raise SystemExit(
            "no source: give --source, set CENSUS_DATA_DIR, or run `census-pipeline ingest`"
        ) from exc
    return params.paths.raw_dir / entry.file


def real_rows(source: Path) -> pd.DataFrame:
    """The source's rows as text columns (`None` for missing), in `schema.COLUMNS` order."""
    return read_census_file(source).frame


def sample(base: pd.DataFrame, rows: int, seed: int, exact: bool, chunk: int) -> Iterator[Any]:
    """Chunks of resampled rows (text frames), `rows` in total, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    fnlgt = pd.to_numeric(base["fnlgt"]).to_numpy(dtype="float64")
    low, high = NUMERIC_RANGES["fnlgt"]
    done = 0
    while done < rows:
        size = min(chunk, rows - done)
        index = rng.integers(0, len(base), size)
        frame = base.iloc[index].reset_index(drop=True)
        if not exact:
            factor = rng.uniform(1 - JITTER, 1 + JITTER, size)
            weights = np.clip(np.rint(fnlgt[index] * factor), low, high).astype("int64")
            frame["fnlgt"] = pd.array(weights.astype(str), dtype="string")
        done += size
        yield frame


def csv_text(frame: pd.DataFrame) -> str:
    """Course-layout lines for a text frame, `?` for missing, each ending in LF."""
    text = frame[COLUMNS[0]].fillna(MISSING_MARK).astype(str)
    for name in COLUMNS[1:]:
        text = text + SEPARATOR + frame[name].fillna(MISSING_MARK).astype(str)
    return "\n".join(text.tolist()) + "\n"


def arrow_table(frame: pd.DataFrame) -> pa.Table:
    """Raw record columns: numbers as int64, categories and label as strings, missing null."""
    arrays = {}
    for name in COLUMNS:
        column = frame[name]
        if name in NUMERIC_RANGES:
            arrays[name] = pa.array(pd.to_numeric(column).to_numpy(dtype="int64"))
        else:
            arrays[name] = pa.Array.from_pandas(column, type=pa.string())
    return pa.table(arrays)


def _open_csv(path: Path, stack: ExitStack) -> IO[str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        # mtime=0: the same rows give the same bytes, whatever the day.
        raw = stack.enter_context(gzip.GzipFile(path, "wb", compresslevel=6, mtime=0))
        return stack.enter_context(io.TextIOWrapper(raw, encoding="utf-8", newline=""))
    return stack.enter_context(path.open("w", encoding="utf-8", newline=""))


def generate(
    source: Path,
    rows: int,
    seed: int,
    csv_path: Path | None,
    parquet_path: Path | None,
    exact: bool = False,
    chunk: int = DEFAULT_CHUNK,
) -> int:
    """Write the outputs; returns the number of rows written to each."""
    base = real_rows(source)
    with ExitStack() as stack:
        csv_out = _open_csv(csv_path, stack) if csv_path else None
        if csv_out is not None:
            csv_out.write(SEPARATOR.join(COLUMNS) + "\n")
        writer: pq.ParquetWriter | None = None
        for frame in sample(base, rows, seed, exact, chunk):
            if csv_out is not None:
                csv_out.write(csv_text(frame))
            if parquet_path is not None:
                table = arrow_table(frame)
                if writer is None:
                    parquet_path.parent.mkdir(parents=True, exist_ok=True)
                    writer = stack.enter_context(pq.ParquetWriter(parquet_path, table.schema))
                # Row groups of 100k rows: batch scoring reads whole row groups, so smaller
                # groups let it cut even a 1M-row file into pieces for several workers.
                writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, required=True, help="How many rows to write.")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--csv", type=Path, help="Course-layout CSV (.gz: gzip-compressed).")
    parser.add_argument("--parquet", type=Path, help="Parquet of raw record columns.")
    parser.add_argument("--source", type=Path, help="Real rows to resample (any ingest layout).")
    parser.add_argument("--exact", action="store_true", help="Do not jitter fnlgt.")
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK)
    args = parser.parse_args(argv)
    if args.csv is None and args.parquet is None:
        parser.error("give --csv and/or --parquet")
    if args.rows < 1 or args.chunk_rows < 1:
        parser.error("--rows and --chunk-rows must be positive")
    source = args.source or default_source()
    started = time.perf_counter()
    generate(source, args.rows, args.seed, args.csv, args.parquet, args.exact, args.chunk_rows)
    outputs = ", ".join(str(p) for p in (args.csv, args.parquet) if p is not None)
    seconds = time.perf_counter() - started
    print(f"{args.rows} rows resampled from {source.name} (seed {args.seed}) -> {outputs}")
    print(f"{seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
