"""A real bug becomes a generic 500 (logged on the server), never a stack trace for the client."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from census_pipeline.api.main import create_app

from .service_samples import LOW_EARNER, settings_for


def test_unexpected_error_is_a_generic_500_and_logged(
    served_dir: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(settings_for(served_dir))
    with TestClient(app, raise_server_exceptions=False) as client:
        # Break the loaded predictor the way a bug in our code would.
        def broken(record: object) -> float:
            raise ZeroDivisionError("secret internal detail")

        monkeypatch.setattr(app.state.model.predictor, "probability_one", broken)
        with caplog.at_level(logging.ERROR, logger="census_pipeline.api"):
            response = client.post("/predict", json=LOW_EARNER)
    assert response.status_code == 500
    assert response.json() == {"detail": "internal server error"}
    assert "secret" not in response.text and "Traceback" not in response.text
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
