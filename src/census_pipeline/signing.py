"""Ed25519 keys and signatures for the gate's verdict: who may bless, checked by everyone who loads.

Keys come from the environment only, never from params.yaml or the repository:

- `CENSUS_SIGNING_KEY` (the PEM text) or `CENSUS_SIGNING_KEY_FILE` (a path to it): the private
  key the gate signs with. A key file readable by group or others is refused, as ssh does.
- `CENSUS_VERIFY_KEY` (PEM text) or `CENSUS_VERIFY_KEY_FILE` (a path): one or more public keys
  (PEM blocks one after another, for rotation) that the service, batch scoring and CD accept.

A signature names its key by `key_id` (the first 16 hex digits of the sha256 of the raw public
key), so a verifier holding several keys knows which one to try and an error can say which key
signed. `census-pipeline keygen` writes a fresh pair. Only `cryptography` and the standard library:
the slim `serve` install imports this.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import ValidationError

from census_pipeline.errors import PipelineError
from census_pipeline.verdict import SIGNATURE_KEY, Signature, canonical_bytes

SIGNING_KEY_ENV = "CENSUS_SIGNING_KEY"
SIGNING_KEY_FILE_ENV = "CENSUS_SIGNING_KEY_FILE"
VERIFY_KEY_ENV = "CENSUS_VERIFY_KEY"
VERIFY_KEY_FILE_ENV = "CENSUS_VERIFY_KEY_FILE"
PRIVATE_KEY_FILE = "signing_key.pem"
PUBLIC_KEY_FILE = "verify_key.pem"
_PEM_BLOCK = re.compile(rb"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


@dataclass(frozen=True)
class VerifyKeys:
    """The public keys a verifier accepts, by key id, and where they came from (for messages)."""

    keys: Mapping[str, Ed25519PublicKey]
    source: str

    @classmethod
    def from_pem(cls, pem: bytes, source: str) -> VerifyKeys:
        blocks = _PEM_BLOCK.findall(pem)
        if not blocks:
            raise PipelineError(f"{source}: no PEM public key found (expected an Ed25519 key)")
        keys = [_public_key(block, source) for block in blocks]
        return cls({key_id(key): key for key in keys}, source)

    @classmethod
    def from_file(cls, path: Path) -> VerifyKeys:
        return cls.from_pem(_read_key_file(path), str(path))


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _public_key(pem: bytes, source: str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError as exc:
        raise PipelineError(f"{source}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise PipelineError(f"{source}: a {type(key).__name__}, expected an Ed25519 public key")
    return key


def _private_key(pem: bytes, source: str) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PipelineError(
            f"{source}: not a readable unencrypted PEM private key ({exc})"
        ) from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PipelineError(f"{source}: a {type(key).__name__}, expected an Ed25519 private key")
    return key


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None


def _one_of(environ: Mapping[str, str], text_name: str, file_name: str) -> tuple[str, str] | None:
    """(variable name, value) of the one variable set, None if neither; both is ambiguous."""
    text, file = environ.get(text_name, "").strip(), environ.get(file_name, "").strip()
    if text and file:
        raise PipelineError(f"both {text_name} and {file_name} are set: set only one")
    if text:
        return text_name, text
    return (file_name, file) if file else None


def signing_key_from_env(environ: Mapping[str, str] | None = None) -> Ed25519PrivateKey | None:
    """The gate's private key, or None when signing is not configured."""
    environ = os.environ if environ is None else environ
    found = _one_of(environ, SIGNING_KEY_ENV, SIGNING_KEY_FILE_ENV)
    if found is None:
        return None
    name, value = found
    if name == SIGNING_KEY_ENV:
        return _private_key(value.encode("utf-8"), name)
    path = Path(value).expanduser()
    _refuse_shared_private_file(path)
    return _private_key(_read_key_file(path), f"{name} ({path})")


