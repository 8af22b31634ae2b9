"""What DVC costs on top of the pipeline: a full `dvc repro` from nothing and a no-op repro.

Setup (not timed): a throwaway copy of the repository (the files git knows about), its own git
repository, and its own DVC site cache, so nothing is shared with the working checkout. Then,
alternating so that drift and neighbours hit both sides of each ratio alike, each of `--runs`
rounds times:

- `dvc repro` from nothing: no outputs, empty DVC cache (run cache included), empty site cache;
- baseline: the same steps called directly, one `census-pipeline <step> --params params.yaml`
  process per stage in dvc.yaml's order, from no outputs;
- a no-op `dvc repro` right after a full one (everything up to date), `--noop-runs` times;
- baselines for the no-op: `dvc dag` (DVC starts and loads dvc.yaml and params, but checks
  nothing) and `dvc --version` (the process start alone).

    python benchmarks/bench_dvc.py [--source-dir DIR] [--runs 3] [--noop-runs 5]

The census files come from `--source-dir` or $CENSUS_DATA_DIR (else the download chain).
Budgets (issue 5): full repro under 90 s, no-op repro under 5 s.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
OUTPUT_ROOTS = ("data", "models", "reports")
BUDGET_FULL_S, BUDGET_NOOP_S = 90.0, 5.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=os.environ.get("CENSUS_DATA_DIR"))
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--noop-runs", type=int, default=5)
    return parser.parse_args()


def copy_repository(target: Path) -> None:
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


class Project:
    def __init__(self, root: Path, source_dir: Path | None) -> None:
        self.root = root
        self.site_cache = root.parent / "site-cache"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("CENSUS_", "DVC_"))}
        env |= {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "DVC_NO_ANALYTICS": "1",
            "DVC_SITE_CACHE_DIR": str(self.site_cache),
        }
        if source_dir is not None:
            env["CENSUS_DATA_DIR"] = str(source_dir.resolve())
        self.env = env

    def run(self, *argv: str) -> None:
        result = subprocess.run(
            argv, cwd=self.root, env=self.env, capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed:\n{(result.stdout + result.stderr)[-3000:]}")

    def stages(self) -> list[str]:
        text = (self.root / "dvc.yaml").read_text(encoding="utf-8")
        return list(yaml.safe_load(text)["stages"])

    def wipe(self, dvc_state: bool) -> None:
        """No outputs; with dvc_state, no DVC cache, run cache or site cache either."""
        doomed = [self.root / name for name in OUTPUT_ROOTS]
        if dvc_state:
            doomed += [self.root / ".dvc" / "cache", self.root / ".dvc" / "tmp", self.site_cache]
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)


def timed(action: Callable[[], None]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def direct_steps(project: Project) -> None:
    for stage in project.stages():
        project.run(str(BIN / "census-pipeline"), stage, "--params", "params.yaml")


def main() -> None:
    args = parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-dvc-") as tmp:
        root = Path(tmp) / "repo"
        root.mkdir()
        copy_repository(root)
        # The stages run .venv/bin/census-pipeline: the copy uses this interpreter's environment.
        (root / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
        project = Project(root, args.source_dir)
        for argv in (
            ["init", "-q", "-b", "main"],
            ["add", "-A"],
            [
                "-c",
                "user.name=bench",
                "-c",
                "user.email=bench@example.invalid",
                "commit",
                "-qm",
                ".",
            ],
        ):
            project.run("git", *argv)
        dvc = str(BIN / "dvc")
        full, direct, noop, dag, startup = [], [], [], [], []
        for round_no in range(args.runs):
            project.wipe(dvc_state=True)
            full.append(timed(lambda: project.run(dvc, "repro")))
            for _ in range(args.noop_runs):
                noop.append(timed(lambda: project.run(dvc, "repro")))
                dag.append(timed(lambda: project.run(dvc, "dag")))
                startup.append(timed(lambda: project.run(dvc, "--version")))
            project.wipe(dvc_state=True)
            direct.append(timed(lambda: direct_steps(project)))
            print(
                f"round {round_no + 1}: dvc repro {full[-1]:.1f} s, direct {direct[-1]:.1f} s",
                file=sys.stderr,
            )
        report(project.stages(), full, direct, noop, dag, startup)


def report(
    stages: list[str],
    full: list[float],
    direct: list[float],
    noop: list[float],
    dag: list[float],
    start: list[float],
) -> None:
    med = statistics.median
    print(f"stages: {', '.join(stages)}")
    print("| measurement | median | runs |")
    print("|---|---|---|")
    print(f"| `dvc repro` from nothing | {med(full):.1f} s (budget {BUDGET_FULL_S:.0f} s) |"
          f" {len(full)} |")  # fmt: skip
    print(f"| baseline: the same steps called directly | {med(direct):.1f} s | {len(direct)} |")
    print(f"| no-op `dvc repro` | {med(noop):.2f} s (budget {BUDGET_NOOP_S:.0f} s) | {len(noop)} |")
    print(f"| baseline: `dvc dag` (loads the pipeline, checks nothing) | {med(dag):.2f} s |"
          f" {len(dag)} |")  # fmt: skip
    print(f"| baseline: `dvc --version` (process start only) | {med(start):.2f} s | {len(start)} |")
    print(f"| full repro / direct steps | {med(full) / med(direct):.2f}x | |")
    print(f"| no-op repro / `dvc dag` | {med(noop) / med(dag):.2f}x | |")


if __name__ == "__main__":
    main()
