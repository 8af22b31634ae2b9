"""Reading the raw census files exactly as ingest stored them.

Validate and clean must see the same rows with the same line numbers, so both parse through
here. Structural faults (bytes that are not UTF-8, a wrong header, a line with the wrong number
of fields) make the whole file unreadable and raise; value faults are left for the schema to
judge row by row.
"""

from __future__ import annotations

import codecs
import gzip
import io
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import read_json, sha256_file
from census_pipeline.schema import COLUMNS, LABEL

Layout = Literal["course-csv", "uci"]
COURSE_CSV: Final = "course-csv"
UCI: Final = "uci"
LAYOUTS: Final = (COURSE_CSV, UCI)
SPLITS: Final = ("train", "test")
MISSING_MARK: Final = "?"
_FIELDS: Final = len(COLUMNS)
GZIP_MAGIC: Final = b"\x1f\x8b"
# Every raw column is text until validated: Arrow-backed, so vectorised checks stay fast.
TEXT_DTYPE: Final = pd.StringDtype("pyarrow")


USER_SUPPLIED: Final = "user-supplied"


@dataclass(frozen=True)
class FileFormat:
    """How a census file is written, as detected from its bytes (all of it goes in the manifest).

    `layout` decides where the rows start (`course-csv`: a header row; `uci`: no header, leading
    `|` comment lines); the rest are the variations a re-saved copy picks up on the way.
    """

    layout: Layout
    compression: Literal["none", "gzip"] = "none"
    bom: bool = False
    line_ending: Literal["LF", "CRLF"] = "LF"
    separator: Literal["comma-space", "comma"] = "comma-space"
    label_suffix: Literal["", "."] = ""

    def describe(self) -> str:
        """One phrase for logs and the card, e.g. `course-csv, comma, CRLF, UTF-8 BOM, gzip`."""
        parts: list[str] = [self.layout, self.separator, self.line_ending]
        if self.label_suffix:
            parts.append("labels end in '.'")
        if self.bom:
            parts.append("UTF-8 BOM")
        if self.compression != "none":
            parts.append(self.compression)
        return ", ".join(parts)


@dataclass(frozen=True)
class RawEntry:
    """One split's record in the manifest: which file, how it is written, and where it came from.

    `source` is the kind of source (`local-folder`, `local-file`, `uci`, `pypi-wheel`) and
    `origin` the file's name as supplied or the download URL: never a local absolute path, so the
    manifest (hashed in dvc.lock) is the same on every machine for the same data. `release`
    names a known publication whose digest matched, or says `user-supplied`.
    """

    file: str
    layout: Layout
    sha256: str
    source: str
    origin: str
    release: str = USER_SUPPLIED
    rows: int | None = None
    compression: str = "none"
    bom: bool = False
    line_ending: str = "LF"
    separator: str = "comma-space"
    label_suffix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def known_release(self) -> bool:
        return self.release != USER_SUPPLIED


@dataclass(frozen=True)
class RawTable:
    """A parsed raw file: text values (stripped, `?` as missing) and each row's line in the file."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray[Any, np.dtype[np.int64]]
    format: FileFormat


_REQUIRED: Final = ("file", "layout", "sha256", "source", "origin")
_TYPES: Final[dict[str, type]] = {
    "release": str, "rows": int, "compression": str, "bom": bool, "line_ending": str,
    "separator": str, "label_suffix": str,
}  # fmt: skip


def read_manifest(params: Params) -> dict[str, RawEntry]:
    """The manifest written by ingest, checked for shape so a hand-edited one fails clearly."""
    path = params.paths.raw_manifest
    payload = read_json(path)
    entries: dict[str, RawEntry] = {}
    for split in SPLITS:
        record = payload.get(split) if isinstance(payload, dict) else None
        if not isinstance(record, dict):
            raise PipelineError(f"{path}: no '{split}' entry (run `census-pipeline ingest`)")
        entry = _entry(path, split, record)
        if entry.layout not in LAYOUTS:
            raise PipelineError(
                f"{path}: '{split}' layout is {entry.layout!r}, expected one of {LAYOUTS}"
            )
        entries[split] = entry
    return entries


def _entry(path: Path, split: str, record: dict[str, Any]) -> RawEntry:
    missing = [key for key in _REQUIRED if key not in record]
    if missing:
        raise PipelineError(f"{path}: '{split}' entry lacks the field '{missing[0]}'")
    fields: dict[str, Any] = {key: str(record[key]) for key in _REQUIRED}
    for key, kind in _TYPES.items():
        value = record.get(key)
        if value is not None and not isinstance(value, kind):
            raise PipelineError(f"{path}: '{split}' {key} is {value!r}, expected {kind.__name__}")
        if value is not None:
            fields[key] = value
    return RawEntry(**fields)


def verified_raw_path(params: Params, entry: RawEntry) -> Path:
    """The raw file of a manifest entry, refused if its bytes changed since ingest."""
    path = params.paths.raw_dir / entry.file
    if not path.is_file():
        raise PipelineError(f"{path}: listed in the manifest but missing (run ingest again)")
    actual = sha256_file(path)
    if actual != entry.sha256:
        raise PipelineError(
            f"{path}: sha256 is {actual}, expected {entry.sha256} as recorded by ingest "
            "(the raw file changed; run ingest again)"
        )
    return path


def read_raw(path: Path, layout: Layout, split: str) -> RawTable:
    """Parse a raw file ingest stored, refusing it if its layout is not the one recorded.

    `split` is kept for the callers' sake: every layout is read the same way for both splits.
    """
    table = read_census_file(path)
    if table.format.layout != layout:
        raise PipelineError(
            f"{path}: reads as {table.format.layout} layout, but the manifest records {layout} "
            "(run ingest again)"
        )
    return table


def read_census_file(path: Path) -> RawTable:
    """Parse a census file of any accepted layout (detected) into text columns `schema.COLUMNS`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: file not found") from exc
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror})") from exc
    return parse_census(data, path)


