"""A real `census-pipeline serve` process on a free port, for the tests that need a server."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import free_port

from census_pipeline.config import Params

CLI = str(Path(sys.executable).with_name("census-pipeline"))
START_TIMEOUT_S = 60.0
RECORD = {
    "age": 39, "workclass": "State-gov", "fnlgt": 77516, "education": "Bachelors",
    "education-num": 13, "marital-status": "Never-married", "occupation": "Adm-clerical",
    "relationship": "Not-in-family", "race": "White", "sex": "Male", "capital-gain": 2174,
    "capital-loss": 0, "hours-per-week": 40, "native-country": "United-States",
}  # fmt: skip


class Server:
    """A started server: its process, port and log."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, log: Path) -> None:
        self.process, self.port, self.log = process, port, log
        self.url = f"http://127.0.0.1:{port}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="utf-8")
        return int(re.search(r"^VmRSS:\s+(\d+) kB", status, re.M).group(1)) / 1024  # type: ignore[union-attr]


@contextmanager
def serving(
    params: Params,
    tmp_path: Path,
    model_dir: Path | None = None,
    settings: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
) -> Iterator[Server]:
    """The server on the session pipeline's model (or `model_dir`), with CENSUS_API_ settings
    and any other `environment` variables."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    # The server's temporary files (its metrics folder) stay in the test's folder: a server
    # the test kills has no chance to remove them.
    env["TMPDIR"] = str(tmp_path)
    env.update(environment or {})
    env["CENSUS_API_MODEL_DIR"] = str(model_dir or params.paths.model_dir)
    env["CENSUS_API_MODEL_CARD_PATH"] = str(params.paths.model_card_html)
    env.update({f"CENSUS_API_{name.upper()}": value for name, value in (settings or {}).items()})
    log = tmp_path / f"server-{port}.log"
    command = [CLI, "serve", "--host", "127.0.0.1", "--port", str(port)]
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, stdout=sink, stderr=sink)
    try:
        _wait_ready(process, f"http://127.0.0.1:{port}", log)
        yield Server(process, port, log)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


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
