"""The personal-data setting: census answers are personal data, so an operator chooses, per
feature, to log it as sent, to leave it out, or to keep only a keyed hash of it.

A plain hash would not protect anything here: every feature has a small domain (an age is one of
84 values), so anyone could hash them all and look the answer up. The hash is an HMAC under a
secret key the operator keeps (`CENSUS_API_LOG_HASH_KEY`): equal values still match each other,
so counting repeats stays possible, but without the key a value cannot be recovered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from census_pipeline.schema import FEATURES

HASH_HEX_CHARS = 16


@dataclass(frozen=True)
class Redaction:
    """Which features to omit and which to hash (never both); `key` is the HMAC key."""

    omit: frozenset[str] = frozenset()
    hashed: frozenset[str] = frozenset()
    key: bytes | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        unknown = sorted((self.omit | self.hashed) - set(FEATURES))
        if unknown:
            raise ValueError(f"{unknown} are not census features (expected some of {FEATURES})")
        if both := sorted(self.omit & self.hashed):
            raise ValueError(f"{both}: a feature is either omitted or hashed, not both")
        if self.hashed and not self.key:
            raise ValueError("hashing features needs a key (CENSUS_API_LOG_HASH_KEY)")

    @classmethod
    def of(cls, omit: Iterable[str], hashed: Iterable[str], key: bytes | None) -> Redaction:
        return cls(frozenset(omit), frozenset(hashed), key)

    @property
    def active(self) -> bool:
        return bool(self.omit or self.hashed)

    @property
    def redacted(self) -> str | None:
        """The `redacted` column's value: the features not logged as sent, comma-separated."""
        names = sorted(self.omit | self.hashed)
        return ",".join(names) if names else None

    def pseudonyms(self, record: Mapping[str, Any]) -> str | None:
        """The `pseudonyms` column's value: a JSON object of keyed hashes, or None."""
        if not self.hashed:
            return None
        assert self.key is not None
        hashes = {name: self._hash(record.get(name)) for name in sorted(self.hashed)}
        return json.dumps(hashes, separators=(",", ":"))

    def _hash(self, value: Any) -> str:
        assert self.key is not None
        message = json.dumps(value).encode("utf-8")
        return hmac.new(self.key, message, hashlib.sha256).hexdigest()[:HASH_HEX_CHARS]
