"""Time audit + gate + card on a throwaway project that already holds evaluation outputs.

The three steps run as the pipeline runs them: one `census-pipeline` process each, so every run
pays its imports (Aequitas alone pulls in seaborn and Altair). Two baselines are timed in the
same runs: a process that only imports pandas and reads the steps' inputs (the least any of them
must do), and the evaluate step that produces those inputs.

    python benchmarks/bench_trust.py --source-dir PATH_TO_CENSUS_FILES [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from census_files import census_folder

from census_pipeline.clean import clean
from census_pipeline.config import Params, load_params
from census_pipeline.evaluate import evaluate
from census_pipeline.ingest import ingest
from census_pipeline.train import train
from census_pipeline.validate import validate

REPO_ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).parent / "census-pipeline")
BUDGET_S = 20.0

# The baseline process: read every input the three steps read, and nothing more.
READ_INPUTS = """
import json, sys
from pathlib import Path
import pandas as pd
from census_pipeline.config import load_params
paths = load_params(Path(sys.argv[1])).paths
pd.read_parquet(paths.test_predictions)
pd.read_csv(paths.slices)
for name in ("roc", "pr", "calibration"):
    pd.read_csv(paths.curve(name))
for path in (paths.metrics, paths.model_metadata, paths.data_report):
    json.loads(path.read_text())
"""


def evaluated_project(root: Path, source: Path) -> Params:
    """The repo's params under `root`, run up to evaluate (not timed)."""
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(root / "params.yaml")
    ingest(params, source_dir=source)
    validate(params)
    clean(params)
    train(params)
    evaluate(params)
    return params


def timed(command: list[str], allowed: tuple[int, ...] = (0,)) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    return elapsed


def step(name: str, params_file: Path) -> list[str]:
    return [CLI, name, "--params", str(params_file)]


def one_run(params_file: Path) -> dict[str, float]:
    times = {
        "audit": timed(step("audit", params_file)),
        # Exit 1 is an unblessed verdict, not a failure to time.
        "gate": timed(step("gate", params_file), allowed=(0, 1)),
        "card": timed(step("card", params_file)),
    }
    times["total"] = times["audit"] + times["gate"] + times["card"]
    times["baseline: read inputs"] = timed([sys.executable, "-c", READ_INPUTS, str(params_file)])
    times["reference: evaluate"] = timed(step("evaluate", params_file))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-trust-") as tmp:
        # --source-dir, else $CENSUS_DATA_DIR, else fetched once through the download chain.
        params = evaluated_project(Path(tmp), census_folder(args.source_dir, Path(tmp)))
        params_file = Path(tmp) / "params.yaml"
        one_run(params_file)  # warm-up: page cache, compiled bytecode
        runs = [one_run(params_file) for _ in range(args.runs)]
        blessed = json.loads(params.paths.verdict.read_text(encoding="utf-8"))["blessed"]
    medians = {step: statistics.median(run[step] for run in runs) for step in runs[0]}
    print(f"audit + gate + card, one process each, median of {args.runs} runs (seconds):")
    for step, value in medians.items():
        print(f"  {step:<22} {value:6.2f}")
    print(f"  total / read inputs    {medians['total'] / medians['baseline: read inputs']:6.1f}x")
    print(f"  total / evaluate       {medians['total'] / medians['reference: evaluate']:6.2f}x")
    print(f"  verdict blessed:       {blessed}")
    within = medians["total"] < BUDGET_S
    print(f"  budget {BUDGET_S:.0f} s: {'met' if within else 'MISSED'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
