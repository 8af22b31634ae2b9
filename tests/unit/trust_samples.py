"""Crafted evaluation outputs for the audit, gate and card tests: small, hand-countable, quick.

Every artifact the trust steps read is written here in the shape the evaluate and train steps
produce, so these tests need no trained model. The numbers are chosen by hand so that the
expected group metrics, disparities and verdicts can be worked out on paper.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pandas as pd
from conftest import make_project

from census_pipeline.config import PREDICTIONS_MODEL_KEY, Params
from census_pipeline.files import (
    parquet_bytes,
    sha256_bytes,
    sha256_file,
    write_bytes_atomic,
    write_json_atomic,
)

# (race, sex, label, prediction) rows, counted by hand in test_audit.py.
TINY_ROWS: tuple[tuple[str, str, int, int], ...] = (
    # White Male: TP TP FP TN TN FN
    ("White", "Male", 1, 1), ("White", "Male", 1, 1), ("White", "Male", 0, 1),
    ("White", "Male", 0, 0), ("White", "Male", 0, 0), ("White", "Male", 1, 0),
    # Black Male: TP TN TN FN
    ("Black", "Male", 1, 1), ("Black", "Male", 0, 0), ("Black", "Male", 0, 0),
    ("Black", "Male", 1, 0),
    # White Female: TP FP TN TN TN
    ("White", "Female", 1, 1), ("White", "Female", 0, 1), ("White", "Female", 0, 0),
    ("White", "Female", 0, 0), ("White", "Female", 0, 0),
    # Black Female: TN TN FN
    ("Black", "Female", 0, 0), ("Black", "Female", 0, 0), ("Black", "Female", 1, 0),
)  # fmt: skip

# Confusion cells (tp, fp, tn, fn) per (race, sex): positive predictions are equally reliable
# everywhere (FDR 0.25), while women get far fewer false positives and more misses than men.
FAIR_ON_FDR_CELLS: dict[tuple[str, str], tuple[int, int, int, int]] = {
    ("White", "Male"): (300, 100, 500, 100),
    ("White", "Female"): (60, 20, 400, 40),
    ("Black", "Male"): (30, 10, 60, 10),
    ("Black", "Female"): (12, 4, 80, 8),
    ("Asian-Pac-Islander", "Male"): (5, 2, 10, 3),
}

GOOD_METRICS: dict[str, Any] = {
    "threshold": 0.37,
    "fbeta_beta": 1.0,
    "n": 16281,
    "positives": 3846,
    "prevalence": 3846 / 16281,
    "precision": 0.7012,
    "recall": 0.7389,
    "fbeta": 0.7196,
    "f1": 0.7196,
    "fpr": 1208 / (1208 + 11227),
    "accuracy": 0.8621,
    "accuracy_at_half": 0.8731,
    "roc_auc": 0.9281,
    "pr_auc": 0.8302,
    "log_loss": 0.2771,
    "brier": 0.0889,
    "confusion_matrix": {"tn": 11227, "fp": 1208, "fn": 1004, "tp": 2842},
}
THRESHOLD_RULE = "maximise F1 on the validation split"
SLICE_SETTINGS = {"confidence": 0.95, "bootstrap_resamples": 1000, "min_slice_size": 30}


def frame_from_rows(rows: tuple[tuple[str, str, int, int], ...], repeat: int = 1) -> pd.DataFrame:
    frame = pd.DataFrame(rows * repeat, columns=["race", "sex", "label", "prediction"])
    frame["score"] = frame["prediction"] * 0.6 + 0.2
    return frame


def frame_from_cells(cells: dict[tuple[str, str], tuple[int, int, int, int]]) -> pd.DataFrame:
    rows: list[tuple[str, str, int, int]] = []
    for (race, sex), (tp, fp, tn, fn) in cells.items():
        for count, label, prediction in ((tp, 1, 1), (fp, 0, 1), (tn, 0, 0), (fn, 1, 0)):
            rows.extend([(race, sex, label, prediction)] * count)
    return frame_from_rows(tuple(rows))


def as_categories(frame: pd.DataFrame) -> pd.DataFrame:
    """The clean step stores attributes as pandas categories; the audit must cope with that."""
    out = frame.copy()
    for column in ("race", "sex"):
        out[column] = out[column].astype("category")
    return out


def slices_table(overrides: dict[tuple[str, str], dict[str, float]] | None = None) -> pd.DataFrame:
    """A slices.csv in the evaluate step's shape; `overrides` replaces chosen values."""
    base = [
        ("sex", "Male", 10860, 3256, 0.72, 0.78),
        ("sex", "Female", 5421, 590, 0.66, 0.68),
        ("race", "White", 13946, 3490, 0.72, 0.77),
        ("race", "Black", 1561, 179, 0.62, 0.64),
        ("race", "Other", 135, 25, 0.55, 0.60),
        ("race", "Amer-Indian-Eskimo", 60, 8, 0.20, 0.25),
    ]
    records = []
    for feature, value, n, positives, recall, f1 in base:
        record: dict[str, Any] = {
            "feature": feature,
            "value": value,
            "n": n,
            "positives": positives,
            "small": n < 30,
        }
        for metric, centre in (
            ("precision", 0.7),
            ("recall", recall),
            ("f1", f1),
            ("fpr", 0.08),
            ("fnr", 1 - recall),
        ):
            record.update({metric: centre, f"{metric}_ci_low": centre - 0.05})
            record[f"{metric}_ci_high"] = centre + 0.05
        record.update((overrides or {}).get((feature, value), {}))
        records.append(record)
    return pd.DataFrame(records)


