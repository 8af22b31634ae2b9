"""Batch scoring on a real Dask cluster: `dask scheduler` and two `dask worker` processes on
127.0.0.1, started by the CLIs distributed installs, shared by this module and stopped by PID.

The reference is always the in-process `Predictor` on the same rows: the cluster's answers must
be bit-for-bit equal whatever the partitioning, the worker count or a worker killed mid-run.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from api.service_samples import bless
from census_samples import real_files
from conftest import free_port
from distributed import Client
from model_samples import tiny_project
from typer.testing import CliRunner

from census_pipeline.batch import Engine, score
from census_pipeline.cli import app
from census_pipeline.errors import PipelineError
from census_pipeline.predict import Predictor
from census_pipeline.schema import COLUMNS, NUMERIC

DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT_S = 120
# Rows the schema refuses, put into the input at known places: (row in the file, field, value).
BROKEN = ((5, "age", "400"), (17, "workclass", "Freelance"), (2500, "hours-per-week", "forty"))


def _start(command: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    """A local S3 (moto's server) that this process and the workers reach through the standard
    AWS variables, as a real deployment would configure them."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    settings = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            for name, value in settings.items():
                patch.setenv(name, value)
            yield "census-batch"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory: pytest.TempPathFactory, s3: str) -> Iterator[str]:
    """The address of a real scheduler with two real workers (one thread each), started with
    the S3 settings in their environment."""
    logs = tmp_path_factory.mktemp("dask")
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    processes = [
        _start(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            logs / "scheduler.log",
        )
    ]
    try:
        for name in ("w1", "w2"):
            command = [DASK, "worker", address, "--name", name, "--nthreads", "1"]
            command += ["--host", "127.0.0.1", "--no-dashboard"]
            processes.append(_start(command, logs / f"{name}.log"))
        with Client(address, timeout=f"{START_TIMEOUT_S}s") as client:  # type: ignore[no-untyped-call]
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield address
    finally:
        for process in reversed(processes):
            _stop(process)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A quickly trained real model with a verdict blessing it."""
    params = tiny_project(tmp_path_factory.mktemp("tiny"))
    bless(params.paths.model_dir)
    return params.paths.model_dir


@pytest.fixture(scope="module")
def census_text() -> str:
    """The real census.csv (course layout), with the BROKEN rows broken."""
    lines = real_files()["census.csv"].decode().splitlines()
    header = [name.strip() for name in lines[0].split(",")]
    for row, field, value in BROKEN:
        values = [v.strip() for v in lines[row].split(",")]
        values[header.index(field)] = value
        lines[row] = ", ".join(values)
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory, census_text: str) -> Path:
    """A folder of two files: the first 3,000 rows (course layout) and the next 3,000 in UCI's
    layout, gzipped."""
    folder = tmp_path_factory.mktemp("inputs")
    lines = census_text.splitlines()
    (folder / "a.csv").write_text("\n".join(lines[:3001]) + "\n")
    uci = "\n".join(lines[3001:6001]) + "\n"
    (folder / "b.csv.gz").write_bytes(gzip.compress(uci.encode()))
    return folder


def _reference(model_dir: Path, text: str, header: bool = True) -> pd.DataFrame:
    """The in-process answer: pandas reads the rows, the Predictor scores the valid ones."""
    from io import StringIO

    frame = pd.read_csv(
        StringIO(text),
        header=0 if header else None,
        names=list(COLUMNS),
        skipinitialspace=True,
        na_values=["?"],
        keep_default_na=False,
        dtype=str,
    )
    broken = [row - 1 for row, _, _ in BROKEN if row - 1 < len(frame)]
    frame = frame.drop(index=broken).reset_index(drop=True)
    frame = frame.astype(dict.fromkeys(NUMERIC, "int64"))
    with Predictor.load(model_dir) as predictor:
        return frame.assign(probability=predictor.predict_frame(frame).probabilities)


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, ["predict", *args], catch_exceptions=False)


def test_cli_through_the_scheduler_matches_the_predictor(
    scheduler: str, model_dir: Path, inputs: Path, census_text: str, tmp_path: Path
) -> None:
    output = tmp_path / "scored"
    result = _invoke(
        "--input", str(inputs), "--output", str(output), "--model-dir", str(model_dir),
        "--scheduler", scheduler, "--blocksize", "64KiB", "--max-invalid-share", "0.01",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"cluster: {scheduler} (2 workers)" in result.output
    assert "scored 5997 rows, quarantined 3, " in result.output
    scored = pd.read_parquet(output)
    lines = census_text.splitlines()
    expected = _reference(model_dir, "\n".join(lines[:6001]) + "\n")
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())
    assert scored["age"].tolist() == expected["age"].astype(int).tolist()
    assert set(scored["model_version"]) == {Predictor.load(model_dir).metadata.model_version}
    quarantine = pd.read_csv(f"{output}.quarantine.csv")
    assert quarantine[["source", "row", "reason"]].values.tolist() == [
        [str(inputs / "a.csv"), 5, "age: 400 outside 17..100"],
        [str(inputs / "a.csv"), 17, "workclass: 'Freelance' not a known value"],
        [str(inputs / "a.csv"), 2500, "hours-per-week: 'forty' not an integer"],
    ]


def test_any_partitioning_gives_the_same_scores(
    scheduler: str, model_dir: Path, census_text: str, tmp_path: Path
) -> None:
    # Parquet in, cut into many pieces or one, on two workers: the same bits as in process.
    table = _reference(model_dir, census_text).drop(columns="probability").iloc[:8000]
    table.to_parquet(tmp_path / "rows.parquet", row_group_size=500)
    outputs = []
    for blocksize in (1, 1 << 30):  # a piece per row group, then one piece
        target = tmp_path / f"out-{blocksize}"
        score(
            str(tmp_path / "rows.parquet"), str(target), model_dir=model_dir,
            engine=Engine(scheduler=scheduler), blocksize=blocksize,
        )  # fmt: skip
        outputs.append(pd.read_parquet(target)["probability"].to_numpy())
    with Predictor.load(model_dir) as predictor:
        expected = predictor.predict_frame(table).probabilities
    assert len(os.listdir(tmp_path / "out-1")) == 16 + 1  # parts and the summary
    assert np.array_equal(outputs[0], expected)
    assert np.array_equal(outputs[1], expected)


def test_a_worker_killed_mid_run_loses_no_rows(
    scheduler: str, model_dir: Path, census_text: str, tmp_path: Path
) -> None:
    source = tmp_path / "census.csv"
    source.write_text(census_text)
    output = tmp_path / "scored"
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["result"] = score(
                str(source), str(output), model_dir=model_dir,
                engine=Engine(scheduler=scheduler), blocksize=1 << 16, max_invalid_share=0.01,
            )  # fmt: skip
        except BaseException as exc:  # reported by the assertions below
            outcome["error"] = exc

    with Client(scheduler) as client:  # type: ignore[no-untyped-call]
        pids: dict[str, int] = client.run(os.getpid)
        runner = threading.Thread(target=run)
        runner.start()
        parts_at_kill = _kill_after_first_parts(tmp_path, pids)
        runner.join(timeout=300)
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)  # the nanny replaced it
    assert "error" not in outcome, outcome.get("error")
    pieces = len(list(output.glob("part-*.parquet")))
    assert 0 < parts_at_kill < pieces  # the kill happened while pieces were left
    scored = pd.read_parquet(output)
    expected = _reference(model_dir, census_text)
    assert outcome["result"].scored == len(expected) == len(scored)
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())


def _kill_after_first_parts(folder: Path, pids: dict[str, int]) -> int:
    """SIGKILL one worker process as soon as the run has written its first few parts."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        parts = list(folder.glob(".scored.tmp-*/part-*.parquet"))
        if len(parts) >= 2:
            os.kill(next(iter(pids.values())), signal.SIGKILL)
            return len(parts)
        time.sleep(0.02)
    pytest.fail("the run wrote no parts within 120 s")


