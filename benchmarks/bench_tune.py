"""The search's cost, and what the `fast` serving profile buys, measured in one run.

In a throwaway project built from the real census files:

1. the search with the repository's default budget (`tune.n_trials`, accurate profile), timed
   (budget: 10 minutes on a 2-core machine), then `train` on its choice; the baseline in the same
   run is one plain training with the untuned `train.lightgbm` settings (`train.use_tuned: false`),
   so the search's cost is also stated as a number of trainings;
2. the same for the `fast` profile (`--fast-trials`, default the same budget);
3. both chosen models, and the untuned one, on the official test set (ROC AUC and accuracy at
   0.5, reported only: nothing is chosen by them), with single-row latency (the Predictor's fast
   path, median per call) and batch throughput (`predict_many`, one thread), as ratios.

    python benchmarks/bench_tune.py [--source-dir DIR] [--trials N] [--fast-trials N] [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from census_pipeline.clean import clean
from census_pipeline.config import Params, load_params
from census_pipeline.ingest import ingest
from census_pipeline.metrics import summary
from census_pipeline.predict import Predictor
from census_pipeline.schema import FEATURES, LABEL, POSITIVE_LABEL
from census_pipeline.train import read_clean_table, train
from census_pipeline.tune import tune
from census_pipeline.validate import validate

REPO_ROOT = Path(__file__).resolve().parents[1]
SEARCH_BUDGET_S = 600.0


def project(root: Path, overrides: dict[str, Any], clean_dir: Path | None) -> Params:
    raw = yaml.safe_load((REPO_ROOT / "params.yaml").read_text(encoding="utf-8"))
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    root.mkdir(parents=True)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    params = load_params(root / "params.yaml")
    if clean_dir is not None:
        shutil.copytree(clean_dir, params.paths.clean_dir)
    return params


def timed(action: Any) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def test_records(params: Params) -> tuple[list[dict[str, Any]], np.ndarray]:
    frame = read_clean_table(params.paths.clean_test)
    features = frame[list(FEATURES)].astype(object)
    records = features.where(features.notna(), None).to_dict("records")  # type: ignore[call-overload]
    labels = np.asarray(frame[LABEL] == POSITIVE_LABEL, dtype=np.int64)
    return records, labels


def measure(
    params: Params, records: list[dict[str, Any]], labels: np.ndarray, runs: int
) -> dict[str, float]:
    predictor = Predictor.load(params.paths.model_dir)
    try:
        scores = predictor.predict_many(records).probabilities
        quality = summary(labels, scores, 0.5, 1.0)
        single = []
        for _ in range(runs):
            for record in records[:2000]:
                started = time.perf_counter_ns()
                predictor.probability_one(record)
                single.append(time.perf_counter_ns() - started)
        batch = [timed(lambda: predictor.predict_many(records)) for _ in range(runs)]
        return {
            "trees": float(predictor.metadata.num_trees),
            "roc_auc": float(quality["roc_auc"]),
            "accuracy_at_half": float(quality["accuracy"]),
            "single_ms": statistics.median(single) / 1e6,
            "batch_rows_per_s": len(records) / statistics.median(batch),
        }
    finally:
        predictor.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", type=Path, default=None)
    parser.add_argument("--trials", type=int, default=None, help="default: params.yaml's")
    parser.add_argument("--fast-trials", type=int, default=None, help="default: --trials")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    source = args.source_dir or (
        Path(os.environ["CENSUS_DATA_DIR"]) if "CENSUS_DATA_DIR" in os.environ else None
    )
    trials = args.trials or load_params(REPO_ROOT / "params.yaml").tune.n_trials
    fast_trials = args.fast_trials or trials

    with tempfile.TemporaryDirectory(prefix="bench-tune-") as tmp:
        work = Path(tmp)
        base = project(work / "untuned", {"train.use_tuned": False}, None)
        ingest(base, source_dir=source)
        validate(base)
        clean(base)
        clean_dir = base.paths.clean_dir
        train_s = timed(lambda: train(base))

        accurate = project(work / "accurate", {"tune.n_trials": trials}, clean_dir)
        search_s = timed(lambda: tune(accurate, progress=False))
        train(accurate)
        fast = project(
            work / "fast", {"tune.n_trials": fast_trials, "tune.serving_profile": "fast"}, clean_dir
        )
        fast_search_s = timed(lambda: tune(fast, progress=False))
        train(fast)

        records, labels = test_records(base)
        results = {name: measure(p, records, labels, args.runs) for name, p in
                   (("untuned", base), ("accurate", accurate), ("fast", fast))}  # fmt: skip

    print(f"search, accurate profile: {trials} trials in {search_s:.1f} s "
          f"(budget {SEARCH_BUDGET_S:.0f} s) = {search_s / train_s:.0f} untuned trainings "
          f"({train_s:.1f} s each)")  # fmt: skip
    print(f"search, fast profile: {fast_trials} trials in {fast_search_s:.1f} s")
    print("model      trees  test ROC AUC  acc@0.5  single-row ms  batch rows/s")
    for name, r in results.items():
        print(f"{name:9} {r['trees']:6.0f}  {r['roc_auc']:.4f}       {r['accuracy_at_half']:.4f}   "
              f"{r['single_ms']:.4f}         {r['batch_rows_per_s']:,.0f}")  # fmt: skip
    acc, fst, unt = results["accurate"], results["fast"], results["untuned"]
    print(f"fast vs accurate: single-row {acc['single_ms'] / fst['single_ms']:.2f}x faster, "
          f"batch {fst['batch_rows_per_s'] / acc['batch_rows_per_s']:.2f}x faster, "
          f"ROC AUC {fst['roc_auc'] - acc['roc_auc']:+.4f}")  # fmt: skip
    print(f"accurate vs untuned: single-row {unt['single_ms'] / acc['single_ms']:.2f}x, "
          f"batch {acc['batch_rows_per_s'] / unt['batch_rows_per_s']:.2f}x, "
          f"ROC AUC {acc['roc_auc'] - unt['roc_auc']:+.4f}")  # fmt: skip
    within = search_s <= SEARCH_BUDGET_S
    print(f"search within budget: {'yes' if within else 'NO'}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
