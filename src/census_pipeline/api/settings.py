"""The service's settings: one typed object read from the environment (prefix `CENSUS_API_`).

Containers and platforms configure the service through environment variables only, so secrets
never sit in a file in the image. Unsafe values are refused when the settings are built, before
the server binds a port, and so is any `CENSUS_API_*` variable that names no setting: a mistyped
`CENSUS_API_KEY` would otherwise leave the service open without a word.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "CENSUS_API_"
MIN_API_KEY_LENGTH = 16
API_KEY_VARIABLE = f"{ENV_PREFIX}API_KEY"

# src/census_pipeline/api/settings.py -> the repository root of an editable or source install.
_REPO_ROOT = Path(__file__).resolve().parents[3]

LogLevel = Literal["critical", "error", "warning", "info", "debug"]


def default_model_dir() -> Path:
    """The repository's `serving/`, written only by `census-pipeline publish` (never by a
    pipeline stage, so a failed experiment cannot take the served model away)."""
    return _REPO_ROOT / "serving"


def default_model_card() -> Path:
    """The model card `census-pipeline publish` copied beside the served model."""
    return _REPO_ROOT / "serving" / "model_card.html"


class Settings(BaseSettings):
    """Everything an operator may tune; each field is `CENSUS_API_<NAME>` in the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    model_dir: Path = Field(
        default_factory=default_model_dir,
        description="Folder holding model.txt, model.json and verdict.json.",
    )
    model_card_path: Path = Field(
        default_factory=default_model_card,
        description="The HTML model card served at /model-card (optional file).",
    )
    api_key: SecretStr | None = Field(
        None,
        description="When set, /predict and /predict/batch require it in the X-API-Key header.",
    )
    max_batch_size: int = Field(10_000, ge=1, le=1_000_000)
    max_explain_batch_size: int = Field(
        1_000,
        ge=1,
        le=1_000_000,
        description="Records per /predict/batch?explain=true call; more is 413. Explaining "
        "costs about 50 times what scoring does.",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Larger bodies on batch routes get 413 (10,000 records take about 4 MB "
        "of JSON).",
    )
    max_record_body_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="Larger bodies on single-record routes (/predict) get 413; a record is "
        "about 330 bytes.",
    )
    body_timeout_s: float = Field(
        15.0,
        gt=0,
        le=3600,
        description="A request body must arrive whole within this time (408 and the "
        "connection closed otherwise).",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Request line plus headers over this size are refused (431) by the server.",
    )
    limit_concurrency: int = Field(
        256,
        ge=1,
        description="Open connections plus in-flight requests per worker before new requests "
        "get 503 from the server.",
    )
    explain_concurrency: int = Field(
        1,
        ge=1,
        le=64,
        description="Explanations (?explain=true) computed at once per worker, each on one "
        "thread; the rest wait their turn.",
    )
    drain_s: float = Field(
        1.0,
        ge=0,
        le=300,
        description="After SIGTERM, how long /ready answers 503 while requests are still "
        "served, so a load balancer stops sending new ones.",
    )
    graceful_shutdown_s: int = Field(
        10,
        ge=1,
        le=3600,
        description="After the drain, how long in-flight requests may take before they are "
        "cancelled and the process exits.",
    )
    oip_model_name: str = Field(
        "census",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
        description="The model's name in the Open Inference Protocol's paths (/v2/models/<name>).",
    )
    log_level: LogLevel = "info"
    allow_unblessed: bool = Field(
        False,
        description="Serve a model the gate did not bless (development only; logged loudly).",
    )
    access_log: bool = Field(
        False,
        description="Log one line per request through uvicorn's access logger.",
    )
    enable_bare_endpoint: bool = Field(
        False,
        description="Expose POST /bench/bare, a benchmark baseline that validates and returns "
        "a constant.",
    )

    # --- monitoring: the prediction log, /metrics and /monitoring (docs/monitoring.md) ---------
    prediction_log: bool = Field(
        True, description="Log every scored record to the database (off: nothing is stored)."
    )
    database_url: SecretStr | None = Field(
        None,
        description="SQLAlchemy URL of the prediction log, e.g. "
        "postgresql+psycopg://user:pw@host/db (default: the SQLite file "
        "logs/predictions.sqlite beside the model folder).",
    )
    log_queue_capacity: int = Field(
        100_000, ge=1, description="Records waiting to be written; beyond it they are dropped."
    )
    log_batch_size: int = Field(1_000, ge=1, description="Records per INSERT batch.")
    log_flush_seconds: float = Field(
        0.2, gt=0, le=60, description="Longest wait before a partial batch is written."
    )
    log_omit_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated features never stored (personal data)."
    )
    log_hash_fields: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="Comma-separated features stored only as a keyed hash (HMAC-SHA256)."
    )
    log_hash_key: SecretStr | None = Field(
        None, description="The HMAC key for log_hash_fields (at least 16 characters)."
    )
    log_retention_days: float | None = Field(
        None, gt=0, description="Delete logged records (and their feedback) older than this."
    )
    monitoring_dir: Path | None = Field(
        None,
        description="The folder `census-pipeline monitor` writes (report.html, report.json), "
        "served at /monitoring.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: Any) -> Any:
        if unknown := unknown_variables(os.environ):
            raise ValueError(
                f"{', '.join(unknown)}: not a setting of the service (a typo?); "
                f"the settings are {', '.join(setting_variables())}"
            )
        return data

    @model_validator(mode="before")
    @classmethod
    def _no_empty_key(cls, data: Any) -> Any:
        # Empty variables count as unset, but an empty key is almost always a secret that did
        # not reach the container: serving openly then would be silent. Refuse to start.
        given = [value for name, value in os.environ.items() if name.upper() == API_KEY_VARIABLE]
        if isinstance(data, dict) and isinstance(data.get("api_key"), str):
            given.append(data["api_key"])
        if any(not value.strip() for value in given):
            raise ValueError(
                f"{API_KEY_VARIABLE} is set but empty: unset it to serve without a key, or give "
                f"a key of at least {MIN_API_KEY_LENGTH} characters"
            )
        return data

    @field_validator("model_dir", "model_card_path", "monitoring_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        # Resolve once so log lines and error messages name the real file.
        return None if value is None else value.expanduser().resolve()

    @field_validator("log_omit_fields", "log_hash_fields", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("log_hash_key")
    @classmethod
    def _strong_hash_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters")
        return value

    @model_validator(mode="after")
    def _redaction_is_valid(self) -> Settings:
        from census_pipeline.predlog.privacy import Redaction

        key = self.log_hash_key.get_secret_value().encode() if self.log_hash_key else None
        Redaction.of(self.log_omit_fields, self.log_hash_fields, key)  # raises ValueError
        return self

    def log_database_url(self) -> str:
        """Where the prediction log lives: the setting, else a SQLite file beside the models."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        from census_pipeline.predlog.database import default_log_database

        return f"sqlite:///{default_log_database(self.model_dir)}"

    @field_validator("log_level", mode="before")
    @classmethod
    def _lowercase(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("api_key")
    @classmethod
    def _strong_key(cls, value: SecretStr | None) -> SecretStr | None:
        # A short key is guessable; refuse it rather than give a false sense of protection.
        if value is not None and len(value.get_secret_value()) < MIN_API_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_API_KEY_LENGTH} characters")
        return value


def setting_variables() -> list[str]:
    """Every environment variable the service reads, e.g. `CENSUS_API_MODEL_DIR`."""
    return [f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields]


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """`CENSUS_API_*` names (any case, as the settings read them) that name no setting."""
    known = {name.lower() for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.upper().startswith(ENV_PREFIX) and name[len(ENV_PREFIX) :].lower() not in known
    )
