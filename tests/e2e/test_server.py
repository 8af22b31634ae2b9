"""End to end: a real server process on a free port, checked by scripts/live_check.py.

The server is started with `census-pipeline serve`, the command the Procfile and the container
run. Also checks refusals as an operator sees them: a bad model makes the command exit 1 with a
one-line reason whatever the worker count, and uvicorn's factory on its own still refuses (exit
status 3, its own behaviour; docs/api.md).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import free_port
from live_server import Server, serving

from census_pipeline.config import Params

REPO = Path(__file__).resolve().parents[2]
LIVE_CHECK = REPO / "scripts" / "live_check.py"
CLI = str(Path(sys.executable).with_name("census-pipeline"))
START_TIMEOUT_S = 60.0


def _server_env(model_dir: Path, card: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    env["CENSUS_API_MODEL_DIR"] = str(model_dir)
    env["CENSUS_API_MODEL_CARD_PATH"] = str(card)
    return env


def _serve_command(port: int, workers: int = 1) -> list[str]:
    # What the Procfile and the container run (they bind 0.0.0.0 and take PORT, WEB_CONCURRENCY).
    return [CLI, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]


def _stop(process: subprocess.Popen[bytes]) -> int:
    process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


@pytest.fixture
def started(carded_project: Params, tmp_path: Path) -> Iterator[Server]:
    """The service on the session pipeline's blessed model and card (read-only)."""
    with serving(carded_project, tmp_path) as running:
        yield running


@pytest.mark.slow
def test_live_check_passes_against_a_real_server(started: Server) -> None:
    result = subprocess.run(
        [sys.executable, str(LIVE_CHECK), "--url", started.url],
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
def test_the_services_log_lines_share_uvicorns_layout(started: Server) -> None:
    lines = started.log.read_text(encoding="utf-8").splitlines()
    ours = [line for line in lines if "census_pipeline.api:" in line]
    assert any("serving model" in line for line in ours), lines
    for line in ours:
        assert line.startswith("INFO:     census_pipeline.api: ") or line.startswith(
            "WARNING:  census_pipeline.api: "
        ), line
    assert any(line.startswith("INFO:     Started server process") for line in lines), lines


@pytest.mark.slow
def test_live_check_fails_when_nothing_answers() -> None:
    url = f"http://127.0.0.1:{free_port()}"
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
def test_bare_uvicorn_without_a_model_exits_with_a_clear_reason(tmp_path: Path) -> None:
    # The app factory alone (no pre-check): uvicorn's own refusal, documented in docs/api.md.
    missing = tmp_path / "no-models-here"
    command = [
        sys.executable, "-m", "uvicorn", "census_pipeline.api.main:create_app", "--factory",
        "--host", "127.0.0.1", "--port", str(free_port()), "--workers", "1",
    ]  # fmt: skip
    env = _server_env(missing, missing / "model_card.html")
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
    )
    assert result.returncode == 3
    assert "refusing to start" in result.stderr
    assert "no-models-here" in result.stderr and "CENSUS_API_MODEL_DIR" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serve_refuses_an_unblessed_model_with_exit_1_and_one_line(
    carded_project: Params, tmp_path: Path, workers: int
) -> None:
    # uvicorn alone exits 3 with a traceback for one worker and 0 for several; the command
    # checks the model first, so a refusal is exit 1 with the reason, whatever the count.
    folder = tmp_path / "models"
    folder.mkdir()
    for source in (carded_project.paths.model_file, carded_project.paths.model_metadata):
        folder.joinpath(source.name).write_bytes(source.read_bytes())
    env = _server_env(folder, folder / "model_card.html")
    result = subprocess.run(
        _serve_command(free_port(), workers),
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "verdict.json" in result.stderr and "census-pipeline gate" in result.stderr
    assert "Traceback" not in result.stderr
    assert "Started server process" not in result.stderr


@pytest.mark.slow
def test_cli_serve_refuses_a_mistyped_setting(carded_project: Params) -> None:
    env = _server_env(carded_project.paths.model_dir, carded_project.paths.model_card_html)
    env["CENSUS_API_KEY"] = "a-key-meant-to-protect-the-service"
    result = subprocess.run(
        _serve_command(free_port()),
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: CENSUS_API_KEY: not a setting of the service")
    assert "CENSUS_API_API_KEY" in line


def test_serve_removes_the_metrics_folder_it_made(carded_project: Params, tmp_path: Path) -> None:
    """Without PROMETHEUS_MULTIPROC_DIR, `serve` makes a temporary folder for the workers'
    metrics files; a server stopped by SIGTERM leaves nothing behind in the temporary folder."""
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    environment = {"TMPDIR": str(temporary), "PROMETHEUS_MULTIPROC_DIR": ""}
    with serving(carded_project, tmp_path, environment=environment) as running:
        with urllib.request.urlopen(f"{running.url}/metrics", timeout=10) as response:
            assert response.status == 200
        made = list(temporary.glob("census-metrics-*"))
        assert len(made) == 1 and any(made[0].iterdir())  # the worker's files are in it
        # Stopped by the SIGTERM it got, as before (uvicorn re-raises it after shutting down).
        assert _stop(running.process) == -signal.SIGTERM
    assert not list(temporary.glob("census-metrics-*")), running.log.read_text()
