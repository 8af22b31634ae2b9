"""Records and artifacts shared by the service tests (and the end-to-end test in tests/e2e)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app
from census_pipeline.api.settings import Settings
from census_pipeline.files import read_json, sha256_file, write_json_atomic

# Clearly a high earner: capital gains that size are nearly always >50K in the census.
HIGH_EARNER: dict[str, Any] = {
    "age": 45,
    "workclass": "Self-emp-inc",
    "fnlgt": 190000,
    "education": "Doctorate",
    "education-num": 16,
    "marital-status": "Married-civ-spouse",
    "occupation": "Exec-managerial",
    "relationship": "Husband",
    "race": "White",
    "sex": "Male",
    "capital-gain": 15024,
    "capital-loss": 0,
    "hours-per-week": 60,
    "native-country": "United-States",
}

# Clearly not: a teenager in part-time service work, living with parents.
LOW_EARNER: dict[str, Any] = {
    "age": 19,
    "workclass": "Private",
    "fnlgt": 200000,
    "education": "HS-grad",
    "education-num": 9,
    "marital-status": "Never-married",
    "occupation": "Other-service",
    "relationship": "Own-child",
    "race": "White",
    "sex": "Female",
    "capital-gain": 0,
    "capital-loss": 0,
    "hours-per-week": 20,
    "native-country": "United-States",
}


def underscored(record: dict[str, Any]) -> dict[str, Any]:
    return {key.replace("-", "_"): value for key, value in record.items()}


def bless(model_dir: Path, **changes: Any) -> dict[str, Any]:
    """Write a verdict for the model in `model_dir`, shaped like the gate's, with `changes`."""
    metadata = read_json(model_dir / "model.json")
    verdict: dict[str, Any] = {
        "blessed": True,
        "model_version": metadata["model_version"],
        "model_sha256": metadata["model_sha256"],
        "checks": [
            {
                "name": "roc_auc",
                "kind": "overall",
                "value": 0.93,
                "bound": ">= 0.9",
                "passed": True,
                "status": "passed",
                "enforced": True,
                "reason": "ROC AUC on the official test set is above the bound.",
            }
        ],
        "override": None,
        "headline_metrics": {
            "roc_auc": 0.93,
            "accuracy": 0.87,
            "f1": 0.71,
            "precision": 0.74,
            "recall": 0.69,
            "threshold": metadata["threshold"],
        },
        "inputs": {"model_metadata": sha256_file(model_dir / "model.json")},
    }
    verdict.update(changes)
    write_json_atomic(model_dir / "verdict.json", verdict)
    return verdict


def settings_for(folder: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_dir": folder,
        "model_card_path": folder / "model_card.html",
        **overrides,
    }
    return Settings(**values)


def started_client(settings: Settings) -> TestClient:
    """Enter with `with`: runs the lifespan, so start-up refusals raise there."""
    return TestClient(create_app(settings), raise_server_exceptions=False)
