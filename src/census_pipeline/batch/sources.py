"""Input files for batch scoring: which files, cut into which pieces, and how a piece is read.

An input is one file, a folder or a glob, local or any fsspec URL (`s3://...`, credentials from
the environment). The client plans the pieces from cheap reads only (a Parquet footer, a CSV's
first line), so a file that is not census-shaped is refused before any task runs. A piece is
what one task reads: a run of Parquet row groups, or a byte range of a CSV cut at line ends
(a compressed CSV cannot be cut, so it is one piece). Workers read pieces themselves, so the
input must be reachable from every worker under the same URL.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from typing import Any, Literal

import fsspec
import pandas as pd
from fsspec.core import url_to_fs
from fsspec.implementations.local import LocalFileSystem

from census_pipeline.batch.rows import missing_features, normalise_columns
from census_pipeline.errors import PipelineError
from census_pipeline.schema import CATEGORICAL, COLUMNS, FEATURES, NUMERIC

Format = Literal["parquet", "csv"]
PARQUET_SUFFIXES = (".parquet", ".parq", ".pq")
CSV_SUFFIXES = (".csv", ".data", ".test", ".txt")
COMPRESSIONS = (".gz", ".bz2", ".xz", ".zst")
MISSING_MARK = "?"
_PEEK_BYTES = 1 << 16


@dataclass(frozen=True)
class Piece:
    """What one task reads. `names` are the CSV columns when the block carries no header."""

    index: int
    url: str
    format: Format
    row_groups: tuple[int, ...] = ()
    offset: int = 0
    length: int | None = None  # None: the whole (compressed) file
    compression: str | None = None
    header: bool = False  # the block starts with the course layout's header line
    names: tuple[str, ...] = ()
    comment: str | None = None  # UCI's `|` lines
    dictionary: tuple[str, ...] = ()  # Parquet columns to decode as pandas categoricals


def input_files(source: str) -> tuple[Format, list[str]]:
    """The data files an input names, as URLs, sorted; all of one format."""
    fs, _ = url_to_fs(source)
    try:
        paths = fs.expand_path(source) if any(c in source for c in "*?[") else [source]
    except FileNotFoundError:
        paths = []
    files: list[str] = []
    for path in paths:
        stripped = fs._strip_protocol(path)
        if fs.isdir(stripped):
            found = sorted(p for p in fs.find(stripped) if _is_data_file(p))
            files.extend(found)
        elif fs.isfile(stripped):
            files.append(stripped)
    if not files:
        raise PipelineError(
            f"{source}: no input files found (expected a .csv, .csv.gz or .parquet file, "
            "a folder of them, or a glob)"
        )
    urls = [_url(fs, f) for f in sorted(files)]
    formats = {_format_of(url) for url in urls}
    if len(formats) > 1:
        raise PipelineError(f"{source}: mixes CSV and Parquet files; score each kind separately")
    return formats.pop(), urls


def _url(fs: Any, path: str) -> str:
    """A local file stays a plain path (what users recognise in the quarantine); others keep
    their protocol, so workers open the same object."""
    return str(path) if isinstance(fs, LocalFileSystem) else str(fs.unstrip_protocol(path))


def _is_data_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    if name.startswith((".", "_")):
        return False
    base = _without_compression(name.lower())
    return base.endswith(PARQUET_SUFFIXES) or base.endswith(CSV_SUFFIXES)


def _without_compression(name: str) -> str:
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _format_of(url: str) -> Format:
    name = url.rsplit("/", 1)[-1].lower()
    if name.endswith(PARQUET_SUFFIXES):
        return "parquet"
    if _without_compression(name).endswith(CSV_SUFFIXES):
        return "csv"
    raise PipelineError(f"{url}: unknown file type, expected .csv (optionally .gz) or .parquet")


def plan(source: str, blocksize: int) -> tuple[Format, list[Piece]]:
    """Every piece of every input file, in file order, each at most about `blocksize` bytes."""
    fmt, files = input_files(source)
    pieces: list[Piece] = []
    for url in files:
        planned = (
            _parquet_pieces(url, blocksize) if fmt == "parquet" else _csv_pieces(url, blocksize)
        )
        for piece in planned:
            pieces.append(_renumbered(piece, len(pieces)))
    return fmt, pieces


def _renumbered(piece: Piece, index: int) -> Piece:
    return Piece(**{**piece.__dict__, "index": index})


IN_MEMORY_CELL_BYTES = 8


def _parquet_pieces(url: str, blocksize: int) -> list[Piece]:
    import pyarrow.parquet as pq

    try:
        with fsspec.open(url, "rb") as handle:
            parquet = pq.ParquetFile(handle)
            metadata = parquet.metadata
            names = list(parquet.schema_arrow.names)
    except (OSError, ValueError) as exc:  # ArrowInvalid is a ValueError
        raise PipelineError(f"{url}: not a readable Parquet file ({exc})") from exc
    _require_features(url, names)
    # Categories decode straight into pandas categoricals: no Python string per row.
    dictionary = tuple(name for name in names if name.replace("_", "-") in CATEGORICAL)
    # A piece is sized by what it takes in memory, not on disk: dictionary-encoded and
    # compressed, a census row group is a tenth of its decoded size or less. About 8 bytes per
    # cell once decoded (numbers, category codes), so memory per task does not grow with row
    # groups that compress well.
    row_bytes = IN_MEMORY_CELL_BYTES * len(names)
    pieces: list[Piece] = []
    group: list[int] = []
    size = 0
    for i in range(metadata.num_row_groups):
        group.append(i)
        size += metadata.row_group(i).num_rows * row_bytes
        if size >= blocksize:
            pieces.append(Piece(0, url, "parquet", tuple(group), dictionary=dictionary))
            group, size = [], 0
    if group or not pieces:
        pieces.append(Piece(0, url, "parquet", tuple(group), dictionary=dictionary))
    return pieces


def _require_features(url: str, columns: list[str]) -> None:
    normalised = list(normalise_columns(pd.DataFrame(columns=columns)).columns)
    missing = missing_features(normalised)
    if missing:
        raise PipelineError(
            f"{url}: lacks the feature column(s) {', '.join(missing)} "
            f"(expected the census columns {', '.join(FEATURES)})"
        )
    clashes = [name for name in ("probability", "label", "model_version") if name in columns]
    if clashes:
        raise PipelineError(
            f"{url}: already has the output column(s) {', '.join(clashes)} "
            "(score the original rows, or drop these columns first)"
        )


def _csv_pieces(url: str, blocksize: int) -> list[Piece]:
    compression = _compression(url)
    first = _first_line(url, compression)
    layout = _csv_layout(url, first)
    if compression is not None:
        return [Piece(0, url, "csv", compression=compression, **layout)]
    size = _size(url)
    pieces = []
    for offset in range(0, max(size, 1), blocksize):
        piece_layout = layout if offset == 0 else {**layout, "header": False}
        pieces.append(Piece(0, url, "csv", offset=offset, length=blocksize, **piece_layout))
    return pieces


def _compression(url: str) -> str | None:
    name = url.lower()
    for suffix, codec in ((".gz", "gzip"), (".bz2", "bz2"), (".xz", "xz"), (".zst", "zstd")):
        if name.endswith(suffix):
            return codec
    return None


def _size(url: str) -> int:
    fs, path = url_to_fs(url)
    return int(fs.size(path))


def _first_line(url: str, compression: str | None) -> str:
    """The first non-blank line (UCI's `|` comment lines skipped), decoded."""
    try:
        with fsspec.open(url, "rb", compression=compression) as handle:
            head: bytes = handle.read(_PEEK_BYTES)
    except OSError as exc:
        raise PipelineError(f"{url}: cannot read ({exc})") from exc
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not merely a character cut by the peek
            raise PipelineError(
                f"{url}: byte {exc.start} is not valid UTF-8, expected census rows as UTF-8 text"
            ) from exc
        text = head[: exc.start].decode("utf-8")
    for line in text.removeprefix("\ufeff").splitlines():
        if line.strip() and not line.startswith("|"):
            return line
    raise PipelineError(f"{url}: no data rows, expected census rows of {len(COLUMNS)} fields")


def _csv_layout(url: str, line: str) -> dict[str, Any]:
    """The course layout (a header naming the columns) or UCI's (no header, 14 or 15 fields)."""
    fields = [field.strip() for field in line.split(",")]
    if any(field in FEATURES or field.replace("_", "-") in FEATURES for field in fields):
        _require_features(url, fields)
        return {"header": True, "names": tuple(fields)}
    if len(fields) in (len(FEATURES), len(COLUMNS)):
        return {"header": False, "names": COLUMNS[: len(fields)], "comment": "|"}
    hint = " (wrong separator?)" if len(fields) == 1 else ""
    raise PipelineError(
        f"{url}: line 1: found {len(fields)} comma-separated fields{hint}, expected a header "
        f"naming the census columns or {len(FEATURES)}/{len(COLUMNS)} fields (UCI layout)"
    )


def read_piece(piece: Piece) -> pd.DataFrame:
    """The piece's rows as pandas, columns normalised to the hyphenated names."""
    frame = _read_parquet(piece) if piece.format == "parquet" else _read_csv(piece)
    return normalise_columns(frame)


def _read_parquet(piece: Piece) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with fsspec.open(piece.url, "rb") as handle:
        parquet = pq.ParquetFile(handle, read_dictionary=list(piece.dictionary))
        table = parquet.read_row_groups(list(piece.row_groups))
    frame: pd.DataFrame = table.to_pandas()
    return frame


def _read_csv(piece: Piece) -> pd.DataFrame:
    start, data = _csv_bytes(piece)
    if not data.strip():
        return pd.DataFrame({name: pd.Series(dtype="string") for name in piece.names})
    frame = _parse_csv(data, start, piece, numbers_as_text=False)
    typed = [name for name in NUMERIC if name in frame.columns]
    if all(pd.api.types.is_integer_dtype(frame[name].dtype) for name in typed):
        return frame
    # A word or a decimal in a number column: re-read it as text so each row is judged alone
    # (rare, so the fast typed parse stays the common case).
    return _parse_csv(data, start, piece, numbers_as_text=True)


def _csv_bytes(piece: Piece) -> tuple[int, bytes]:
    """The piece's whole lines and the file offset of the first: a line belongs to the piece
    its first byte falls in (a piece after the first starts after the line end it lands in)."""
    with fsspec.open(piece.url, "rb", compression=piece.compression) as handle:
        if piece.length is None:
            return 0, handle.read()
        start = _line_start(handle, piece.offset)
        end = _line_start(handle, piece.offset + piece.length)
        handle.seek(start)
        return start, handle.read(end - start)


def _line_start(handle: Any, offset: int) -> int:
    """The first line start at or after `offset` (the file's end if none)."""
    if offset == 0:
        return 0
    position = offset - 1
    handle.seek(position)
    while chunk := handle.read(_PEEK_BYTES):
        found: int = chunk.find(b"\n")
        if found >= 0:
            return position + found + 1
        position += len(chunk)
    return position


def _parse_csv(data: bytes, start: int, piece: Piece, *, numbers_as_text: bool) -> pd.DataFrame:
    text_columns = [name for name in piece.names if name not in NUMERIC or numbers_as_text]
    try:
        return pd.read_csv(
            io.BytesIO(data),
            header=0 if piece.header else None,
            names=list(piece.names),
            dtype={name: "category" if name in CATEGORICAL else "string" for name in text_columns},
            skipinitialspace=True,
            na_values=[MISSING_MARK],
            keep_default_na=False,
            comment=piece.comment,
            quoting=csv.QUOTE_NONE,
            engine="c",
            low_memory=False,  # one dtype per column for the whole piece, not per chunk
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise PipelineError(f"{piece.url}: {_parse_problem(data, start, piece, exc)}") from None


def _parse_problem(data: bytes, start: int, piece: Piece, exc: Exception) -> str:
    """Where a block failed to parse, as a byte offset in the file (pandas' line numbers count
    from the start of the block, which would mislead)."""
    position = start
    for line in data.split(b"\n"):
        text = line.decode("utf-8", "replace").rstrip("\r")
        fields = text.count(",") + 1
        comment = piece.comment is not None and text.startswith(piece.comment)
        if text.strip() and not comment and fields != len(piece.names):
            return (
                f"byte {position}: found {fields} comma-separated fields, expected "
                f"{len(piece.names)}: {text[:60]!r}"
            )
        position += len(line) + 1
    return f"not a readable census CSV ({exc})"
