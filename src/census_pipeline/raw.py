"""Reading the raw census files exactly as ingest stored them.

Validate and clean must see the same rows with the same line numbers, so both parse through
here. Structural faults (bytes that are not UTF-8, a wrong header, a line with the wrong number
of fields) make the whole file unreadable and raise; value faults are left for the schema to
judge row by row.
"""

from __future__ import annotations

import csv
import io
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


@dataclass(frozen=True)
class RawEntry:
    """One split's record in the manifest: which file, in which layout, verified how."""

    file: str
    layout: Layout
    sha256: str
    source: str
    origin: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class RawTable:
    """A parsed raw file: text values (stripped, `?` as missing) and each row's line in the file."""

    path: Path
    frame: pd.DataFrame
    lines: np.ndarray[Any, np.dtype[np.int64]]


def read_manifest(params: Params) -> dict[str, RawEntry]:
    """The manifest written by ingest, checked for shape so a hand-edited one fails clearly."""
    path = params.paths.raw_manifest
    payload = read_json(path)
    entries: dict[str, RawEntry] = {}
    for split in SPLITS:
        record = payload.get(split) if isinstance(payload, dict) else None
        if not isinstance(record, dict):
            raise PipelineError(f"{path}: no '{split}' entry (run `census-pipeline ingest`)")
        try:
            entry = RawEntry(**{key: str(record[key]) for key in RawEntry.__dataclass_fields__})  # type: ignore[arg-type]
        except KeyError as exc:
            raise PipelineError(f"{path}: '{split}' entry lacks the field {exc}") from exc
        if entry.layout not in LAYOUTS:
            raise PipelineError(
                f"{path}: '{split}' layout is {entry.layout!r}, expected one of {LAYOUTS}"
            )
        entries[split] = entry
    return entries


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
    """Parse one raw file of either layout into text columns named `schema.COLUMNS`."""
    text = _decode(path)
    lines = text.split("\n")
    first = _first_data_line(path, lines, layout)
    kept = _data_line_numbers(path, lines, first)
    # Windows line ends would otherwise stick to the label.
    body = "\n".join(lines[i].rstrip("\r") for i in kept)
    frame = pd.read_csv(
        io.StringIO(body),
        header=None,
        names=list(COLUMNS),
        # pandas' string dtype: its NA is unambiguous and pandera checks the dtype, not each value.
        dtype="string",
        # The C parser drops the space UCI puts after each comma and reads `?` as missing;
        # anything else (a trailing space, an empty field) stays for the schema to refuse.
        skipinitialspace=True,
        na_values=[MISSING_MARK],
        keep_default_na=False,
        quoting=csv.QUOTE_NONE,
        engine="c",
    )
    if split == "test":
        frame[LABEL] = frame[LABEL].str.removesuffix(".")
    return RawTable(path=path, frame=frame, lines=np.asarray(kept, dtype=np.int64) + 1)


def _decode(path: Path) -> str:
    data = path.read_bytes()
    if not data.strip():
        raise PipelineError(f"{path}: file is empty, expected census rows of {_FIELDS} fields")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        raise PipelineError(
            f"{path}: line {line}: byte 0x{bad} is not valid UTF-8, expected UTF-8 text"
        ) from exc


def _first_data_line(path: Path, lines: list[str], layout: Layout) -> int:
    """Index of the first data line: after the course header, or after UCI's `|` comment lines."""
    index = 0
    while index < len(lines) and (
        not lines[index].strip() or (layout == UCI and lines[index].startswith("|"))
    ):
        index += 1
    if layout == COURSE_CSV and index < len(lines):
        _check_header(path, lines[index], index + 1)
        index += 1
    return index


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
        if not line.strip():
            continue
        fields = line.count(",") + 1
        if fields != _FIELDS:
            raise PipelineError(_field_count_message(path, index, fields, len(lines)))
        kept.append(index)
    if not kept:
        raise PipelineError(f"{path}: no data rows, expected census rows of {_FIELDS} fields")
    return kept


def _field_count_message(path: Path, index: int, fields: int, total: int) -> str:
    hint = ""
    if fields == 1:
        hint = " (wrong separator?)"
    elif fields < _FIELDS and index >= total - 2:
        hint = " (truncated last line?)"
    return (
        f"{path}: line {index + 1}: found {fields} comma-separated fields, expected {_FIELDS}{hint}"
    )
