"""A real `census-pipeline serve` process for the monitoring tests and benchmarks.

Started the way the Procfile starts it, with the environment given (no other CENSUS_API_*
variable leaks in), on a free port; stopped by its PID.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).with_name("census-pipeline"))
START_TIMEOUT_S = 90.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def get_json(url: str, timeout_s: float = 10.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        text: str = response.read().decode("utf-8")
        return text


@contextmanager
def running_service(
    model_dir: Path, log: Path, workers: int = 1, env: Mapping[str, str] | None = None
) -> Iterator[str]:
    """Yield the base URL of a started service; stop it (SIGTERM, then SIGKILL) at the end."""
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CENSUS_API_")}
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    environment.update({"CENSUS_API_MODEL_DIR": str(model_dir), **(env or {})})
    command = [CLI, "serve", "--host", "127.0.0.1", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=environment, stdout=sink, stderr=sink)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()}")
        try:
            get_json(f"{url}/ready", timeout_s=2)
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)
    raise RuntimeError(f"server not ready after {START_TIMEOUT_S}s:\n{log.read_text()}")
