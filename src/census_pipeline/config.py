"""The one typed view of `params.yaml` (DVC's parameter file).

Every step receives the parts it needs as arguments, so the CLI, the DVC stages and the tests all
call the same functions. Relative paths in the file are resolved against the file's own folder,
so nothing depends on the directory a command happens to be started from.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from census_pipeline.errors import PipelineError

PARAMS_ENV = "CENSUS_PIPELINE_PARAMS"


class _Section(BaseModel):
    # A misspelt knob must fail loudly instead of being ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class PathsParams(_Section):
    raw_dir: Path = Path("data/raw")
    clean_dir: Path = Path("data/clean")
    model_dir: Path = Path("models")
    reports_dir: Path = Path("reports")
    baseline_dir: Path = Path("baseline")

    def resolved(self, root: Path) -> PathsParams:
        fields = {name: value for name, value in self if isinstance(value, Path)}
        return self.model_copy(update={name: (root / v).resolve() for name, v in fields.items()})

    # Artifact names live here so every step (and the service) agrees on them.
    @property
    def raw_manifest(self) -> Path:
        return self.raw_dir / "manifest.json"

    @property
    def clean_train(self) -> Path:
        return self.clean_dir / "train.parquet"

    @property
    def clean_test(self) -> Path:
        return self.clean_dir / "test.parquet"

    @property
    def data_reports_dir(self) -> Path:
        return self.reports_dir / "data"

    @property
    def data_report(self) -> Path:
        return self.data_reports_dir / "data_report.json"

    def quarantine(self, split: str) -> Path:
        return self.data_reports_dir / f"quarantine_{split}.csv"

    @property
    def model_file(self) -> Path:
        return self.model_dir / "model.txt"

    @property
    def model_metadata(self) -> Path:
        return self.model_dir / "model.json"

    @property
    def verdict(self) -> Path:
        return self.model_dir / "verdict.json"

    @property
    def evaluation_dir(self) -> Path:
        return self.reports_dir / "evaluation"

    @property
    def metrics(self) -> Path:
        return self.evaluation_dir / "metrics.json"

    @property
    def test_predictions(self) -> Path:
        return self.evaluation_dir / "test_predictions.parquet"

    @property
    def slices(self) -> Path:
        return self.evaluation_dir / "slices.csv"

    @property
    def slice_output(self) -> Path:
        return self.evaluation_dir / "slice_output.txt"

    def curve(self, name: str) -> Path:
        """DVC plot data: `roc`, `pr` or `calibration`."""
        return self.evaluation_dir / f"{name}.csv"

    @property
    def audit_dir(self) -> Path:
        return self.reports_dir / "audit"

    @property
    def card_dir(self) -> Path:
        return self.reports_dir / "card"

    @property
    def model_card_md(self) -> Path:
        return self.card_dir / "model_card.md"

    @property
    def model_card_html(self) -> Path:
        return self.card_dir / "model_card.html"


class DataParams(_Section):
    source_dir: Path | None = None
    download_timeout_s: float = Field(60, gt=0)
    max_quarantine_share: float = Field(0.01, ge=0, le=1)


class TrainParams(_Section):
    """Owned by the train step."""


class EvaluateParams(_Section):
    """Owned by the evaluate step (overall metrics and slices)."""


class AuditParams(_Section):
    """Owned by the audit step."""


class GateParams(_Section):
    """Owned by the gate step: the deploy policy."""


class Params(_Section):
    seed: int = 42
    paths: PathsParams = PathsParams()
    data: DataParams = DataParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    audit: AuditParams = AuditParams()
    gate: GateParams = GateParams()


def default_params_path() -> Path:
    """The params file: from the environment, else the repository this package is installed from."""
    if env := os.environ.get(PARAMS_ENV):
        return Path(env).expanduser().resolve()
    candidate = Path(__file__).resolve().parents[2] / "params.yaml"
    if candidate.is_file():
        return candidate
    raise PipelineError(
        f"no params.yaml found: pass --params or set {PARAMS_ENV} to the path of params.yaml"
    )


def load_params(path: Path | None = None) -> Params:
    """Read, validate and resolve the params file; a bad knob is an error naming the knob."""
    path = (path or default_params_path()).resolve()
    try:
        raw: Any = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise PipelineError(f"{path}: params file not found") from exc
    except yaml.YAMLError as exc:
        raise PipelineError(f"{path}: not valid YAML ({exc})") from exc
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PipelineError(f"{path}: {where}: {first['msg']}") from exc
    root = path.parent
    data = params.data
    if data.source_dir is not None:
        data = data.model_copy(update={"source_dir": (root / data.source_dir).resolve()})
    return params.model_copy(update={"paths": params.paths.resolved(root), "data": data})