def test_s3_in_and_out(
    scheduler: str, s3: str, model_dir: Path, census_text: str, tmp_path: Path
) -> None:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.mkdir(s3)
    text = "\n".join(census_text.splitlines()[:2001]) + "\n"
    fs.pipe(f"{s3}/in/part-1.csv", text.encode())
    result = _invoke(
        "--input", f"s3://{s3}/in/", "--output", f"s3://{s3}/scored",
        "--model-dir", str(model_dir), "--scheduler", scheduler,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    fs.invalidate_cache()
    assert sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{s3}/scored")) == [
        "_summary.json",
        "part-00000.parquet",
    ]
    with fs.open(f"{s3}/scored/part-00000.parquet", "rb") as handle:
        scored = pd.read_parquet(handle)
    expected = _reference(model_dir, text)
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())
    quarantine = pd.read_csv(io.BytesIO(fs.cat(f"{s3}/scored.quarantine.csv")))
    assert quarantine["row"].tolist() == [5, 17]
    assert not [p for p in fs.ls(s3) if ".tmp-" in p]  # the temporary folder is gone


def test_a_tampered_model_is_refused_before_any_task(
    scheduler: str, model_dir: Path, inputs: Path, tmp_path: Path
) -> None:
    tampered = Path(shutil.copytree(model_dir, tmp_path / "models"))
    (tampered / "model.txt").write_text((tampered / "model.txt").read_text() + "\n")
    with Client(scheduler) as client:  # type: ignore[no-untyped-call]
        # A lambda travels by value (the scheduler cannot import this test module).
        transitions = lambda dask_scheduler: int(dask_scheduler.transition_counter)  # noqa: E731
        before = client.run_on_scheduler(transitions)
        result = _invoke(
            "--input", str(inputs), "--output", str(tmp_path / "out"),
            "--model-dir", str(tampered), "--scheduler", scheduler,
        )  # fmt: skip
        after = client.run_on_scheduler(transitions)
    assert result.exit_code == 1
    assert "model.txt: sha256" in result.output and "does not match" in result.output
    assert before == after  # not one task was even submitted
    assert not (tmp_path / "out").exists()


