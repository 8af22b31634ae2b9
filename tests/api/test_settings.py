"""Settings come from CENSUS_API_* variables, with safe defaults and refusals of unsafe values."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from census_pipeline.api.loading import METADATA_FILE, VERDICT_FILE
from census_pipeline.api.main import create_app
from census_pipeline.api.settings import Settings, setting_variables, unknown_variables
from census_pipeline.config import PathsParams

REPO = Path(__file__).resolve().parents[2]


def test_defaults_point_at_the_repository_and_are_safe() -> None:
    settings = Settings()
    # What `census-pipeline publish` wrote, never the pipeline's workspace (models/, reports/).
    assert settings.model_dir == REPO / "serving"
    assert settings.model_card_path == REPO / "serving" / "model_card.html"
    assert settings.api_key is None
    assert settings.max_batch_size == 10_000
    assert settings.allow_unblessed is False
    assert settings.enable_bare_endpoint is False


def test_values_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CENSUS_API_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("CENSUS_API_MAX_BATCH_SIZE", "50")
    monkeypatch.setenv("CENSUS_API_API_KEY", "a" * 32)
    monkeypatch.setenv("CENSUS_API_LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CENSUS_API_ALLOW_UNBLESSED", "true")
    settings = Settings()
    assert settings.model_dir == tmp_path.resolve()
    assert settings.max_batch_size == 50
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "a" * 32
    assert "a" * 32 not in repr(settings)
    assert settings.log_level == "debug"
    assert settings.allow_unblessed is True


def test_an_empty_variable_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENSUS_API_MAX_BATCH_SIZE", "")
    assert Settings().max_batch_size == Settings.model_fields["max_batch_size"].default


@pytest.mark.parametrize("value", ["", "   "])
def test_an_empty_api_key_refuses_to_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    # An empty key is a secret that did not arrive: serving openly would be silent.
    monkeypatch.setenv("census_api_api_key", value)
    with pytest.raises(ValidationError, match="CENSUS_API_API_KEY is set but empty"):
        Settings()
    monkeypatch.delenv("census_api_api_key")
    with pytest.raises(ValidationError, match="set but empty"):
        Settings(api_key=value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("api_key", "short"),
        ("max_batch_size", 0),
        ("max_body_bytes", 10),
        ("log_level", "chatty"),
        ("no_such_setting", 1),
    ],
)
def test_unsafe_or_unknown_values_are_refused(name: str, value: object) -> None:
    overrides: dict[str, Any] = {name: value}
    with pytest.raises(ValidationError, match=name):
        Settings(**overrides)


def test_file_names_agree_with_the_pipeline() -> None:
    paths = PathsParams()
    assert paths.verdict.name == VERDICT_FILE
    assert paths.model_metadata.name == METADATA_FILE
    settings = Settings()
    assert settings.model_dir.name == paths.serving_dir.name
    assert settings.model_card_path.name == paths.published_card.name


@pytest.mark.parametrize("name", ["CENSUS_API_KEY", "census_api_apikey", "CENSUS_API_MODELDIR"])
def test_a_mistyped_variable_is_refused_with_the_valid_names(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "b" * 32)
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert f"{name}: not a setting of the service" in message
    for valid in setting_variables():
        assert valid in message
    assert "CENSUS_API_API_KEY" in setting_variables()


def test_known_variables_in_any_case_are_not_unknown() -> None:
    environ = {"census_api_api_key": "x", "CENSUS_API_MODEL_DIR": "x", "PATH": "x", "CENSUS_X": "x"}
    assert unknown_variables(environ) == []
    assert unknown_variables({"CENSUS_API_KEY": "x"}) == ["CENSUS_API_KEY"]


def test_a_mistyped_variable_stops_create_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CENSUS_API_KEY", "b" * 32)
    with pytest.raises(ValidationError, match="CENSUS_API_KEY"):
        create_app()
