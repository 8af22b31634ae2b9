"""Time the train step (tuning grid included) on the real clean table, against a bare fit.

Each run trains in a throwaway project holding a copy of the clean tables, exactly as
`census-pipeline train` does: read and check the table, encode, fit every candidate of the
tuning grid with early stopping, choose the threshold, write the verified artifact. The
baseline, timed in the same runs, is one `lightgbm.train` of the chosen candidate's params for
its number of trees on the same encoded matrix: the least any training of that model costs.

    python benchmarks/bench_train.py [--runs 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightgbm as lgb
import yaml

from census_pipeline.config import Params, load_params
from census_pipeline.predict import FeatureEncoder
from census_pipeline.train import TrainResult, labels_of, read_clean_table, train

REPO_ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 30.0


def throwaway_project(root: Path, clean_dir: Path) -> Params:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(root / "params.yaml")
    shutil.copytree(clean_dir, params.paths.clean_dir)
    return params


def bare_fit(params: Params, result: TrainResult) -> float:
    """One fit of the chosen model, no validation set, tuning, threshold or output."""
    meta = result.metadata
    frame = read_clean_table(params.paths.clean_train)
    x = FeatureEncoder(meta.feature_names, meta.categories).encode_frame(frame)
    settings: dict[str, Any] = {k: v for k, v in meta.params.items() if k != "num_trees"}
    started = time.perf_counter()
    dataset = lgb.Dataset(
        x, labels_of(frame), feature_name=meta.feature_names,
        categorical_feature=meta.categorical_features,
    )  # fmt: skip
    lgb.train(settings, dataset, num_boost_round=meta.num_trees)
    return time.perf_counter() - started


def one_run(clean_dir: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        params = throwaway_project(Path(tmp), clean_dir)
        started = time.perf_counter()
        result = train(params)
        seconds = time.perf_counter() - started
        candidates = len(result.metadata.tuning["candidates"])
        return {"train": seconds, "bare fit": bare_fit(params, result), "candidates": candidates}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    clean_dir = load_params().paths.clean_dir
    runs = [one_run(clean_dir) for _ in range(args.runs)]
    train_s = statistics.median(r["train"] for r in runs)
    bare_s = statistics.median(r["bare fit"] for r in runs)
    slowest = max(r["train"] for r in runs)
    print(f"train step, median of {args.runs} runs ({runs[0]['candidates']:.0f} candidates):")
    print(f"  train (tuning, early stopping, threshold, artifact)  {train_s:6.2f} s")
    print(f"  baseline: one bare fit of the chosen model           {bare_s:6.2f} s")
    print(f"  train / baseline                                     {train_s / bare_s:6.1f}x")
    print(f"  slowest run                                          {slowest:6.2f} s")
    within = train_s < BUDGET_S
    print(f"  budget {BUDGET_S:.0f} s: {'met' if within else 'MISSED'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