def test_an_unblessed_model_is_refused_unless_allowed(
    scheduler: str, model_dir: Path, inputs: Path, tmp_path: Path
) -> None:
    unblessed = Path(shutil.copytree(model_dir, tmp_path / "models"))
    (unblessed / "verdict.json").unlink()
    common = ["--input", str(inputs / "a.csv"), "--model-dir", str(unblessed)]
    common += ["--scheduler", scheduler]
    refused = _invoke(*common, "--output", str(tmp_path / "out"))
    assert refused.exit_code == 1
    assert "no verdict.json beside the model" in refused.output
    assert "--allow-unblessed" in refused.output
    allowed = _invoke(*common, "--output", str(tmp_path / "out"), "--allow-unblessed")
    assert allowed.exit_code == 0, allowed.output


def test_a_broken_line_deep_in_a_file_is_one_clear_error(
    scheduler: str, model_dir: Path, census_text: str, tmp_path: Path
) -> None:
    lines = census_text.splitlines()
    lines[4000] += ", extra"
    source = tmp_path / "census.csv"
    source.write_text("\n".join(lines) + "\n")
    result = _invoke(
        "--input", str(source), "--output", str(tmp_path / "out"), "--model-dir", str(model_dir),
        "--scheduler", scheduler, "--blocksize", "64KiB",
    )  # fmt: skip
    assert result.exit_code == 1
    offset = len("\n".join(lines[:4000])) + 1
    assert f"error: {source}: byte {offset}: found 16 comma-separated fields, expected 15" in (
        result.output
    )
    assert sorted(os.listdir(tmp_path)) == ["census.csv"]  # no output, no temporary folder


def test_too_many_invalid_rows_fail_and_keep_the_quarantine(
    scheduler: str, model_dir: Path, inputs: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    result = _invoke(
        "--input", str(inputs / "a.csv"), "--output", str(output), "--model-dir", str(model_dir),
        "--scheduler", scheduler, "--max-invalid-share", "0.0001",
    )  # fmt: skip
    assert result.exit_code == 1
    assert f"error: {inputs / 'a.csv'}: row 5: age: 400 outside 17..100 (3 of 3000 rows" in (
        result.output
    )
    assert not output.exists()
    assert len(pd.read_csv(f"{output}.quarantine.csv")) == 3


def test_an_unreachable_scheduler_is_one_clear_error(
    model_dir: Path, inputs: Path, tmp_path: Path
) -> None:
    address = f"tcp://127.0.0.1:{free_port()}"
    with pytest.raises(PipelineError, match=f"cannot reach the Dask scheduler at {address}"):
        score(
            str(inputs), str(tmp_path / "out"), model_dir=model_dir,
            engine=Engine(scheduler=address, connect_timeout_s=1),
        )  # fmt: skip


def test_a_local_cluster_prints_its_dashboard_and_writes_csv(
    model_dir: Path, inputs: Path, census_text: str, tmp_path: Path
) -> None:
    output = tmp_path / "scored.csv"
    result = _invoke(
        "--input", str(inputs / "a.csv"), "--output", str(output), "--model-dir", str(model_dir),
        "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "local cluster: 1 workers x 1 threads; dashboard: http://127.0.0.1:" in result.output
    parts = sorted(output.glob("part-*.csv"))
    scored = pd.concat(pd.read_csv(p, float_precision="round_trip") for p in parts)
    expected = _reference(model_dir, "\n".join(census_text.splitlines()[:3001]) + "\n")
    # pandas writes the shortest text that reads back as the same float64.
    assert np.array_equal(scored["probability"].to_numpy(), expected["probability"].to_numpy())
    assert (output / "_summary.json").is_file()
