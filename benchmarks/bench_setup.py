"""Cold `make run`: from a fresh clone and an empty package cache to a model served on /ready.

Setup (not timed): a repository holding the files git knows about in this checkout, cloned
with `git clone` into a temporary folder. Then, per round, in a fresh clone each time:

- `make run` in a fresh shell (no virtual environment on PATH, `UV_CACHE_DIR` a new empty
  folder, so every wheel comes from the package index), timed until `GET /ready` answers 200;
  the output is read as it comes, so the time is also split at the first pipeline stage and at
  `published model` (set-up / pipeline / publish and start-up); the server is then stopped by
  its process group;
- baseline, in another fresh clone with another empty cache: a plain
  `uv sync --frozen --extra dev`, the install alone with nothing of the project run.

The census files come from `--source-dir` or $CENSUS_DATA_DIR (else `../shared/data` beside the
repository, else the download chain). Budget (issue 9): under 60 s to a served model.

    python benchmarks/bench_setup.py [--source-dir DIR] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 60.0
READY_TIMEOUT_S = 900.0
MARKS = {"pipeline": "Running stage", "published": "published model"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = os.environ.get("CENSUS_DATA_DIR") or _beside()
    parser.add_argument("--source-dir", type=Path, default=default)
    parser.add_argument("--runs", type=int, default=1)
    return parser.parse_args()


def _beside() -> str | None:
    candidate = REPO.parent / "shared" / "data"
    return str(candidate) if candidate.is_dir() else None


def origin_repository(target: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, target / name)
    git = ["git", "-C", str(target), "-c", "user.name=bench", "-c", "user.email=b@example.invalid"]
    for argv in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "bench"]):
        subprocess.run([*git, *argv], check=True)
    return target


def fresh_env(cache: Path, port: int, source_dir: Path | None) -> dict[str, str]:
    """The caller's environment without any virtual environment, with an empty uv cache."""
    venv_bin = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CENSUS_", "DVC_", "UV_"))}
    env.pop("VIRTUAL_ENV", None)
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
    env |= {
        "PATH": os.pathsep.join(path),
        "UV_CACHE_DIR": str(cache),
        "PORT": str(port),
        "DVC_NO_ANALYTICS": "1",
    }
    if source_dir is not None:
        env["CENSUS_DATA_DIR"] = str(source_dir.resolve())
    return env


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Timings:
    started: float
    marks: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)


def _read(stream: object, timings: Timings) -> None:
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        line = raw.decode("utf-8", "replace")
        timings.lines.append(line)
        for name, marker in MARKS.items():
            if marker in line and name not in timings.marks:
                timings.marks[name] = time.perf_counter() - timings.started


def cold_make_run(clone: Path, env: dict[str, str], port: int) -> Timings:
    """`make run` until /ready answers; the server's process group is stopped afterwards."""
    timings = Timings(time.perf_counter())
    process = subprocess.Popen(
        ["make", "run"],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    reader = threading.Thread(target=_read, args=(process.stdout, timings), daemon=True)
    reader.start()
    try:
        while not _ready(port):
            if process.poll() is not None:
                sys.exit("make run exited before /ready answered:\n" + "".join(timings.lines[-40:]))
            if time.perf_counter() - timings.started > READY_TIMEOUT_S:
                sys.exit("make run: /ready did not answer in time")
            time.sleep(0.2)
        timings.marks["ready"] = time.perf_counter() - timings.started
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    return timings


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def plain_uv_sync(clone: Path, env: dict[str, str]) -> float:
    uv = shutil.which("uv", path=env["PATH"])
    if uv is None:
        sys.exit("the baseline needs uv on PATH")
    started = time.perf_counter()
    subprocess.run(
        [uv, "sync", "--frozen", "--extra", "dev", "--quiet"], cwd=clone, env=env, check=True
    )
    return time.perf_counter() - started


def load_average() -> float:
    return os.getloadavg()[0]


def main() -> None:
    args = parse_args()
    source = Path(args.source_dir) if args.source_dir else None
    runs: list[Timings] = []
    baselines: list[float] = []
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-setup-") as tmp:
        base = Path(tmp)
        origin = origin_repository(base / "origin")
        for round_no in range(args.runs):
            loads.append(load_average())
            clone = base / f"run-{round_no}"
            subprocess.run(["git", "clone", "-q", str(origin), str(clone)], check=True)
            port = free_port()
            env = fresh_env(base / f"cache-{round_no}", port, source)
            timings = cold_make_run(clone, env, port)
            runs.append(timings)
            plain = base / f"plain-{round_no}"
            subprocess.run(["git", "clone", "-q", str(origin), str(plain)], check=True)
            env = fresh_env(base / f"cache-plain-{round_no}", free_port(), source)
            baselines.append(plain_uv_sync(plain, env))
            marks = timings.marks
            print(
                f"round {round_no + 1}: make run to /ready {marks['ready']:.1f} s (set-up "
                f"{marks.get('pipeline', float('nan')):.1f} s, pipeline until published "
                f"{marks.get('published', float('nan')):.1f} s); plain uv sync "
                f"{baselines[-1]:.1f} s; load average {loads[-1]:.1f}",
                flush=True,
            )
    ready = statistics.median(t.marks["ready"] for t in runs)
    setup = statistics.median(t.marks.get("pipeline", float("nan")) for t in runs)
    published = statistics.median(t.marks.get("published", float("nan")) for t in runs)
    plain_s = statistics.median(baselines)
    print(f"\ncold make run to a served model: median {ready:.1f} s (budget {BUDGET_S:.0f} s)")
    print(f"  set-up (make setup, empty uv cache): {setup:.1f} s")
    print(f"  pipeline (dvc repro) + publish: {published - setup:.1f} s")
    print(f"  service start to /ready: {ready - published:.1f} s")
    print(f"baseline: plain `uv sync --frozen --extra dev`, empty cache: median {plain_s:.1f} s")
    print(f"ratio make run / plain uv sync: {ready / plain_s:.2f}")
    print(f"ratio make setup / plain uv sync: {setup / plain_s:.2f}")
    print(f"load average (1 min) at the start of each round: {loads}")
    print("within budget" if ready < BUDGET_S else "OVER BUDGET")


if __name__ == "__main__":
    main()
