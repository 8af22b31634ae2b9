"""The gate's verdict as data: its shape, its canonical bytes and the rule that ties `blessed` to
its own checks.

The gate writes it; the trust check (`trust.py`) reads it for the service, batch scoring and CD.
Both use these models, so the writer and every reader agree on one shape. The types are strict
where a decision hangs on them: `blessed`, `enforced` and `passed` must be JSON booleans (not
"yes" or 1), and an override must name a reason and exactly the checks it overrode, so a
hand-edited verdict reads as what it is instead of being coerced into a blessing. Only pydantic
and the standard library: the slim `serve` install imports this.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

Kind = Literal["overall", "slice", "fairness", "change"]
Status = Literal["passed", "failed", "skipped"]
# What each status says `passed` must be: a check cannot be "passed" and `passed: false`.
PASSED_FOR_STATUS: dict[str, bool | None] = {"passed": True, "failed": False, "skipped": None}
# The verdict key that holds the signature; everything else in the file is what it signs.
SIGNATURE_KEY = "signature"
NonEmpty = Annotated[StrictStr, Field(min_length=1)]


class Check(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: NonEmpty
    kind: Kind
    value: float | None
    bound: str
    passed: StrictBool | None  # None only when skipped
    status: Status
    enforced: StrictBool
    reason: str
    detail: dict[str, Any] = {}


class Override(BaseModel):
    """A person's decision to ship despite failed checks: why, and which checks it overrode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: NonEmpty
    failed_checks: list[StrictStr]


class Signature(BaseModel):
    """An Ed25519 signature over the verdict's canonical bytes (see `signing.py`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    algorithm: Literal["ed25519"]
    key_id: NonEmpty
    value: NonEmpty


class Verdict(BaseModel):
    model_config = ConfigDict(frozen=True)

    blessed: StrictBool
    model_version: str
    model_sha256: NonEmpty
    created_at: str | None = None
    checks: list[Check]
    override: Override | None
    policy: dict[str, Any] = {}
    headline_metrics: dict[str, float]
    baseline: dict[str, Any] | None = None
    inputs: dict[str, str]
    signature: Signature | None = None

    @property
    def failures(self) -> list[Check]:
        """Enforced checks that failed: the ones that block a blessing."""
        return [c for c in self.checks if c.enforced and c.status == "failed"]


def consistency_problem(verdict: Verdict) -> str | None:
    """Why `blessed` is not what the verdict's own checks and override imply, or None.

    The gate blesses when no enforced check failed, or when a person recorded an override naming
    exactly the enforced checks that failed. Anything else was not written by the gate.
    """
    for check in verdict.checks:
        if check.passed is not PASSED_FOR_STATUS[check.status]:
            return f"check {check.name!r} says status {check.status!r} but passed={check.passed}"
    failed = [c.name for c in verdict.failures]
    override = verdict.override
    if override is not None and override.failed_checks != failed:
        return (
            f"the override names failed checks {override.failed_checks}, but the enforced "
            f"checks that failed are {failed}"
        )
    implied = not failed or override is not None
    if verdict.blessed != implied:
        why = f"enforced checks failed ({', '.join(failed)}) and no override was recorded"
        return f"blessed={verdict.blessed} although " + (why if failed else "no check failed")
    return None


def canonical_bytes(verdict: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the verdict without its signature, as canonical JSON.

    Sorted keys, no spaces, ASCII only: parsing the file and dumping it again gives the same
    bytes whatever the writer's formatting, so the signer and a verifier agree.
    """
    unsigned = {key: value for key, value in verdict.items() if key != SIGNATURE_KEY}
    return json.dumps(
        unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    ).encode("ascii")