def parse_census(data: bytes, path: Path) -> RawTable:
    """Parse census bytes; `path` only names the file in messages (and in the result).

    Accepted: the course layout (header row) or UCI's (no header, `|` comment lines first),
    `, ` or `,` between fields, LF or CRLF, an optional UTF-8 byte order mark, gzip compression,
    labels with or without UCI's trailing `.`. Structural faults raise with the line (and field,
    where there is one); value faults are left for the schema to judge row by row.
    """
    data, compression = _decompress(data, path)
    bom = data.startswith(codecs.BOM_UTF8)
    if bom:
        data = data[len(codecs.BOM_UTF8) :]
    text = _decode(data, path)
    head = text[:_HEAD_CHARS].split("\n")
    layout, first = _first_data_line(path, head)
    fast = _fast_read(text, data, head, first)
    if fast is not None:
        frame, lines_array = fast
        sample = next(line for line in head[first:] if line.strip())
    else:
        # The careful path: line by line, to name the exact line and field of a fault (and to
        # number rows right when blank lines sit between them).
        lines = text.split("\n")
        kept = _data_line_numbers(path, lines, first)
        sample = lines[kept[0]]
        frame = _read_fields(_body(text, lines, kept))
        lines_array = np.asarray(kept, dtype=np.int64) + 1
    dotted = frame[LABEL].str.endswith(".").fillna(False).astype(bool)
    if dotted.any():
        frame[LABEL] = frame[LABEL].str.removesuffix(".")
    file_format = FileFormat(
        layout=layout,
        compression=compression,
        bom=bom,
        line_ending="CRLF" if sample.endswith("\r") else "LF",
        separator="comma-space" if ", " in sample else "comma",
        label_suffix="." if dotted.any() else "",
    )
    return RawTable(path=path, frame=frame, lines=lines_array, format=file_format)


_HEAD_CHARS: Final = 1 << 20
_GAP: Final = re.compile(rb"\n[ \t\r]*\n")


def _fast_read(
    text: str, data: bytes, head: list[str], first: int
) -> tuple[pd.DataFrame, np.ndarray[Any, np.dtype[np.int64]]] | None:
    """The rows straight from the bytes when the file is regular, else None.

    Regular: the data lines are one unbroken run after the header (no blank line between rows)
    and every line has the 15 fields, which Arrow's reader checks as it goes. Row i is then line
    `first + i + 1`. Anything else takes the careful path, which explains the fault.
    """
    if first >= len(head) - 1 or len(text) != len(data):
        return None  # a header beyond the head, or non-ASCII text: offsets need the careful path
    offset = sum(len(line) + 1 for line in head[:first])
    body = data[offset:].rstrip()
    if not body or body[:1].isspace() or _GAP.search(body):
        return None
    while b", " in body:
        body = body.replace(b", ", b",")
    try:
        frame = _read_fields(body)
    except ValueError:  # pyarrow.ArrowInvalid: a line with another number of fields
        return None
    lines = np.arange(first + 1, first + 1 + len(frame), dtype=np.int64)
    return frame, lines


def _body(text: str, lines: list[str], kept: list[int]) -> bytes:
    """The data lines alone, LF-ended, with no space after a comma: what the reader parses.

    When the data lines are one unbroken run (the usual case) the text is sliced rather than
    rebuilt line by line, which matters for files of millions of rows.
    """
    if kept[-1] - kept[0] + 1 == len(kept):
        start = sum(len(line) + 1 for line in lines[: kept[0]])
        body = text[start:].rstrip()
    else:
        body = "\n".join(lines[i] for i in kept)
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "")
    while ", " in body:
        # The space after a comma is layout, not data (UCI writes one, some copies do not).
        body = body.replace(", ", ",")
    return body.encode("utf-8")


