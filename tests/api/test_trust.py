"""The service applies the shared trust check: forged verdicts and bad signatures keep it down.

The model, metadata and verdict are the session pipeline's real ones; each test forges or signs
a copy, as an attacker or a careless operator with write access to the model folder would.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from census_pipeline.api.main import StartupRefused
from census_pipeline.files import json_bytes, read_json
from census_pipeline.gate import signed
from census_pipeline.signing import (
    VERIFY_KEY_FILE_ENV,
    card_seal,
    card_seal_path,
    keygen,
    signing_key_from_env,
)
from census_pipeline.trust import UNSIGNED_WARNING
from census_pipeline.verdict import Verdict

from .service_samples import LOW_EARNER, settings_for, started_client


def _refused(folder: Path) -> str:
    with pytest.raises(StartupRefused) as refused, started_client(settings_for(folder)):
        pass  # pragma: no cover - start-up must fail before this line
    return str(refused.value)


def _fail_a_check(folder: Path, **changes: object) -> None:
    """The real verdict, with its first enforced check failed and `changes` applied."""
    verdict = read_json(folder / "verdict.json")
    first = next(c for c in verdict["checks"] if c["enforced"])
    first.update(passed=False, status="failed")
    verdict.update(changes)
    (folder / "verdict.json").write_bytes(json_bytes(verdict))


def _sign(folder: Path, key: Ed25519PrivateKey) -> None:
    verdict = Verdict.model_validate_json((folder / "verdict.json").read_bytes())
    (folder / "verdict.json").write_bytes(json_bytes(signed(verdict, key).model_dump(mode="json")))


def test_a_hand_flipped_blessing_is_refused(model_copy: Path) -> None:
    _fail_a_check(model_copy, blessed=True)
    message = _refused(model_copy)
    assert "not a verdict the gate wrote" in message and "blessed=True although" in message


@pytest.mark.parametrize("value", ["yes", 1])
def test_a_blessing_that_is_not_a_boolean_is_refused(model_copy: Path, value: object) -> None:
    verdict = read_json(model_copy / "verdict.json")
    (model_copy / "verdict.json").write_bytes(json_bytes({**verdict, "blessed": value}))
    assert "blessed: Input should be a valid boolean" in _refused(model_copy)


def test_an_override_that_names_no_failed_check_is_refused(model_copy: Path) -> None:
    _fail_a_check(model_copy, override={"reason": "trust me", "failed_checks": []})
    assert "the override names failed checks []" in _refused(model_copy)


def test_without_a_verify_key_the_service_warns_that_the_chain_is_unsigned(
    model_copy: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        started_client(settings_for(model_copy)) as client,
    ):
        assert client.get("/ready").status_code == 200
    assert UNSIGNED_WARNING in caplog.text


@pytest.fixture
def keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ed25519PrivateKey:
    """A key pair whose public half the service is configured with, as an operator would."""
    private, public = keygen(tmp_path / "keys")
    monkeypatch.setenv(VERIFY_KEY_FILE_ENV, str(public))
    monkeypatch.setenv("CENSUS_SIGNING_KEY_FILE", str(private))
    key = signing_key_from_env()
    monkeypatch.delenv("CENSUS_SIGNING_KEY_FILE")
    assert key is not None
    return key


def test_with_a_verify_key_an_unsigned_verdict_is_refused(
    model_copy: Path, keys: Ed25519PrivateKey
) -> None:
    message = _refused(model_copy)
    assert "not signed, and a verify key is configured" in message
    assert "CENSUS_API_ALLOW_UNBLESSED" in message


def test_with_a_verify_key_a_signed_verdict_is_served(
    model_copy: Path, keys: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    _sign(model_copy, keys)
    with (
        caplog.at_level(logging.INFO, logger="census_pipeline.api"),
        started_client(settings_for(model_copy)) as client,
    ):
        assert client.get("/ready").json()["blessed"] is True
        assert client.post("/predict", json=LOW_EARNER).status_code == 200
    assert "signed by key" in caplog.text and UNSIGNED_WARNING not in caplog.text


def test_with_a_verify_key_a_verdict_re_signed_by_another_key_is_refused(
    model_copy: Path, keys: Ed25519PrivateKey
) -> None:
    _fail_a_check(model_copy, blessed=False)
    _sign(model_copy, keys)
    verdict = read_json(model_copy / "verdict.json")
    # The attacker fixes the forged verdict's consistency and signs it with their own key.
    verdict["override"] = {
        "reason": "mine",
        "failed_checks": [
            c["name"] for c in verdict["checks"] if c["status"] == "failed" and c["enforced"]
        ],
    }
    verdict["blessed"] = True
    (model_copy / "verdict.json").write_bytes(json_bytes(verdict))
    _sign(model_copy, Ed25519PrivateKey.generate())
    assert "not among the accepted keys" in _refused(model_copy)


def test_with_a_verify_key_a_signed_verdict_edited_afterwards_is_refused(
    model_copy: Path, keys: Ed25519PrivateKey
) -> None:
    _sign(model_copy, keys)
    verdict = read_json(model_copy / "verdict.json")
    verdict["headline_metrics"]["roc_auc"] = 0.999
    (model_copy / "verdict.json").write_bytes(json_bytes(verdict))
    assert "does not match its content" in _refused(model_copy)


def _seal_card(folder: Path, key: Ed25519PrivateKey) -> None:
    verdict = read_json(folder / "verdict.json")
    html = (folder / "model_card.html").read_bytes()
    seal = card_seal(html, b"", verdict, key)
    card_seal_path(folder / "model_card.html").write_bytes(json_bytes(seal))


def test_with_a_verify_key_only_a_card_sealed_for_this_verdict_is_served(
    model_copy: Path, keys: Ed25519PrivateKey, caplog: pytest.LogCaptureFixture
) -> None:
    _sign(model_copy, keys)
    _seal_card(model_copy, keys)
    with started_client(settings_for(model_copy)) as client:
        assert client.get("/model-card").status_code == 200
    card = model_copy / "model_card.html"
    card.write_text(card.read_text(encoding="utf-8").replace("<h1", "<h1 hidden", 1))
    with (
        caplog.at_level(logging.WARNING, logger="census_pipeline.api"),
        started_client(settings_for(model_copy)) as client,
    ):
        assert client.get("/model-card").status_code == 404
        assert client.get("/ready").status_code == 200
    assert "changed after the card step sealed it" in caplog.text


def test_with_a_verify_key_an_unsealed_card_is_not_served(
    model_copy: Path, keys: Ed25519PrivateKey
) -> None:
    _sign(model_copy, keys)
    with started_client(settings_for(model_copy)) as client:
        assert client.get("/model-card").status_code == 404
