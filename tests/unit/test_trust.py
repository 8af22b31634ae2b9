"""The shared trust check: what the service, batch scoring and CD accept, and what they refuse.

Each forgery here was accepted before the check existed: a hand-flipped `blessed`, "yes" for a
boolean, an override that names no failed check; and, with a verify key configured, an unsigned
verdict, one re-signed by another key, and a signed one edited afterwards.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from model_folders import RECORD, check, verdict_for, write_folder

from census_pipeline.errors import PipelineError
from census_pipeline.files import json_bytes, read_json, sha256_file
from census_pipeline.signing import (
    SIGNING_KEY_FILE_ENV,
    VERIFY_KEY_ENV,
    VERIFY_KEY_FILE_ENV,
    VerifyKeys,
    keygen,
    sign,
    signing_key_from_env,
    verify_keys_from_env,
)
from census_pipeline.trust import UntrustedModel, load_trusted_files, load_trusted_model
from census_pipeline.verdict import canonical_bytes


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (VERIFY_KEY_ENV, VERIFY_KEY_FILE_ENV, "CENSUS_SIGNING_KEY", SIGNING_KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    write_folder(tmp_path / "models")
    return tmp_path / "models"


def _forge(folder: Path, **changes: Any) -> None:
    verdict = read_json(folder / "verdict.json")
    (folder / "verdict.json").write_bytes(json_bytes({**verdict, **changes}))


def _signed(verdict: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    return {**verdict, "signature": sign(canonical_bytes(verdict), key).model_dump()}


def _keys(*private: Ed25519PrivateKey) -> VerifyKeys:
    from cryptography.hazmat.primitives import serialization

    pem = b"".join(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        for key in private
    )
    return VerifyKeys.from_pem(pem, "test keys")


# --- consistency ------------------------------------------------------------------------------


def test_a_consistent_blessed_verdict_is_trusted(folder: Path) -> None:
    trusted = load_trusted_model(folder)
    assert trusted.blessed and not trusted.signed and trusted.problem is None
    assert trusted.metadata_sha256 == sha256_file(folder / "model.json")
    assert 0.0 <= trusted.predictor.probability_one(RECORD) <= 1.0
    trusted.predictor.close()


def test_blessed_true_over_failed_enforced_checks_is_refused(folder: Path) -> None:
    verdict = read_json(folder / "verdict.json")
    _forge(folder, checks=[*verdict["checks"], check("slice:f1", False)], blessed=True)
    with pytest.raises(UntrustedModel, match=r"blessed=True although enforced checks failed"):
        load_trusted_model(folder)


@pytest.mark.parametrize("value", ["yes", "true", 1, None])
def test_blessed_must_be_a_json_boolean(folder: Path, value: object) -> None:
    _forge(folder, blessed=value)
    with pytest.raises(PipelineError, match=r"verdict.json: blessed: .*boolean"):
        load_trusted_model(folder)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ({"reason": "ship it", "failed_checks": []}, r"override names failed checks \[\]"),
        ({"reason": "", "failed_checks": ["slice:f1"]}, r"override.reason"),
        ({"reason": "ship it"}, r"override.failed_checks"),
        ("yes", r"override"),
        ({"reason": "x", "failed_checks": ["slice:f1"], "by": "me"}, r"override.by"),
    ],
)
def test_a_fake_override_is_refused(folder: Path, override: object, match: str) -> None:
    verdict = read_json(folder / "verdict.json")
    _forge(folder, checks=[*verdict["checks"], check("slice:f1", False)], override=override)
    with pytest.raises(PipelineError, match=match):
        load_trusted_model(folder)


def test_a_real_override_naming_the_failed_checks_is_trusted(folder: Path) -> None:
    verdict = read_json(folder / "verdict.json")
    override = {"reason": "accepted by the review", "failed_checks": ["slice:f1"]}
    _forge(folder, checks=[*verdict["checks"], check("slice:f1", False)], override=override)
    trusted = load_trusted_model(folder)
    assert trusted.blessed and trusted.verdict is not None and trusted.verdict.override
    trusted.predictor.close()


def test_a_failed_check_marked_passed_is_refused(folder: Path) -> None:
    verdict = read_json(folder / "verdict.json")
    bad = {**check("slice:f1", False), "status": "passed"}
    _forge(folder, checks=[*verdict["checks"], bad])
    with pytest.raises(UntrustedModel, match=r"status 'passed' but passed=False"):
        load_trusted_model(folder)


def test_a_failed_check_that_is_not_enforced_does_not_block(folder: Path) -> None:
    verdict = read_json(folder / "verdict.json")
    _forge(folder, checks=[*verdict["checks"], check("fairness:fdr:sex", False, enforced=False)])
    load_trusted_model(folder).predictor.close()


def test_allow_unblessed_returns_the_model_with_the_reason(folder: Path) -> None:
    verdict = read_json(folder / "verdict.json")
    _forge(folder, checks=[*verdict["checks"], check("slice:f1", False)])
    trusted = load_trusted_model(folder, allow_unblessed=True)
    assert not trusted.blessed and trusted.problem and "blessed=True" in trusted.problem
    trusted.predictor.close()


def test_a_verdict_for_another_model_or_edited_metadata_is_refused(folder: Path) -> None:
    _forge(folder, model_sha256="0" * 64)
    with pytest.raises(UntrustedModel, match="another model"):
        load_trusted_model(folder)
    metadata = read_json(folder / "model.json")
    write_folder(folder, metadata={**metadata, "threshold": 0.01})
    _forge(folder, inputs={"model_metadata": "0" * 64})
    with pytest.raises(UntrustedModel, match=r"model\.json was changed after the gate"):
        load_trusted_model(folder)


def test_nan_in_a_verdict_is_refused(folder: Path) -> None:
    text = (folder / "verdict.json").read_text(encoding="utf-8")
    (folder / "verdict.json").write_text(text.replace('"value": 0.9', '"value": NaN', 1))
    with pytest.raises(PipelineError, match="NaN is not valid JSON"):
        load_trusted_model(folder)


def test_named_files_are_checked_like_a_folder(folder: Path) -> None:
    files = (folder / "model.txt", folder / "model.json", folder / "verdict.json")
    load_trusted_files(*files).predictor.close()
    (folder / "verdict.json").unlink()
    with pytest.raises(UntrustedModel, match=r"no verdict\.json"):
        load_trusted_files(*files)


# --- signatures -------------------------------------------------------------------------------


def test_a_signed_verdict_is_trusted_and_reported_signed(folder: Path) -> None:
    key = Ed25519PrivateKey.generate()
    write_folder(folder, verdict=_signed(read_json(folder / "verdict.json"), key))
    trusted = load_trusted_model(folder, verify_keys=_keys(key))
    assert trusted.blessed and trusted.signed
    trusted.predictor.close()


def test_an_unsigned_verdict_is_refused_when_a_key_is_configured(folder: Path) -> None:
    with pytest.raises(UntrustedModel, match="not signed, and a verify key is configured"):
        load_trusted_model(folder, verify_keys=_keys(Ed25519PrivateKey.generate()))


def test_a_verdict_re_signed_with_another_key_is_refused(folder: Path) -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    write_folder(folder, verdict=_signed(read_json(folder / "verdict.json"), theirs))
    with pytest.raises(UntrustedModel, match="not among the accepted keys"):
        load_trusted_model(folder, verify_keys=_keys(ours))


def test_a_signature_copied_under_our_key_id_does_not_verify(folder: Path) -> None:
    ours, theirs = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verdict = read_json(folder / "verdict.json")
    forged = _signed(verdict, theirs)
    forged["signature"]["key_id"] = _signed(verdict, ours)["signature"]["key_id"]
    write_folder(folder, verdict=forged)
    with pytest.raises(UntrustedModel, match="does not match its content"):
        load_trusted_model(folder, verify_keys=_keys(ours))


@pytest.mark.parametrize(
    "edit",
    [
        {"blessed": False},
        {"inputs": {"model_metadata": "0" * 64, "metrics": "cd" * 32}},
        {"created_at": "2030-01-01T00:00:00+00:00"},
        {"extra": "a field the model ignores is signed too"},
    ],
)
def test_a_signed_verdict_edited_afterwards_is_refused(folder: Path, edit: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.generate()
    write_folder(folder, verdict={**_signed(read_json(folder / "verdict.json"), key), **edit})
    with pytest.raises(UntrustedModel, match="does not match its content"):
        load_trusted_model(folder, verify_keys=_keys(key))


def test_a_signature_does_not_bless_an_inconsistent_verdict(folder: Path) -> None:
    key = Ed25519PrivateKey.generate()
    verdict = verdict_for("0" * 64, "0" * 64, failed=("slice:f1",))
    model = read_json(folder / "verdict.json")
    forged = {**verdict, "model_sha256": model["model_sha256"], "inputs": model["inputs"]}
    write_folder(folder, verdict=_signed({**forged, "blessed": True}, key))
    with pytest.raises(UntrustedModel, match="blessed=True although"):
        load_trusted_model(folder, verify_keys=_keys(key))


def test_keys_come_from_the_environment_and_rotation_accepts_either(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    write_folder(folder, verdict=_signed(read_json(folder / "verdict.json"), old))
    pem = tmp_path / "keys.pem"
    from cryptography.hazmat.primitives import serialization

    pem.write_bytes(
        b"".join(
            k.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            for k in (new, old)
        )
    )
    monkeypatch.setenv(VERIFY_KEY_FILE_ENV, str(pem))
    assert load_trusted_model(folder).signed
    monkeypatch.delenv(VERIFY_KEY_FILE_ENV)
    monkeypatch.setenv(VERIFY_KEY_ENV, pem.read_text().split("-----END PUBLIC KEY-----")[0])
    with pytest.raises(PipelineError, match="no PEM public key"):
        verify_keys_from_env()


def test_both_key_variables_at_once_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(VERIFY_KEY_ENV, "x")
    monkeypatch.setenv(VERIFY_KEY_FILE_ENV, "y")
    with pytest.raises(PipelineError, match="set only one"):
        verify_keys_from_env()


def test_keygen_writes_a_private_key_only_its_owner_can_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    private, public = keygen(tmp_path / "keys")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert stat.S_IMODE(public.stat().st_mode) & 0o077 == 0o044 & ~_umask()
    with pytest.raises(PipelineError, match="already exists"):
        keygen(tmp_path / "keys")
    monkeypatch.setenv(SIGNING_KEY_FILE_ENV, str(private))
    key = signing_key_from_env()
    assert key is not None
    assert VerifyKeys.from_file(public).keys.keys() == _keys(key).keys.keys()
    private.chmod(0o644)
    with pytest.raises(PipelineError, match="readable by others"):
        signing_key_from_env()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