def _read_fields(body: bytes) -> pd.DataFrame:
    """Text columns in `schema.COLUMNS` order, `?` as missing, backed by Arrow strings.

    pyarrow's reader and Arrow-backed strings keep a million-row file to seconds (pandas' own
    reader into Python strings is several times slower, and every check after it too). Quotes
    are not special in census files; an empty field stays "" for the schema to refuse.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        io.BytesIO(body),
        read_options=pacsv.ReadOptions(column_names=list(COLUMNS), block_size=1 << 24),
        parse_options=pacsv.ParseOptions(quote_char=False),
        convert_options=pacsv.ConvertOptions(
            column_types={name: pa.large_string() for name in COLUMNS},
            null_values=[MISSING_MARK],
            strings_can_be_null=True,
        ),
    )
    frame: pd.DataFrame = table.to_pandas(types_mapper={pa.large_string(): TEXT_DTYPE}.get)
    return frame


def _decompress(data: bytes, path: Path) -> tuple[bytes, Literal["none", "gzip"]]:
    """Gzip is recognised by its magic bytes, not the file name, so a renamed copy still reads."""
    if not data.startswith(GZIP_MAGIC):
        return data, "none"
    try:
        return gzip.decompress(data), "gzip"
    except (OSError, EOFError, zlib.error) as exc:
        raise PipelineError(
            f"{path}: gzip data is damaged or truncated ({exc}), expected a complete .gz file"
        ) from exc


def _decode(data: bytes, path: Path) -> str:
    if not data.strip():
        raise PipelineError(
            f"{path}: line 1: file is empty, expected a header row or census rows of "
            f"{_FIELDS} fields"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        line = data.count(b"\n", 0, exc.start) + 1
        field = COLUMNS[min(data.count(b",", line_start, exc.start), _FIELDS - 1)]
        bad = data[exc.start : exc.start + 1].hex()
        raise PipelineError(
            f"{path}: line {line}: field {field}: byte 0x{bad} is not valid UTF-8, "
            "expected UTF-8 text"
        ) from exc


def _first_data_line(path: Path, lines: list[str]) -> tuple[Layout, int]:
    """The layout and the index of the first data line.

    A first line whose first field is `age` is the course's header (checked in full); leading
    lines starting with `|` are UCI's comments (adult.test's `|1x3 Cross validator`); otherwise
    the file is UCI's headerless layout.
    """
    index = 0
    layout: Layout = COURSE_CSV
    while index < len(lines) and (not lines[index].strip() or lines[index].startswith("|")):
        layout = UCI if lines[index].startswith("|") else layout
        index += 1
    if index < len(lines) and lines[index].lstrip().lower().startswith("age"):
        if layout == UCI:
            raise PipelineError(f"{path}: line {index + 1}: a header row after UCI comment lines")
        _check_header(path, lines[index], index + 1)
        return COURSE_CSV, index + 1
    return UCI, index


def _check_header(path: Path, line: str, number: int) -> None:
    names = [name.strip() for name in line.rstrip("\r").split(",")]
    if names == list(COLUMNS):
        return
    where = f"{path}: line {number} (header)"
    if len(names) == 1:
        raise PipelineError(
            f"{where}: found one field {names[0][:40]!r}..., expected {_FIELDS} comma-separated "
            "column names (wrong separator?)"
        )
    missing = [name for name in COLUMNS if name not in names]
    unknown = [name for name in names if name not in COLUMNS]
    if missing or unknown:
        raise PipelineError(
            f"{where}: missing column(s) {', '.join(missing) or '-'}; "
            f"unexpected column(s) {', '.join(unknown) or '-'}; expected {', '.join(COLUMNS)}"
        )
    raise PipelineError(f"{where}: columns out of order, expected {', '.join(COLUMNS)}")


def _data_line_numbers(path: Path, lines: list[str], first: int) -> list[int]:
    """Indices of the non-blank data lines, each checked to hold exactly the 15 fields."""
    kept: list[int] = []
    for index in range(first, len(lines)):
        line = lines[index]
        fields = line.count(",") + 1
        if fields != _FIELDS:
            if not line.strip():
                continue
            raise PipelineError(_field_count_message(path, index, fields, len(lines)))
        kept.append(index)
    if not kept:
        after = " after the header" if first else ""
        raise PipelineError(
            f"{path}: line {first + 1}: no data rows{after}, expected census rows of "
            f"{_FIELDS} fields"
        )
    return kept


def _field_count_message(path: Path, index: int, fields: int, total: int) -> str:
    where = f"{path}: line {index + 1}"
    if fields == 1:
        return f"{where}: found 1 field, expected {_FIELDS} comma-separated (wrong separator?)"
    if fields < _FIELDS:
        hint = " (truncated last line?)" if index >= total - 2 else ""
        return (
            f"{where}: field {COLUMNS[fields]}: missing, found {fields} comma-separated fields, "
            f"expected {_FIELDS}{hint}"
        )
    return f"{where}: found {fields} comma-separated fields, expected {_FIELDS} (one after salary)"
