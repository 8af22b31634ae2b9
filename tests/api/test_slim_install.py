"""The service runs with the `serve` install alone: no pandas, scikit-learn, DVC or pyarrow.

A subprocess blocks every module that only distributions outside `census-pipeline[serve]`'s
dependency closure provide (see slim_python.py), then builds the app, starts its lifespan and
scores a record through the ASGI interface, without any HTTP client library. The same blocker
runs `census-pipeline --help` and `census-pipeline serve` up to the moment it would hand over to
uvicorn: params, settings and the model pre-check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .service_samples import HIGH_EARNER

SLIM_PYTHON = Path(__file__).with_name("slim_python.py")
REPO_ROOT = Path(__file__).resolve().parents[2]
HEAVY = {"pandas", "sklearn", "dvc", "pyarrow", "matplotlib", "pandera", "aequitas"}

# The CLI as its console script runs it, with uvicorn.run replaced by a report of its call.
CLI_SCRIPT = """
import json, sys

before = set(sys.modules)
import uvicorn

def run(app, **options):
    loaded = sorted({name.partition(".")[0] for name in set(sys.modules) - before})
    named = lambda thing: f"{thing.__module__}:{thing.__qualname__}"  # the protocol class
    print(json.dumps({"app": app, "options": options, "loaded": loaded}, default=named))

uvicorn.run = run
from census_pipeline.cli import app

app(sys.argv[1:], prog_name="census-pipeline")
"""


def _slim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SLIM_PYTHON), "-c", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=cwd,
    )


@pytest.fixture
def slim_project(served_dir: Path, tmp_path: Path) -> Path:
    """A deployment's folder: the repository's params.yaml and what `census-pipeline publish`
    put in serving/ (the model files and the card)."""
    shutil.copy2(REPO_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(served_dir, tmp_path / "serving")
    return tmp_path


def test_cli_help_runs_without_the_pipeline_stack() -> None:
    result = _slim(CLI_SCRIPT, "--help")
    assert result.returncode == 0, result.stderr
    assert "serve" in result.stdout and "train" in result.stdout


def test_cli_serve_checks_the_model_without_the_pipeline_stack(slim_project: Path) -> None:
    argv = ["serve", "--params", "params.yaml", "--port", "8123", "--workers", "2"]
    result = _slim(CLI_SCRIPT, *argv, cwd=slim_project)
    assert result.returncode == 0, result.stderr
    call = json.loads(result.stdout.strip().splitlines()[-1])
    assert call["app"] == "census_pipeline.api.main:create_app"
    assert call["options"]["port"] == 8123 and call["options"]["workers"] == 2
    # The bounds on clients (docs/api.md), from the settings' defaults.
    assert call["options"]["http"] == "census_pipeline.api.server:HeaderCappedHttpToolsProtocol"
    assert call["options"]["h11_max_incomplete_event_size"] == 16 * 1024
    assert call["options"]["limit_concurrency"] == 256
    assert call["options"]["timeout_graceful_shutdown"] == 10
    assert not HEAVY & set(call["loaded"]), call["loaded"]


def test_cli_serve_refuses_in_the_slim_install_with_the_reason(slim_project: Path) -> None:
    (slim_project / "serving" / "verdict.json").unlink()
    result = _slim(CLI_SCRIPT, "serve", "--params", "params.yaml", cwd=slim_project)
    assert result.returncode == 1
    assert "verdict.json" in result.stderr and "census-pipeline gate" in result.stderr
    assert "not in the serve install" not in result.stderr


SCRIPT = """
import asyncio, json, sys

before = set(sys.modules)
from census_pipeline.api.main import create_app
from census_pipeline.api.settings import Settings

model_dir, record = sys.argv[1], json.loads(sys.argv[2])

async def post(app, path, payload):
    body = json.dumps(payload).encode()
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode())],
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []
    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}
    async def send(message):
        sent.append(message)
    await app(scope, receive, send)
    status = sent[0]["status"]
    return status, json.loads(b"".join(m.get("body", b"") for m in sent[1:]))

async def main():
    app = create_app(Settings(model_dir=model_dir))
    async with app.router.lifespan_context(app):
        status, body = await post(app, "/predict", record)
    loaded = sorted({name.partition(".")[0] for name in set(sys.modules) - before})
    print(json.dumps({"status": status, "body": body, "loaded": loaded}))

asyncio.run(main())
"""


def test_app_starts_and_predicts_without_the_pipeline_stack(served_dir: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(SLIM_PYTHON), "-c", SCRIPT, str(served_dir), json.dumps(HIGH_EARNER)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["status"] == 200
    assert outcome["body"]["label"] == ">50K"
    assert not HEAVY & set(outcome["loaded"])


def test_the_blocker_really_blocks() -> None:
    result = subprocess.run(
        [sys.executable, str(SLIM_PYTHON), "-c", "import pandas"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "not in the serve install" in result.stderr
