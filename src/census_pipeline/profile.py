"""The reference profile: what the training data looked like, for the monitor to compare with.

Built after training, from the validation split the train step carved (same share, same seed),
so it describes data the model was chosen on but not fitted to, scored by the model itself:

- `data`: per feature, the share in each bin (numerics on the split's quantile edges) and the
  missing share, and the label share: `drift.build_profile`, the same format and binning the
  data report uses;
- `ecdf`: each numeric feature's empirical CDF, for the Kolmogorov-Smirnov test (`stattests`);
- `scores`: the model's probabilities binned on their own quantiles, their CDF, and the share
  predicted positive;
- the model it belongs to and its validation metrics, the yardstick for live quality.

No rows are kept: a profile is a few kilobytes of shares. Written atomically to
`models/reference_profile.json` (the `profile` DVC stage, after `train`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from census_pipeline.artifact import ModelMetadata
from census_pipeline.config import Params
from census_pipeline.drift import build_profile, quantile_edges
from census_pipeline.files import write_json_atomic
from census_pipeline.predict import Predictor
from census_pipeline.schema import NUMERIC
from census_pipeline.stattests import ecdf
from census_pipeline.train import labels_of, read_clean_table, stratified_split

PROFILE_FORMAT = 1
SCORE = "score"


@dataclass(frozen=True)
class ProfileResult:
    path: Path
    rows: int
    payload: dict[str, Any]


def profile(params: Params) -> ProfileResult:
    paths = params.paths
    frame = read_clean_table(paths.clean_train)
    _, rows = stratified_split(labels_of(frame), params.train.validation_share, params.seed)
    validation = frame.iloc[rows].reset_index(drop=True)
    with Predictor.load(paths.model_dir) as predictor:
        scored = predictor.predict_frame(validation)
        metadata = predictor.metadata
    payload = reference_profile(
        validation, scored.probabilities, scored.positive, metadata, params.monitor.profile_bins
    )
    write_json_atomic(paths.reference_profile, payload)
    return ProfileResult(paths.reference_profile, len(validation), payload)


def reference_profile(
    frame: pd.DataFrame,
    scores: NDArray[np.float64],
    positive: NDArray[np.bool_],
    metadata: ModelMetadata,
    bins: int,
) -> dict[str, Any]:
    """The profile of a labelled, scored table (see the module docstring)."""
    return {
        "format": PROFILE_FORMAT,
        "source": "validation split of the clean training table",
        "model_version": metadata.model_version,
        "model_sha256": metadata.model_sha256,
        "rows": len(frame),
        "data": build_profile(frame, bins=bins),
        "ecdf": {name: ecdf(frame[name].to_numpy(dtype=np.float64)) for name in NUMERIC},
        "scores": score_profile(scores, positive, bins),
        "validation_metrics": metadata.validation_metrics,
    }


def score_profile(
    scores: NDArray[np.float64], positive: NDArray[np.bool_], bins: int
) -> dict[str, Any]:
    """The scores' quantile bins (drift's format, as a numeric feature), CDF and positive rate."""
    edges = quantile_edges(scores, bins)
    table = pd.DataFrame({SCORE: scores})
    binned = build_profile(table, numeric=[SCORE], categorical=[], label=None, bins=bins)
    entry: dict[str, Any] = binned["numeric"][SCORE]
    assert entry["edges"] == edges
    return {
        **entry,
        "ecdf": ecdf(scores),
        "positive_rate": float(np.mean(positive)) if len(positive) else 0.0,
    }
