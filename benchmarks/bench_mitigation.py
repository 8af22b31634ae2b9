"""Single-record predict of a model mitigated with group thresholds against the same model
unmitigated, in the same run (the bar: at most 2x).

The mitigated artifact is the pipeline's model file with a model.json carrying group thresholds
fitted on the validation split exactly as `train` fits them (`mitigate.mitigation_record`), so
the two predictors differ only in the labelling rule. Both run `Predictor.predict_one` (what
`/predict` calls: probability, the record's threshold, the label) on the same test records, in
alternating passes; each figure is the median over every call.

    python benchmarks/bench_mitigation.py [--runs 7] [--records 2000]
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

import numpy as np

from census_pipeline.artifact import read_metadata
from census_pipeline.config import load_params
from census_pipeline.files import write_json_atomic
from census_pipeline.mitigate import mitigation_record
from census_pipeline.predict import Predictor
from census_pipeline.schema import FEATURES
from census_pipeline.train import labels_of, read_clean_table, stratified_split

BAR_RATIO = 2.0


def mitigated_copy(model_dir: Path, folder: Path) -> Path:
    """The served model with group thresholds fitted on the validation split, in `folder`."""
    params = load_params()
    settings = params.fairness.model_copy(update={"mitigation": "group_thresholds"})
    metadata = read_metadata(model_dir / "model.json")
    train = read_clean_table(params.paths.clean_train)
    y = labels_of(train)
    _, rows = stratified_split(y, params.train.validation_share, params.seed)
    validation = train.iloc[rows].reset_index(drop=True)
    with Predictor.load(model_dir) as plain:
        scores = plain.predict_frame(validation).probabilities
    record = mitigation_record(settings, (validation, y[rows], scores), metadata.threshold, None)
    shutil.copy2(model_dir / "model.txt", folder / "model.txt")
    changed = metadata.model_copy(update={"mitigation": record})
    write_json_atomic(folder / "model.json", changed.model_dump(mode="json"))
    return folder


def records_of(limit: int) -> list[dict[str, Any]]:
    test = read_clean_table(load_params().paths.clean_test).head(limit)
    features = test[list(FEATURES)].astype(object)
    rows = features.where(features.notna(), None).to_dict("records")  # type: ignore[call-overload]
    return [{str(k): v for k, v in row.items()} for row in rows]


def one_pass(predictor: Predictor, records: list[dict[str, Any]], into: list[int]) -> None:
    for record in records:
        started = time.perf_counter_ns()
        predictor.predict_one(record)
        into.append(time.perf_counter_ns() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--records", type=int, default=2000)
    args = parser.parse_args(argv)
    model_dir = load_params().paths.model_dir
    records = records_of(args.records)
    with tempfile.TemporaryDirectory() as tmp:
        folder = mitigated_copy(model_dir, Path(tmp))
        with Predictor.load(model_dir) as plain, Predictor.load(folder) as grouped:
            assert grouped.rule.by_group and not plain.rule.by_group
            thresholds = [grouped.predict_one(r).threshold for r in records]
            samples: dict[str, list[int]] = {"unmitigated": [], "group_thresholds": []}
            for predictor in (plain, grouped):  # warm-up
                one_pass(predictor, records[:200], [])
            for _ in range(args.runs):
                one_pass(plain, records, samples["unmitigated"])
                one_pass(grouped, records, samples["group_thresholds"])
    medians = {name: statistics.median(s) / 1e3 for name, s in samples.items()}
    ratio = medians["group_thresholds"] / medians["unmitigated"]
    distinct = len(np.unique(thresholds))
    print(f"records: {len(records)} x {args.runs} runs; {distinct} distinct group thresholds")
    for name, value in medians.items():
        print(f"predict_one, {name}: median {value:.1f} us")
    verdict = "meets" if ratio <= BAR_RATIO else "MISSES"
    print(f"ratio mitigated / unmitigated: {ratio:.2f} ({verdict} the bar <= {BAR_RATIO:g})")
    return 0 if ratio <= BAR_RATIO else 1


if __name__ == "__main__":
    sys.exit(main())
