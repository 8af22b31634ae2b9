"""Every command in README.md's ```bash blocks, verbatim, in a fresh shell on a fresh clone.

The clone is made with `git clone` from a repository holding the files git knows about in this
checkout. Each command runs as `bash --noprofile --norc -c '<command>'` from the clone's root with
no virtual environment activated or on PATH, and HOME a new, empty folder (whose
`~/datasets/adult` holds the census files, as README's example says), the machine's other
variables kept (proxies, CA certificates). Three things differ from a developer's terminal: the
uv package cache is the caller's (no re-download of every wheel), `PORT` is a free port (the
machine is shared) and README's `localhost:8000` is rewritten to it, and `make test` is not run
(it is the command that runs this test).

`make run` serves until stopped: it runs in the background until /ready answers, and is stopped
(its process group) before the next one starts and at the end. README's `CENSUS_DATA_DIR=... make
run` runs first, so the plain `make run` after it finds the pipeline up to date and downloads
nothing. Right after the first `make run`, git must see no change at all: `dvc.lock` and every
tracked file are as committed, from another checkout in another folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import REPO_ROOT, free_port, real_data_dir

pytestmark = pytest.mark.slow

README = REPO_ROOT / "README.md"
NOT_RUN = {"make test": "it is the command that runs this test"}
READY_TIMEOUT_S = 600.0


def readme_commands(text: str) -> list[str]:
    """The commands of every ```bash block, a command continuing while a quote is open."""
    commands: list[str] = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL):
        pending = ""
        for line in block.splitlines():
            pending = f"{pending}\n{line}" if pending else line
            if pending.strip() and pending.count("'") % 2 == 0:
                commands.append(pending)
                pending = ""
    return commands


def without_comment(command: str) -> str:
    return command.split(" #", 1)[0].strip() if "'" not in command else command


def serves(command: str) -> bool:
    return re.search(r"(^|\s)make run\b", without_comment(command)) is not None


@dataclass
class Clone:
    root: Path
    env: dict[str, str]
    port: int
    log_dir: Path
    server: subprocess.Popen[bytes] | None = None
    results: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)

    def shell(self, command: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "--noprofile", "--norc", "-c", command],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, command: str) -> None:
        self.stop()
        log = self.log_dir / f"make-run-{len(self.results)}.log"
        with log.open("wb") as sink:
            self.server = subprocess.Popen(
                ["bash", "--noprofile", "--norc", "-c", command],
                cwd=self.root,
                env=self.env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        ready = wait_ready(f"http://127.0.0.1:{self.port}/ready", self.server)
        output = log.read_text(encoding="utf-8", errors="replace")
        self.results[command] = subprocess.CompletedProcess(command, 0 if ready else 1, output, "")

    def stop(self) -> None:
        if self.server is None or self.server.poll() is not None:
            return
        os.killpg(self.server.pid, signal.SIGTERM)
        try:
            self.server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.server.pid, signal.SIGKILL)
            self.server.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


def fresh_env(home: Path, port: int) -> dict[str, str]:
    """A new login on this machine: its environment (proxies, CA certificates, pyenv) without
    any virtual environment, project or DVC setting, and with a new, empty HOME."""
    venv_bin = Path(sys.executable).parent
    dropped = ("CENSUS_", "DVC_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "UV_", "PYTEST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if p and Path(p) != venv_bin]
    env |= {
        "HOME": str(home),
        "PATH": os.pathsep.join(path),
        "PORT": str(port),
        "DVC_NO_ANALYTICS": "1",
    }
    if cache := uv_cache_dir():
        env["UV_CACHE_DIR"] = cache
    return env


def uv_cache_dir() -> str | None:
    if "UV_CACHE_DIR" in os.environ:
        return os.environ["UV_CACHE_DIR"]
    uv = shutil.which("uv")
    if uv is None:
        return None
    found = subprocess.run([uv, "cache", "dir"], capture_output=True, text=True, check=False)
    return found.stdout.strip() or None


def make_clone(base: Path) -> Path:
    """`git clone` of a repository holding what git knows about in this checkout."""
    source = base / "origin"
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, source / name)
    git = ["git", "-C", str(source)]
    subprocess.run([*git, "init", "-q", "-b", "main"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "the tree under test"], check=True)
    clone = base / "clone"
    subprocess.run(["git", "clone", "-q", str(source), str(clone)], check=True)
    return clone


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clone]:
    data = real_data_dir()
    if data is None:
        pytest.skip("README's CENSUS_DATA_DIR example needs the census files locally")
    base = tmp_path_factory.mktemp("readme")
    home = base / "home"
    shutil.copytree(data, home / "datasets" / "adult")
    (home / ".gitconfig").write_text(
        "[user]\n\tname = README Test\n\temail = readme-test@example.invalid\n", encoding="utf-8"
    )
    port = free_port()
    made = Clone(make_clone(base), fresh_env(home, port), port, base)
    yield made
    made.stop()


@pytest.fixture(scope="module")
def ran(clone: Clone) -> Clone:
    """Every README command once; the git status right after the first `make run` kept."""
    commands = readme_commands(README.read_text(encoding="utf-8"))
    commands.sort(key=lambda c: not ("CENSUS_DATA_DIR=" in c and serves(c)))
    for command in commands:
        if without_comment(command) in NOT_RUN:
            continue
        if serves(command):
            clone.start(command)
            if "status after make run" not in clone.results:
                status = clone.shell("git status --porcelain --untracked-files=all")
                clone.results["status after make run"] = status
            continue
        rewritten = command.replace("localhost:8000", f"localhost:{clone.port}")
        clone.results[command] = clone.shell(rewritten)
    return clone


def test_readme_has_the_commands_this_test_expects() -> None:
    commands = [without_comment(c) for c in readme_commands(README.read_text(encoding="utf-8"))]
    assert commands[:2] == ["make run", "make test"], "the two commands come first"
    for needed in ("dvc exp run -S", "dvc exp show", "dvc metrics diff", "dvc plots show"):
        assert any(needed in c for c in commands), needed
    assert any("dvc push" in c and "dvc pull" in c for c in commands)
    assert any(c.startswith("scripts/live_check.py --url") for c in commands)


def test_every_readme_command_succeeds_verbatim(ran: Clone) -> None:
    failed = {
        command: (result.stdout + result.stderr)[-3000:]
        for command, result in ran.results.items()
        if result.returncode != 0 and command != "status after make run"
    }
    assert not failed, "\n\n".join(f"$ {c}\n{out}" for c, out in failed.items())


def test_make_run_on_a_fresh_clone_leaves_git_clean(ran: Clone) -> None:
    status = ran.results["status after make run"]
    diff = ran.shell("git diff --stat").stdout
    assert status.stdout == "", (
        f"{status.stdout}\n{diff}\nEither dvc.lock is stale (run `make pipeline` and commit "
        "dvc.lock) or an output depends on where or when it was made."
    )


def test_the_readme_prediction_and_live_check_reached_the_served_model(ran: Clone) -> None:
    predicted = next(r for c, r in ran.results.items() if "/predict" in c and "curl" in c)
    assert '"probability"' in predicted.stdout, predicted.stdout
    live = next(r for c, r in ran.results.items() if "live_check.py" in c)
    assert "live check passed" in live.stdout


def test_an_experiment_leaves_the_published_model_in_place(ran: Clone) -> None:
    """The experiment rewrote models/ in the workspace; serving/ still holds what was published
    and a service started now serves it."""
    workspace = (ran.root / "models" / "model.json").read_bytes()
    published = (ran.root / "serving" / "model.json").read_bytes()
    assert workspace != published
    ran.start("make serve")
    with urllib.request.urlopen(f"http://127.0.0.1:{ran.port}/model", timeout=5) as response:
        served = response.read()
    published_sha = json.loads(published)["model_sha256"]
    assert published_sha.encode() in served
