"""Model folders for the trust tests: a real (tiny) LightGBM model, metadata whose digest matches
it, and a verdict shaped like the gate's, each of which a test can then forge or sign.

The boosters are trained on a few hundred random rows in milliseconds, with any objective, so a
test can build the odd-but-parseable models (multi-class, regression) that the loader must refuse.
Metadata is written by hand here, not by `save_model` (which refuses non-binary models itself),
to play an attacker or a careless operator who makes the metadata match.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from census_pipeline.artifact import model_shape
from census_pipeline.files import json_bytes, sha256_bytes
from census_pipeline.verdict import Verdict

FEATURES = ("age", "hours-per-week", "education-num")
RECORD = {"age": 40, "hours-per-week": 45, "education-num": 13}


@functools.cache
def booster_text(
    objective: str = "binary",
    num_class: int = 1,
    num_features: int = len(FEATURES),
    rounds: int = 2,
    seed: int = 0,
) -> str:
    """A LightGBM text model trained on random rows: `num_class` classes for multi-class."""
    rng = np.random.default_rng(seed)
    x = rng.random((300, num_features))
    if objective.startswith("multiclass"):
        y = rng.integers(0, num_class, 300).astype(float)
    elif objective in ("regression", "huber", "poisson"):
        y = rng.random(300) * 10
    else:
        y = (x[:, 0] > 0.5).astype(float)
    settings: dict[str, Any] = {"objective": objective, "verbosity": -1, "num_threads": 1}
    if objective.startswith("multiclass"):
        settings["num_class"] = num_class
    names = [*FEATURES, *(f"extra_{i}" for i in range(num_features))][:num_features]
    dataset = lgb.Dataset(x, y, feature_name=names, params={"verbosity": -1})
    booster = lgb.train(settings, dataset, num_boost_round=rounds)
    return str(booster.model_to_string())


def metadata_for(text: str, **changes: Any) -> dict[str, Any]:
    """Metadata that matches `text` (digest, features, trees, declared shape), then `changes`."""
    digest = sha256_bytes(text.encode("utf-8"))
    booster = lgb.Booster(model_str=text)
    shape = model_shape(text, Path("model.txt"))
    metadata: dict[str, Any] = {
        "model_version": f"0.1.0+{digest[:12]}",
        "feature_names": list(booster.feature_name()),
        "categorical_features": [],
        "categories": {},
        "excluded_features": [],
        "threshold": 0.5,
        "threshold_rule": "fixed for the tests",
        "fbeta_beta": 1.0,
        "params": {},
        "num_trees": booster.num_trees(),
        "model_shape": shape.model_dump(),
        "train_data_sha256": "ab" * 32,
        "model_sha256": digest,
        "package_version": "0.1.0",
        "lightgbm_version": lgb.__version__,
        "validation_metrics": {},
        "tuning": {},
    }
    return {**metadata, **changes}


def check(name: str, passed: bool | None, enforced: bool = True) -> dict[str, Any]:
    status = {True: "passed", False: "failed", None: "skipped"}[passed]
    return {
        "name": name,
        "kind": "overall",
        "value": None if passed is None else 0.9,
        "bound": ">= 0.85",
        "passed": passed,
        "status": status,
        "enforced": enforced,
        "reason": f"{name} {status}.",
        "detail": {},
    }


def verdict_for(
    model_sha256: str, metadata_sha256: str, *, failed: tuple[str, ...] = (), **changes: Any
) -> dict[str, Any]:
    """A verdict the gate could have written: blessed exactly when nothing enforced failed."""
    checks = [check("overall:roc_auc", True), *(check(name, False) for name in failed)]
    verdict: dict[str, Any] = {
        "blessed": not failed,
        "model_version": f"0.1.0+{model_sha256[:12]}",
        "model_sha256": model_sha256,
        "created_at": "2026-01-02T03:04:05+00:00",
        "checks": checks,
        "override": None,
        "policy": {},
        "headline_metrics": {"roc_auc": 0.9, "threshold": 0.5},
        "baseline": None,
        "inputs": {"model_metadata": metadata_sha256, "metrics": "cd" * 32},
        "signature": None,
    }
    Verdict.model_validate(verdict)  # the helper itself must write a well-formed verdict
    return {**verdict, **changes}


def write_folder(
    folder: Path,
    text: str | None = None,
    metadata: dict[str, Any] | None = None,
    verdict: dict[str, Any] | None = None,
    **verdict_changes: Any,
) -> dict[str, Any]:
    """Write model.txt, model.json and verdict.json into `folder`; return the verdict written.

    By default: a tiny binary model, matching metadata and a consistent blessed verdict.
    """
    folder.mkdir(parents=True, exist_ok=True)
    text = booster_text() if text is None else text
    metadata = metadata_for(text) if metadata is None else metadata
    metadata_bytes = json_bytes(metadata)
    (folder / "model.txt").write_text(text, encoding="utf-8")
    (folder / "model.json").write_bytes(metadata_bytes)
    if verdict is None:
        verdict = verdict_for(metadata["model_sha256"], sha256_bytes(metadata_bytes))
    verdict = {**verdict, **verdict_changes}
    (folder / "verdict.json").write_bytes(json_bytes(verdict))
    return verdict