def metadata(model_text: bytes = b"tree\n") -> dict[str, Any]:
    digest = sha256_bytes(model_text)
    return {
        "model_version": f"0.1.0+{digest[:12]}",
        "model_sha256": digest,
        "train_data_sha256": "ab" * 32,
        "threshold": GOOD_METRICS["threshold"],
        "threshold_rule": THRESHOLD_RULE,
        "fbeta_beta": 1.0,
        "params": {"learning_rate": 0.05, "num_leaves": 31, "feature_fraction": 0.8, "seed": 42},
        "num_trees": 412,
        "model_shape": {
            "objective": "binary",
            "num_class": 1,
            "num_model_per_iteration": 1,
            "num_features": 3,
        },
        "validation_metrics": {"roc_auc": 0.931, "f1": 0.725},
        "tuning": {"selection": "lowest validation log loss", "candidates": [{}, {}]},
        "feature_names": ["age", "race", "sex"],
        "categorical_features": ["race", "sex"],
        "categories": {"race": ["White", "Black"], "sex": ["Female", "Male"]},
        "excluded_features": ["fnlgt"],
        "package_version": "0.1.0",
        "lightgbm_version": "4.7.0",
    }


def trust_project(
    root: Path,
    overrides: dict[str, object] | None = None,
    predictions: pd.DataFrame | None = None,
    metrics: dict[str, Any] | None = None,
    slices: pd.DataFrame | None = None,
) -> Params:
    """A temp project holding crafted evaluation outputs and model metadata, with no baseline.

    The outputs carry the identity evaluate gives them: the predictions name the model, and
    metrics.json names the model and the digests of the slices and predictions beside it."""
    params = make_project(root, overrides)
    shutil.rmtree(params.paths.baseline_dir, ignore_errors=True)
    paths = params.paths
    paths.evaluation_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(paths.model_metadata, metadata())
    frame = predictions if predictions is not None else frame_from_cells(FAIR_ON_FDR_CELLS)
    write_predictions(params, frame)
    (slices if slices is not None else slices_table()).to_csv(paths.slices, index=False)
    write_metrics(params, metrics if metrics is not None else GOOD_METRICS)
    return params


def write_predictions(params: Params, frame: pd.DataFrame, model_sha256: str | None = None) -> None:
    """test_predictions.parquet as evaluate writes it, naming the model that scored it."""
    model = model_sha256 or metadata()["model_sha256"]
    data = parquet_bytes(frame, {PREDICTIONS_MODEL_KEY: model})
    write_bytes_atomic(params.paths.test_predictions, data)


def identity(params: Params) -> dict[str, Any]:
    """The identity evaluate records: the model, its settings and the files written."""
    paths = params.paths
    return {
        "model_version": metadata()["model_version"],
        "model_sha256": metadata()["model_sha256"],
        "threshold_rule": THRESHOLD_RULE,
        "slice_settings": SLICE_SETTINGS,
        "outputs_sha256": {
            "metrics": sha256_file(paths.metrics),
            "slices": sha256_file(paths.slices),
            "test_predictions": sha256_file(paths.test_predictions),
        },
    }


def write_metrics(params: Params, metrics: dict[str, Any]) -> None:
    """metrics.json (numbers only) and identity.json naming it, as evaluate writes them."""
    write_json_atomic(params.paths.metrics, metrics)
    write_json_atomic(params.paths.evaluation_identity, identity(params))


