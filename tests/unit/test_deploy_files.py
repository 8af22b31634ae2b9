"""Deployment files: Procfile, Python pin, Dockerfile, .dockerignore and the slim `serve` install.

No Docker engine runs where the tests run, so the Dockerfile is checked structurally (stages, base
image, user, health check, command, what gets installed and copied) and the slim install is
proven on its own: the `serve` extra's dependency closure holds no training stack, and (slow) a
fresh virtual environment with only `census-pipeline[serve]` imports the service without pandas,
DVC or scikit-learn.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import venv
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from census_pipeline.config import load_params
from census_pipeline.publish import CARD, METADATA, MODEL, SEAL, VERDICT

REPO_ROOT = Path(__file__).resolve().parents[2]

_BUILD_LITTER = shutil.ignore_patterns("__pycache__", "*.egg-info")

# What a serving install must never pull in: the training stack, DVC and git bindings.
TRAINING_STACK = {
    "pandas",
    "pyarrow",
    "scikit-learn",
    "pandera",
    "aequitas",
    "matplotlib",
    "jinja2",
    "dvc",
    "dvc-data",
    "scmrepo",
    "pygit2",
    "dulwich",
    "gitpython",
}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_stages(path: Path) -> list[list[Instruction]]:
    """Instructions grouped by build stage (a stage starts at each FROM); continuations joined."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def dockerignore_allows(patterns: list[str], path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    included = True
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern[1:] if negated else pattern
        regex = _docker_glob(body.strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            included = negated
    return included


def _docker_glob(pattern: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return re.compile(out)


def dockerignore_patterns() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def procfile_processes() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in (REPO_ROOT / "Procfile").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            processes[name.strip()] = command.strip()
    return processes


def blessed_artifacts() -> list[str]:
    """What the service reads, as repo-relative paths: the folder `census-pipeline publish`
    writes (Params.paths.serving_dir), with the names publish gives them (not this test)."""
    paths = load_params(REPO_ROOT / "params.yaml").paths
    files = [paths.serving_dir / name for name in (MODEL, METADATA, VERDICT, CARD, SEAL)]
    return [str(file.relative_to(REPO_ROOT)) for file in files]


def serve_closure() -> set[str]:
    """Every distribution `census-pipeline[serve]` installs, from pyproject.toml then metadata."""
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    direct = [*project["dependencies"], *project["optional-dependencies"]["serve"]]
    seen: set[str] = set()
    for requirement in direct:
        _walk(Requirement(requirement), seen)
    return seen


def _walk(requirement: Requirement, seen: set[str]) -> None:
    name = canonicalize_name(requirement.name)
    if name in seen:
        return
    seen.add(name)
    try:
        requires = importlib.metadata.requires(requirement.name) or []
    except importlib.metadata.PackageNotFoundError:
        return
    extras = requirement.extras or {""}
    for text in requires:
        child = Requirement(text)
        if child.marker is None or any(child.marker.evaluate({"extra": e}) for e in extras):
            _walk(child, seen)


# --- Procfile and the Python pin -------------------------------------------------------------


def test_procfile_declares_one_web_process_bound_to_port_with_workers_from_env() -> None:
    processes = procfile_processes()
    assert list(processes) == ["web"]
    argv = shlex.split(processes["web"])
    # The CLI's serve checks the model before forking workers (uvicorn's supervisor exits 0).
    assert argv[:2] == ["census-pipeline", "serve"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--port") + 1] == "$PORT"
    assert "WEB_CONCURRENCY" in argv[argv.index("--workers") + 1]


def test_procfile_and_container_start_the_same_server_command() -> None:
    procfile = shlex.split(procfile_processes()["web"])
    cmd = next(i for i in dockerfile_stages(REPO_ROOT / "Dockerfile")[-1] if i.keyword == "CMD")
    container = shlex.split(cmd.arguments.removeprefix("exec "))
    assert container[:2] == procfile[:2]
    for option in ("--host", "--port", "--workers"):
        assert option in procfile and option in container
    scripts = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert procfile[0] in scripts["project"]["scripts"]


def test_python_pin_is_the_one_heroku_reads_and_agrees_everywhere() -> None:
    pin = (REPO_ROOT / ".python-version").read_text(encoding="utf-8").strip()
    assert re.fullmatch(r"3\.\d+", pin)
    assert not (REPO_ROOT / "runtime.txt").exists(), "runtime.txt is deprecated by Heroku"
    requires = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    floor = requires["project"]["requires-python"].removeprefix(">=")
    assert tuple(map(int, pin.split("."))) >= tuple(map(int, floor.split(".")))
    dockerfile = (REPO_ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert f"ARG PYTHON_VERSION={pin}\n" in dockerfile


def test_heroku_requirements_install_only_the_serve_extra() -> None:
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    entries = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert entries == ["-c requirements/constraints.txt", ".[serve]"]


# --- Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_is_multi_stage_on_slim_python() -> None:
    stages = dockerfile_stages(REPO_ROOT / "Dockerfile")
    assert len(stages) >= 2
    bases = [stage[0].arguments.split()[0] for stage in stages]
    assert all(re.fullmatch(r"python:\$\{PYTHON_VERSION\}-slim", base) for base in bases), bases
    assert stages[-1][0].arguments.split()[-1] == "runtime"


def test_runtime_stage_installs_only_serve_from_built_wheels() -> None:
    runtime = dockerfile_stages(REPO_ROOT / "Dockerfile")[-1]
    runs = " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    assert '"census-pipeline[serve]"' in runs
    assert "--no-index" in runs, "the runtime must install the builder's wheels, not resolve anew"
    for forbidden in ("[pipeline]", "[dev]", " dvc", " git ", "build-essential", "gcc"):
        assert forbidden not in runs, forbidden


def test_runtime_stage_copies_exactly_the_blessed_artifacts() -> None:
    runtime = dockerfile_stages(REPO_ROOT / "Dockerfile")[-1]
    copied: list[str] = []
    for instruction in runtime:
        if instruction.keyword == "COPY" and "--from" not in instruction.arguments:
            *sources, _destination = instruction.arguments.split()
            # The app user must be able to read files written with mode 0600.
            assert "--chmod=0444" in sources
            copied += [s for s in sources if not s.startswith("--")]
    assert sorted(copied) == sorted(blessed_artifacts())
    # The service finds them where they were copied, through its settings' environment.
    workdir = [i.arguments for i in runtime if i.keyword == "WORKDIR"][-1]
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    model_file, _, _, card, _ = blessed_artifacts()
    assert f"CENSUS_API_MODEL_DIR={workdir}/{Path(model_file).parent}" in env
    assert f"CENSUS_API_MODEL_CARD_PATH={workdir}/{card}" in env


def test_runtime_runs_as_non_root_with_a_health_check_and_env_driven_command() -> None:
    runtime = dockerfile_stages(REPO_ROOT / "Dockerfile")[-1]
    keywords = [i.keyword for i in runtime]
    user = [i.arguments for i in runtime if i.keyword == "USER"]
    assert user and user[-1] not in {"root", "0"}
    assert keywords.index("USER") < keywords.index("CMD")
    (healthcheck,) = [i.arguments for i in runtime if i.keyword == "HEALTHCHECK"]
    assert "urllib.request" in healthcheck and "/health" in healthcheck and "PORT" in healthcheck
    assert "curl" not in healthcheck, "slim images have no curl"
    (cmd,) = [i.arguments for i in runtime if i.keyword == "CMD"]
    assert '"${PORT:-8000}"' in cmd and '"${WEB_CONCURRENCY:-1}"' in cmd
    assert cmd.startswith("exec ")
    env = " ".join(i.arguments for i in runtime if i.keyword == "ENV")
    assert "PORT=" in env and "WEB_CONCURRENCY=" in env


@pytest.mark.parametrize(
    ("environment", "port", "workers"),
    [({}, "8000", "1"), ({"PORT": "", "WEB_CONCURRENCY": ""}, "8000", "1"),
     ({"PORT": "5123", "WEB_CONCURRENCY": "3"}, "5123", "3")],
)  # fmt: skip
def test_container_command_falls_back_when_the_platform_unsets_port_or_workers(
    environment: dict[str, str], port: str, workers: str
) -> None:
    runtime = dockerfile_stages(REPO_ROOT / "Dockerfile")[-1]
    (cmd,) = [i.arguments for i in runtime if i.keyword == "CMD"]
    # Expand the command as the image's shell would, printing its argv instead of exec'ing it.
    script = "set -- " + cmd.removeprefix("exec ") + "; printf '%s\\n' \"$@\""
    result = subprocess.run(
        ["/bin/sh", "-c", script], env=environment, capture_output=True, text=True, check=True
    )
    argv = result.stdout.splitlines()
    assert argv[argv.index("--port") + 1] == port
    assert argv[argv.index("--workers") + 1] == workers


def test_runtime_has_the_openmp_library_lightgbm_links_against() -> None:
    runtime = dockerfile_stages(REPO_ROOT / "Dockerfile")[-1]
    assert any("libgomp1" in i.arguments for i in runtime if i.keyword == "RUN")


# --- .dockerignore ---------------------------------------------------------------------------


def test_dockerignore_lets_in_everything_the_build_copies() -> None:
    patterns = dockerignore_patterns()
    stages = dockerfile_stages(REPO_ROOT / "Dockerfile")
    for instruction in (i for stage in stages for i in stage if i.keyword == "COPY"):
        if "--from" in instruction.arguments:
            continue
        *sources, _ = instruction.arguments.split()
        for source in (s for s in sources if not s.startswith("--")):
            probe = "src/census_pipeline/__init__.py" if source == "src" else source
            assert dockerignore_allows(patterns, probe), source


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".dvc/cache/files/md5/ab/cdef",
        ".dvc/config.local",
        "dvc-storage/files/md5/ab/cdef",
        "data/raw/adult.data",
        "models/model.txt",
        "serving/publication.json",
        "data/clean/train.parquet",
        "reports/evaluation/test_predictions.parquet",
        "tests/conftest.py",
        "src/census_pipeline/__pycache__/cli.cpython-311.pyc",
        ".env",
    ],
)
def test_dockerignore_keeps_out_data_secrets_and_tooling(path: str) -> None:
    assert not dockerignore_allows(dockerignore_patterns(), path)


# --- the slim serving install ----------------------------------------------------------------


def test_serve_extra_pulls_in_no_training_stack_dvc_or_git() -> None:
    closure = serve_closure()
    assert {"fastapi", "uvicorn", "lightgbm", "numpy"} <= closure
    assert not closure & TRAINING_STACK, sorted(closure & TRAINING_STACK)


@pytest.mark.slow
def test_fresh_serve_install_imports_the_service_without_the_training_stack(
    tmp_path: Path,
) -> None:
    """Build the wheel, install `[serve]` into an empty venv, import the app factory there."""
    project = tmp_path / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        (project / name).write_bytes((REPO_ROOT / name).read_bytes())
    shutil.copytree(REPO_ROOT / "src", project / "src", ignore=_BUILD_LITTER)
    _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path), str(project)]
    )
    (wheel,) = tmp_path.glob("census_pipeline-*.whl")
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    python = str(tmp_path / "venv" / "bin" / "python")
    constraints = str(REPO_ROOT / "requirements" / "constraints.txt")
    _run([python, "-m", "pip", "install", "-q", "-c", constraints, f"{wheel}[serve]"])
    probe = (
        "import importlib.util as u, sys\n"
        "from census_pipeline.api.main import create_app\n"
        "leaked = [m for m in ('pandas', 'dvc', 'sklearn', 'pyarrow', 'matplotlib', 'aequitas',"
        " 'pandera', 'git', 'pygit2') if u.find_spec(m) or m in sys.modules]\n"
        "print(','.join(leaked))\n"
    )
    assert _run([python, "-c", probe], cwd=tmp_path).strip() == ""
    # The start command itself: the CLI loads, and serve refuses a folder with no model (exit 1)
    # through its pre-check, all without the training stack.
    cli = str(tmp_path / "venv" / "bin" / "census-pipeline")
    assert "serve" in _run([cli, "--help"], cwd=tmp_path)
    env = {"PATH": os.environ.get("PATH", ""), "CENSUS_API_MODEL_DIR": str(tmp_path / "none")}
    refused = subprocess.run(
        [cli, "serve"], capture_output=True, text=True, cwd=tmp_path, env=env, check=False
    )
    assert refused.returncode == 1, refused.stderr
    assert "model folder not found" in refused.stderr


def _run(argv: list[str], cwd: Path | None = None) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, check=False)
    assert result.returncode == 0, f"{argv[:4]} failed:\n{result.stderr[-3000:]}"
    return result.stdout
