"""The service refuses to start on a missing, tampered or unblessed model, with a clear reason."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from census_pipeline.api.loading import METADATA_INPUT
from census_pipeline.api.main import StartupRefused
from census_pipeline.files import read_json, sha256_file, write_json_atomic

from .service_samples import LOW_EARNER, bless, settings_for, started_client


def _refusal(folder: Path, caplog: pytest.LogCaptureFixture, **overrides: object) -> str:
    with (
        caplog.at_level(logging.CRITICAL, logger="census_pipeline.api"),
        pytest.raises(StartupRefused) as refused,
        started_client(settings_for(folder, **overrides)),
    ):
        pass  # pragma: no cover - start-up must fail before this line
    message = str(refused.value)
    assert any("refusing to start" in r.getMessage() for r in caplog.records)
    return message


def test_missing_model_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    message = _refusal(tmp_path / "nowhere", caplog)
    assert "model folder not found" in message and "CENSUS_API_MODEL_DIR" in message


def test_missing_model_file(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    (model_copy / "model.txt").unlink()
    assert "model.txt: not found" in _refusal(model_copy, caplog)


def test_tampered_model(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = model_copy / "model.txt"
    model.write_text(model.read_text(encoding="utf-8").replace("0.", "0.0", 1), encoding="utf-8")
    assert "does not match" in _refusal(model_copy, caplog)


def test_truncated_model(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = model_copy / "model.txt"
    model.write_bytes(model.read_bytes()[:1000])
    assert "sha256" in _refusal(model_copy, caplog)


def test_no_verdict(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    (model_copy / "verdict.json").unlink()
    assert "census-pipeline gate" in _refusal(model_copy, caplog)


def test_unblessed_verdict(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    verdict = bless(model_copy, blessed=False)
    verdict["checks"][0].update(passed=False, status="failed")
    bless(model_copy, blessed=False, checks=verdict["checks"])
    message = _refusal(model_copy, caplog)
    assert "did not bless" in message and "roc_auc" in message
    assert "CENSUS_API_ALLOW_UNBLESSED" in message


def test_verdict_for_another_model(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    bless(model_copy, model_sha256="0" * 64)
    assert "another model" in _refusal(model_copy, caplog)


def test_malformed_verdict(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    (model_copy / "verdict.json").write_text('{"blessed": "perhaps"}', encoding="utf-8")
    assert "verdict.json" in _refusal(model_copy, caplog)


def test_allow_unblessed_serves_and_says_so(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bless(model_copy, blessed=False)
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        started_client(settings_for(model_copy, allow_unblessed=True)) as client,
    ):
        assert client.get("/ready").json()["blessed"] is False
        assert client.get("/model").json()["blessed"] is False
        assert client.post("/predict", json=LOW_EARNER).status_code == 200
    assert any("UNBLESSED" in r.getMessage() for r in caplog.records)


def test_allow_unblessed_still_refuses_a_tampered_model(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = model_copy / "model.txt"
    model.write_bytes(model.read_bytes() + b"\n")
    assert "does not match" in _refusal(model_copy, caplog, allow_unblessed=True)


def test_override_blessing_is_served_and_logged(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bless(model_copy, override={"reason": "approved by the review board", "failed_checks": []})
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        started_client(settings_for(model_copy)) as client,
    ):
        assert client.get("/model").json()["verdict"]["override"]["reason"]
    assert any("review board" in r.getMessage() for r in caplog.records)


def _edit_metadata(folder: Path, **changes: object) -> None:
    metadata = read_json(folder / "model.json")
    metadata.update(changes)
    write_json_atomic(folder / "model.json", metadata)


def test_the_gates_verdict_records_the_metadata_digest_under_the_key_the_service_reads(
    served_dir: Path,
) -> None:
    inputs = read_json(served_dir / "verdict.json")["inputs"]
    assert inputs[METADATA_INPUT] == sha256_file(served_dir / "model.json")


def test_edited_metadata_is_refused(model_copy: Path, caplog: pytest.LogCaptureFixture) -> None:
    # The real gate's verdict, untouched: only the threshold in model.json changes.
    _edit_metadata(model_copy, threshold=0.001)
    message = _refusal(model_copy, caplog)
    assert "model.json was changed after the gate judged it" in message
    assert "census-pipeline gate" in message


def test_verdict_without_a_metadata_digest_is_not_a_blessing(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    bless(model_copy, inputs={"metrics": "0" * 64})
    message = _refusal(model_copy, caplog)
    assert "does not record which model.json it judged" in message
    assert "inputs.model_metadata" in message


def test_allow_unblessed_serves_edited_metadata_as_unblessed(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _edit_metadata(model_copy, threshold=0.001)
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        started_client(settings_for(model_copy, allow_unblessed=True)) as client,
    ):
        assert client.get("/ready").json()["blessed"] is False
        info = client.get("/model").json()
        assert info["blessed"] is False and info["threshold"] == 0.001
    assert any("UNBLESSED" in r.getMessage() for r in caplog.records)


def test_allow_unblessed_still_refuses_metadata_the_predictor_rejects(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # model.json naming another model file: the Predictor's own check, which no setting lifts.
    _edit_metadata(model_copy, model_sha256="0" * 64)
    bless(model_copy, blessed=False)
    assert "does not match" in _refusal(model_copy, caplog, allow_unblessed=True)


@pytest.mark.parametrize("name", ["model.txt", "model.json"])
def test_a_folder_where_a_model_file_should_be_is_one_clear_line(
    model_copy: Path, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    (model_copy / name).unlink()
    (model_copy / name).mkdir()
    message = _refusal(model_copy, caplog)
    assert name in message and "cannot read" in message


def test_cli_serve_refuses_a_model_folder_in_one_line(
    model_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from census_pipeline.cli import app

    (model_copy / "model.txt").unlink()
    (model_copy / "model.txt").mkdir()
    monkeypatch.setenv("CENSUS_API_MODEL_DIR", str(model_copy))
    monkeypatch.setenv("CENSUS_API_MODEL_CARD_PATH", str(model_copy / "model_card.html"))
    result = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert result.exit_code == 1
    (line,) = result.output.strip().splitlines()
    assert line.startswith("error: ") and "model.txt: cannot read the model file" in line
    assert "Traceback" not in result.output
