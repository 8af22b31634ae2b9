"""A throwaway PostgreSQL server for tests and benchmarks: its own data folder in a fresh
temporary folder, 127.0.0.1 on a free port, trust authentication, stopped by its PID.

PostgreSQL refuses to run as root, so as root (CI containers) the folder is handed to the
`postgres` account (or `nobody`) and the server runs as that user. The binaries come from PATH
or Debian's /usr/lib/postgresql/<version>/bin (`apt-get install postgresql`, see .ci/run).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

USER = "census"
DATABASE = "census"


def binary(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError(
            f"PostgreSQL's {name} is not installed (Debian: apt-get install -y postgresql)"
        )
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _account() -> pwd.struct_passwd | None:
    """The unprivileged account to run as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no 'postgres' or 'nobody' account to run PostgreSQL")


def _demote(account: pwd.struct_passwd | None) -> Callable[[], None] | None:
    if account is None:
        return None

    def run_as() -> None:
        os.setgid(account.pw_gid)
        os.setuid(account.pw_uid)

    return run_as


class PostgresServer:
    """`start()` initialises and starts; `stop()` and `start()` again keep the same data."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="census-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.account = _account()
        self.process: subprocess.Popen[bytes] | None = None
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
        self._run([binary("initdb"), "-D", str(self.data), "-U", USER, "--auth=trust",
                   "--no-sync", "-E", "UTF8"])  # fmt: skip

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(
            command, capture_output=True, text=True, preexec_fn=_demote(self.account), check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed: {result.stderr.strip()}")

    def start(self, timeout_s: float = 30.0) -> None:
        log = (self.root / "server.log").open("ab")
        self.process = subprocess.Popen(
            [binary("postgres"), "-D", str(self.data), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.root), "-c", "fsync=off", "-c", "max_connections=200"],
            stdout=log, stderr=log, preexec_fn=_demote(self.account),
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self._accepts():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start: {self.log_tail()}")
            time.sleep(0.1)
        if not getattr(self, "_created", False):
            self._run([binary("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER,
                       DATABASE])  # fmt: skip
            self._created = True

    def _accepts(self) -> bool:
        result = subprocess.run(
            [binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-t", "1"],
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): open connections are cut, as when a database goes away."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""
