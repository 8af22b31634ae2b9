"""End to end: a real uvicorn process on a free port, checked by scripts/live_check.py.

Also checks the refusal as an operator sees it: a server pointed at no model exits non-zero
with a one-line reason in its log instead of serving.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from census_pipeline.config import Params

REPO = Path(__file__).resolve().parents[2]
LIVE_CHECK = REPO / "scripts" / "live_check.py"
START_TIMEOUT_S = 60.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(model_dir: Path, card: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    env["CENSUS_API_MODEL_DIR"] = str(model_dir)
    env["CENSUS_API_MODEL_CARD_PATH"] = str(card)
    return env


def _start(model_dir: Path, card: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    # The command the Procfile and the container run, with one worker.
    command = [
        sys.executable, "-m", "uvicorn", "census_pipeline.api.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip
    with log.open("wb") as sink:
        return subprocess.Popen(command, env=_server_env(model_dir, card), stdout=sink, stderr=sink)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/ready", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"server not ready after {START_TIMEOUT_S}s:\n{log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture
def server(carded_project: Params, tmp_path: Path) -> Iterator[str]:
    """The service on the session pipeline's blessed model and card (read-only)."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "server.log"
    paths = carded_project.paths
    process = _start(paths.model_dir, paths.model_card_html, port, log)
    try:
        _wait_ready(process, url, log)
        yield url
    finally:
        _stop(process)


@pytest.mark.slow
def test_live_check_passes_against_a_real_server(server: str) -> None:
    result = subprocess.run(
        [sys.executable, str(LIVE_CHECK), "--url", server],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "GET /: status 200" in result.stdout
    assert "POST /predict: status 200" in result.stdout
    assert '"label":' in result.stdout and '"probability":' in result.stdout
    assert "live check passed" in result.stdout


@pytest.mark.slow
def test_live_check_fails_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    result = subprocess.run(
        [sys.executable, str(LIVE_CHECK), "--url", url, "--timeout", "2"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "could not reach" in result.stderr


@pytest.mark.slow
def test_server_without_a_model_exits_with_a_clear_reason(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    missing = tmp_path / "no-models-here"
    process = _start(missing, missing / "model_card.html", _free_port(), log)
    try:
        code = process.wait(timeout=START_TIMEOUT_S)
    finally:
        if process.poll() is None:
            _stop(process)
    output = log.read_text()
    assert code != 0
    assert "refusing to start" in output
    assert "no-models-here" in output and "CENSUS_API_MODEL_DIR" in output


@pytest.mark.slow
def test_cli_serve_refuses_before_starting_workers(carded_project: Params, tmp_path: Path) -> None:
    # uvicorn's multi-worker supervisor exits 0 when its workers fail to start; the CLI checks
    # the model first so a refusal is exit 1 with the reason, whatever the worker count.
    folder = tmp_path / "models"
    folder.mkdir()
    for source in (carded_project.paths.model_file, carded_project.paths.model_metadata):
        folder.joinpath(source.name).write_bytes(source.read_bytes())
    command = [
        str(Path(sys.executable).with_name("census-pipeline")), "serve", "--workers", "2",
        "--port", str(_free_port()),
    ]  # fmt: skip
    env = _server_env(folder, folder / "model_card.html")
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
    )
    assert result.returncode == 1
    assert "verdict.json" in result.stderr and "census-pipeline gate" in result.stderr
