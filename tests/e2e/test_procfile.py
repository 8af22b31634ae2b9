"""The Procfile's `web:` command, run for real the way Heroku runs it.

The command line is read from the Procfile (not restated here) and handed to `bash -c` with
`PORT` and `WEB_CONCURRENCY` set and no `CENSUS_API_*` variable, from the folder holding the
session project's `params.yaml` (as a dyno runs it from the app's root): the Procfile's
`--params params.yaml` must find the model the session's real pipeline trained, evaluated,
audited, gated, described and published (`paths.serving_dir`), and its card. The server must
answer on /health and /ready, serve that very model and card, and start the number of workers
the environment asks for.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import free_port

from census_pipeline.config import Params, load_params

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 90.0
WORKERS = 2


def web_command() -> str:
    for line in (REPO_ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.startswith("web:"):
            return line.removeprefix("web:").strip()
    raise AssertionError("the Procfile has no web: process")


def params_folder(params: Params) -> Path:
    """The folder of the params.yaml `params` was loaded from (its paths are relative to it)."""
    for folder in params.paths.model_dir.parents:
        candidate = folder / "params.yaml"
        if candidate.is_file() and load_params(candidate).paths == params.paths:
            return folder
    raise AssertionError(f"no params.yaml above {params.paths.model_dir}")


def get_text(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as error:
        return error.code, ""


def get_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, None


@dataclass(frozen=True)
class WebProcess:
    url: str
    log: Path


@pytest.fixture(scope="module")
def served(
    published_project: Params, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[WebProcess]:
    """The Procfile's process on a free port, stopped (process group and all) afterwards."""
    port = free_port()
    # Nothing points the service at the model: the Procfile's --params must.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith("CENSUS_API_") and k != "CENSUS_PIPELINE_PARAMS"
    }
    env |= {
        "PORT": str(port),
        "WEB_CONCURRENCY": str(WORKERS),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
    }
    log = tmp_path_factory.mktemp("dyno") / "web.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            ["bash", "-c", web_command()],
            cwd=params_folder(published_project),
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_ready(process, url, log)
        yield WebProcess(url, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_until_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the web process exited with {process.returncode}:\n{log.read_text()}")
        try:
            if get_json(f"{url}/ready")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the web process did not become ready in {START_TIMEOUT_S} s:\n{log.read_text()}")


def test_web_process_answers_on_health(served: WebProcess) -> None:
    status, body = get_json(f"{served.url}/health")
    assert status == 200
    assert body


def test_web_process_serves_the_model_the_pipeline_blessed(
    served: WebProcess, published_project: Params
) -> None:
    status, info = get_json(f"{served.url}/model")
    assert status == 200
    metadata = json.loads(published_project.paths.model_metadata.read_text(encoding="utf-8"))
    verdict = json.loads(published_project.paths.verdict.read_text(encoding="utf-8"))
    assert verdict["blessed"] is True
    assert metadata["model_sha256"] in json.dumps(info)


def test_web_process_serves_the_card_found_through_params(
    served: WebProcess, published_project: Params
) -> None:
    status, html = get_text(f"{served.url}/model-card")
    assert status == 200
    assert html == published_project.paths.model_card_html.read_text(encoding="utf-8")


def test_web_process_starts_the_workers_the_environment_asks_for(served: WebProcess) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        started = served.log.read_text(encoding="utf-8").count("Started server process")
        if started >= WORKERS:
            break
        time.sleep(0.5)
    assert started == WORKERS, served.log.read_text(encoding="utf-8")


def dockerfile_healthcheck() -> list[str]:
    """The container's HEALTHCHECK command (exec form), as Docker would run it."""
    text = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8").replace("\\\n", " ")
    (line,) = [row for row in text.splitlines() if row.startswith("HEALTHCHECK")]
    argv: list[str] = json.loads(line.split(" CMD ", 1)[1])
    return argv


def test_container_health_check_passes_against_the_live_service(served: WebProcess) -> None:
    argv = dockerfile_healthcheck()
    assert argv[0] == "python"
    port = served.url.rsplit(":", 1)[1]
    run = [sys.executable, *argv[1:]]
    assert subprocess.run(run, env={"PORT": port}, timeout=30, check=False).returncode == 0
    closed = str(free_port())
    failed = subprocess.run(run, env={"PORT": closed}, capture_output=True, timeout=30, check=False)
    assert failed.returncode != 0