def _refuse_shared_private_file(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read the key file ({exc.strerror or exc})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise PipelineError(
            f"{path}: a private key readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )


def verify_keys_from_env(environ: Mapping[str, str] | None = None) -> VerifyKeys | None:
    """The public keys verifiers accept, or None when no key is configured (no signature check)."""
    environ = os.environ if environ is None else environ
    found = _one_of(environ, VERIFY_KEY_ENV, VERIFY_KEY_FILE_ENV)
    if found is None:
        return None
    name, value = found
    if name == VERIFY_KEY_ENV:
        return VerifyKeys.from_pem(value.encode("utf-8"), name)
    return VerifyKeys.from_file(Path(value).expanduser())


def sign(payload: bytes, private: Ed25519PrivateKey) -> Signature:
    value = base64.b64encode(private.sign(payload)).decode("ascii")
    return Signature(algorithm="ed25519", key_id=key_id(private.public_key()), value=value)


def signature_problem(payload: bytes, signature: Signature | None, keys: VerifyKeys) -> str | None:
    """Why `signature` does not prove that a holder of one of `keys` signed `payload`, or None."""
    if signature is None:
        return f"it is not signed, and a verify key is configured ({keys.source})"
    public = keys.keys.get(signature.key_id)
    if public is None:
        known = ", ".join(sorted(keys.keys))
        return (
            f"it is signed by key {signature.key_id}, which is not among the accepted keys "
            f"({known}, from {keys.source})"
        )
    try:
        public.verify(base64.b64decode(signature.value, validate=True), payload)
    except (InvalidSignature, binascii.Error, ValueError):
        return f"its signature does not match its content (key {signature.key_id}): it was edited"
    return None


def keygen(folder: Path) -> tuple[Path, Path]:
    """Write a new key pair into `folder`: the private key 0600, the public key 0644.

    Existing files are never overwritten: losing a signing key in use is worse than an error.
    """
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / PRIVATE_KEY_FILE, folder / PUBLIC_KEY_FILE
    taken = [p for p in (private_path, public_path) if p.exists()]
    if taken:
        raise PipelineError(f"{taken[0]}: already exists; move it away or choose another folder")
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_new(private_path, pem, 0o600)
    _write_new(public_path, public, 0o644)
    return private_path, public_path


def _write_new(path: Path, data: bytes, mode: int) -> None:
    # O_EXCL: fail rather than follow a symlink or replace a file someone created meanwhile;
    # the mode is set at creation, so the private key is never readable by others, not even
    # for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as handle:
        os.fchmod(handle.fileno(), mode)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


# --- the card's seal --------------------------------------------------------------------------
# The card is rendered after the gate (it shows the verdict), so the gate's signature cannot
# cover its bytes. The card step seals them instead, beside the card, with the same key: the
# seal names the card's digests and the exact verdict content it was rendered from, so a
# verifier can refuse a card that was edited, or that belongs to another verdict.


def card_seal_path(card_html: Path) -> Path:
    """`model_card.html` -> `model_card.sig.json`, in the card's own folder (its own output)."""
    return card_html.with_name(f"{card_html.stem}.sig.json")


def card_seal(
    html: bytes, markdown: bytes, verdict: Mapping[str, object], key: Ed25519PrivateKey | None
) -> dict[str, object]:
    """The seal the card step writes: digests always, a signature when a key is configured."""
    seal: dict[str, object] = {
        "card_html_sha256": hashlib.sha256(html).hexdigest(),
        "card_markdown_sha256": hashlib.sha256(markdown).hexdigest(),
        "model_sha256": verdict.get("model_sha256"),
        "verdict_sha256": hashlib.sha256(canonical_bytes(dict(verdict))).hexdigest(),
    }
    seal[SIGNATURE_KEY] = None if key is None else sign(canonical_bytes(seal), key).model_dump()
    return seal


def card_problem(html: bytes, seal: object, verdict_sha256: str, keys: VerifyKeys) -> str | None:
    """Why this card may not be shown beside the verdict whose canonical sha256 is given."""
    if not isinstance(seal, dict):
        return "no readable seal beside it (run `census-pipeline card` with the signing key)"
    try:
        signature = Signature.model_validate(seal.get(SIGNATURE_KEY))
    except ValidationError:
        return "its seal is not signed (run `census-pipeline card` with the signing key)"
    if problem := signature_problem(canonical_bytes(seal), signature, keys):
        return f"its seal: {problem}"
    if seal.get("card_html_sha256") != hashlib.sha256(html).hexdigest():
        return "it was changed after the card step sealed it"
    if seal.get("verdict_sha256") != verdict_sha256:
        return "it was rendered from another verdict than the one served"
    return None