def data_report() -> dict[str, Any]:
    """The validate step's report, trimmed to the fields the card reads."""

    def split(file: str, layout: str, rows: int, positives: int) -> dict[str, Any]:
        return {
            "file": file,
            "layout": layout,
            "sha256": sha256_bytes(file.encode()),
            "source": "local-folder",
            "rows": rows,
            "valid_rows": rows - 3,
            "quarantined_rows": 3,
            "exact_duplicates": 24,
            "missing": {"workclass": 1836, "occupation": 1843, "age": 0},
            "labels": {
                ">50K": {"rows": positives, "share": positives / (rows - 3)},
                "<=50K": {"rows": rows - 3 - positives, "share": 1 - positives / (rows - 3)},
            },
        }

    train = split("census.csv", "course-csv", 32561, 7841)
    # As ingest records a user's re-saved copy: the card must say it is not a known release.
    train |= {"origin": "census.csv", "release": "user-supplied", "separator": "comma"}
    train |= {"line_ending": "CRLF", "bom": True, "compression": "gzip", "label_suffix": ""}
    return {
        "max_quarantine_share": 0.01,
        "splits": {"train": train, "test": split("adult.test", "uci", 16284, 3846)},
        "shift": {
            "baseline": "baseline/train_profile.json",
            "status": "compared",
            "baseline_data": {"file": "adult.data", "release": "UCI adult.data"},
            "rows": {"reference": 30000, "current": 32561},
            "label_share": {"reference": 0.2, "current": 0.2408},
            "features": {
                "age": {"kind": "numeric", "psi": 0.31, "level": "major"},
                "sex": {"kind": "categorical", "psi": 0.002, "level": "stable"},
                "workclass": {"kind": "categorical", "psi": 0.12, "level": "moderate"},
            },
            "max_psi": 0.31,
            "max_psi_feature": "age",
        },
    }


def write_curves(params: Params) -> None:
    """ROC, PR and calibration tables in the evaluate step's column layout."""
    grid = [i / 10 for i in range(11)]
    roc = pd.DataFrame({"fpr": grid, "tpr": [x**0.3 for x in grid], "threshold": grid[::-1]})
    pr = pd.DataFrame({"recall": grid, "precision": [1 - 0.6 * x**2 for x in grid]})
    pr["threshold"] = grid[::-1]
    calibration = pd.DataFrame(
        {
            "bin": range(5),
            "mean_predicted": [0.05, 0.25, 0.45, 0.65, 0.9],
            "fraction_positive": [0.04, 0.27, 0.44, 0.68, 0.91],
            "count": [9000, 2500, 1800, 1500, 1481],
        }
    )
    for name, table in (("roc", roc), ("pr", pr), ("calibration", calibration)):
        table.to_csv(params.paths.curve(name), index=False)
    write_json_atomic(params.paths.data_report, data_report())
    importance = pd.DataFrame(
        {"feature": ["relationship", "capital-gain", "age"], "mean_abs_shap": [0.9, 0.6, 0.3]}
    )
    importance.to_csv(params.paths.importance, index=False)
    write_tradeoff(params)


def tradeoff_summary(configured: str = "none") -> dict[str, Any]:
    """reports/fairness/tradeoff.json as the tradeoff step writes it, with crafted numbers."""
    fnr = {"none": 1.3, "reweighing": 0.76, "group_thresholds": 1.05, "threshold_optimizer": 1.1}
    accuracy = {"none": 0.868, "reweighing": 0.859, "group_thresholds": 0.866}

    def entry(disparity: float) -> dict[str, Any]:
        status = "fair" if 0.8 <= disparity <= 1.25 else "unfair"
        unfair = ["Female"] if status == "unfair" else []
        return {"group": "Female", "disparity": disparity, "p_holm": 0.01, "status": status,
                "unfair": unfair}  # fmt: skip

    def result(method: str) -> dict[str, Any]:
        parity = {"fnr": entry(fnr[method]), "fdr": entry(1.0), "fpr": entry(0.3),
                  "pprev": entry(0.4)}  # fmt: skip
        return {
            "accuracy": accuracy.get(method, 0.872),
            "roc_auc": 0.9286 if method != "reweighing" else 0.9227,
            "f1": 0.72,
            "parities": dict.fromkeys(("race", "sex", "race x sex"), parity),
        }

    return {
        "configured": configured,
        "model_version": metadata()["model_version"],
        "servable": ["none", "reweighing", "group_thresholds"],
        "parities": ["fnr", "fdr", "fpr", "pprev"],
        "attributes": ["race", "sex", "race x sex"],
        "band": [0.8, 1.25],
        "methods": {m: {"validation": result(m), "test": result(m)} for m in fnr},
    }


def write_tradeoff(params: Params, configured: str = "none") -> None:
    write_json_atomic(params.paths.tradeoff_summary, tradeoff_summary(configured))
    figure = params.paths.tradeoff_figure
    figure.parent.mkdir(parents=True, exist_ok=True)
    figure.write_bytes(_png())


def _png() -> bytes:
    from census_pipeline.audit import new_figure, png_bytes

    return png_bytes(new_figure(1, 1))
