"""The service runs with the `serve` install alone: no pandas, scikit-learn, DVC or pyarrow.

A subprocess blocks every module that only distributions outside `census-pipeline[serve]`'s
dependency closure provide (see slim_python.py), then builds the app, starts its lifespan and
scores a record through the ASGI interface, without any HTTP client library.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .service_samples import HIGH_EARNER

SLIM_PYTHON = Path(__file__).with_name("slim_python.py")

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
    heavy = {"pandas", "sklearn", "dvc", "pyarrow", "matplotlib", "pandera", "aequitas"}
    assert not heavy & set(outcome["loaded"])


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
