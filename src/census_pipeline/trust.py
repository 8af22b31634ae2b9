"""The one check that decides whether a model folder may be used: service, batch scoring and CD.

A folder holds `model.txt`, `model.json` and the gate's `verdict.json`. It may be used when:

1. the model file's sha256 is the one its metadata records, and the model is a single-output
   binary classifier of the recorded shape (`artifact.load_model`, through `Predictor`);
2. when a verify key is configured (`signing.VERIFY_KEY_ENV` / `VERIFY_KEY_FILE_ENV`, or the
   `verify_keys` argument), the verdict carries a valid Ed25519 signature by one of those keys;
3. the verdict judged exactly this model file (`model_sha256`) and this metadata file (its
   sha256 recorded as `inputs.model_metadata`);
4. its `blessed` is exactly the boolean its own enforced checks and recorded override imply
   (`verdict.consistency_problem`), and it is true.

Failures of 1 (and a verdict file that is not a verdict at all) always refuse. Failures of 2-4
mean "not blessed": refused unless the caller allows unblessed models (development), in which
case the model is returned with `blessed=False` and the reason. Without a verify key, step 2 is
skipped and `signed` is False: the chain then protects against accidents (a stale verdict, an
edited threshold, a hand-flipped `blessed`), not against someone who can write the folder, who
could run the gate's logic and write a consistent verdict themselves (docs/trust.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from pydantic import ValidationError

from census_pipeline.artifact import ModelMetadata
from census_pipeline.errors import PipelineError
from census_pipeline.files import sha256_bytes
from census_pipeline.predict import Predictor
from census_pipeline.signing import (
    VerifyKeys,
    card_problem,
    card_seal_path,
    signature_problem,
    verify_keys_from_env,
)
from census_pipeline.verdict import Verdict, canonical_bytes, consistency_problem

MODEL_FILE: Final = "model.txt"
METADATA_FILE: Final = "model.json"
VERDICT_FILE: Final = "verdict.json"
# The key under which the gate's verdict records the sha256 of the metadata file it judged.
METADATA_INPUT: Final = "model_metadata"
# What every user of an unsigned chain should be told, in the same words (docs/trust.md).
UNSIGNED_WARNING: Final = (
    "no verify key configured (CENSUS_VERIFY_KEY or CENSUS_VERIFY_KEY_FILE): the verdict's "
    "signature is not checked, so the trust chain protects against accidents, not against "
    "someone who can write the model folder"
)


class UntrustedModel(PipelineError):
    """The model is sound but may not be used: unblessed, unsigned, mis-signed or forged."""

    def __init__(self, problem: str):
        super().__init__(problem)
        self.problem = problem


@dataclass(frozen=True)
class TrustedModel:
    """A loaded model plus why it may be used (or, when allowed unblessed, why it may not)."""

    predictor: Predictor
    metadata: ModelMetadata
    metadata_sha256: str
    verdict: Verdict | None
    blessed: bool
    # True only when a verify key was configured and the verdict's signature checked out.
    signed: bool
    # Why the model is not blessed (None when it is); set only under allow_unblessed.
    problem: str | None = None
    # sha256 of the verdict's canonical bytes: what the card's seal must name.
    verdict_sha256: str | None = None
    # The keys the verdict was checked with (None: none configured), for checking the card.
    verify_keys: VerifyKeys | None = None

    def card_problem(self, card_html: bytes, card_html_path: Path) -> str | None:
        """Why the card may not be shown beside this model, or None. Without a verify key every
        card is shown (nothing to check it with); with one, only a card sealed by an accepted
        key, unchanged since, for this very verdict."""
        if self.verify_keys is None:
            return None
        if self.verdict_sha256 is None:
            return "no verdict to check the card against"
        try:
            seal = json.loads(card_seal_path(card_html_path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            seal = None
        return card_problem(card_html, seal, self.verdict_sha256, self.verify_keys)


def load_trusted_model(
    model_dir: Path,
    *,
    allow_unblessed: bool = False,
    verify_keys: VerifyKeys | None = None,
    num_threads: int = 1,
) -> TrustedModel:
    """Load the model in `model_dir` if it may be used, else raise a one-line `PipelineError`.

    `verify_keys` defaults to the keys the environment configures (none: signatures unchecked).
    `UntrustedModel` (a `PipelineError`) means the model is sound but not blessed; the caller
    adds how its user may override that (a setting, a flag) to the message.
    """
    folder = Path(model_dir)
    if not folder.is_dir():
        raise PipelineError(
            f"{folder}: model folder not found: run `census-pipeline train` and `gate`, or "
            f"point to the folder holding {MODEL_FILE}, {METADATA_FILE} and {VERDICT_FILE}"
        )
    return load_trusted_files(
        folder / MODEL_FILE,
        folder / METADATA_FILE,
        folder / VERDICT_FILE,
        allow_unblessed=allow_unblessed,
        verify_keys=verify_keys,
        num_threads=num_threads,
    )


def load_trusted_files(
    model_file: Path,
    metadata_file: Path,
    verdict_file: Path,
    *,
    allow_unblessed: bool = False,
    verify_keys: VerifyKeys | None = None,
    num_threads: int = 1,
) -> TrustedModel:
    """`load_trusted_model` for three named files (CD checks downloaded files by name)."""
    keys = verify_keys if verify_keys is not None else verify_keys_from_env()
    metadata_bytes = _read(metadata_file)
    raw_verdict = read_raw_verdict(verdict_file)
    verdict = parse_verdict(raw_verdict, verdict_file) if raw_verdict is not None else None
    predictor = Predictor.from_files(model_file, metadata_file, num_threads=num_threads)
    try:
        _same_metadata(predictor.metadata, metadata_bytes, metadata_file)
        metadata_sha256 = sha256_bytes(metadata_bytes)
        problem = blessing_problem(
            raw_verdict, verdict, predictor.metadata.model_sha256, metadata_sha256, keys
        )
        if problem is not None and not allow_unblessed:
            raise UntrustedModel(problem)
    except BaseException:
        predictor.close()
        raise
    return TrustedModel(
        predictor=predictor,
        metadata=predictor.metadata,
        metadata_sha256=metadata_sha256,
        verdict=verdict,
        blessed=problem is None,
        signed=keys is not None and problem is None,
        problem=problem,
        verdict_sha256=None if raw_verdict is None else sha256_bytes(canonical_bytes(raw_verdict)),
        verify_keys=keys,
    )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(f"{path}: not found (run `census-pipeline train`)") from None
    except OSError as exc:
        raise PipelineError(f"{path}: cannot read it ({exc.strerror or exc})") from None


def _same_metadata(loaded: ModelMetadata, hashed: bytes, path: Path) -> None:
    """The metadata the predictor uses must be the bytes whose digest the verdict is checked
    against: a file replaced between the two reads is refused, not half-trusted."""
    try:
        same = ModelMetadata.model_validate_json(hashed) == loaded
    except ValidationError:
        same = False
    if not same:
        raise PipelineError(f"{path}: changed while the model was loading; try again")


def read_raw_verdict(path: Path) -> dict[str, Any] | None:
    """The verdict file as parsed JSON, or None when the gate has not run."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise PipelineError(f"{path}: cannot read the verdict ({exc}); rerun the gate") from None
    try:
        raw = json.loads(text, parse_constant=_no_constant)
    except (json.JSONDecodeError, ValueError) as exc:
        raise PipelineError(
            f"{path}: not valid JSON ({exc}); rerun `census-pipeline gate`"
        ) from None
    if not isinstance(raw, dict):
        raise PipelineError(f"{path}: not a verdict (expected a JSON object); rerun the gate")
    return raw


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; the gate never writes them, so neither may a verdict hold them.
    raise ValueError(f"{name} is not valid JSON")


def parse_verdict(raw: dict[str, Any], path: Path) -> Verdict:
    """The verdict with strict types: `"blessed": "yes"` is an error, not a blessing."""
    try:
        return Verdict.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "(top level)"
        raise PipelineError(
            f"{path}: {where}: {first['msg']} (not a verdict the gate wrote; "
            "rerun `census-pipeline gate`)"
        ) from None


def blessing_problem(
    raw: dict[str, Any] | None,
    verdict: Verdict | None,
    model_sha256: str,
    metadata_sha256: str,
    keys: VerifyKeys | None,
) -> str | None:
    """Why this verdict does not let this model and metadata be used, or None when it does."""
    if raw is None or verdict is None:
        return f"no {VERDICT_FILE} beside the model: run `census-pipeline gate` first"
    if keys is not None:
        problem = signature_problem(canonical_bytes(raw), verdict.signature, keys)
        if problem is not None:
            return (
                f"{VERDICT_FILE}: {problem}; rerun `census-pipeline gate` with the signing key "
                "configured"
            )
    return identity_problem(verdict, model_sha256, metadata_sha256) or decision_problem(verdict)


def identity_problem(verdict: Verdict, model_sha256: str, metadata_sha256: str) -> str | None:
    if verdict.model_sha256 != model_sha256:
        return (
            f"{VERDICT_FILE} is for another model (sha256 {verdict.model_sha256[:12]}, "
            f"this model {model_sha256[:12]}): rerun `census-pipeline gate`"
        )
    judged = verdict.inputs.get(METADATA_INPUT)
    if judged is None:
        return (
            f"{VERDICT_FILE} does not record which {METADATA_FILE} it judged "
            f"(no inputs.{METADATA_INPUT}): rerun `census-pipeline gate`"
        )
    if judged != metadata_sha256:
        return (
            f"{METADATA_FILE} was changed after the gate judged it (sha256 "
            f"{metadata_sha256[:12]}, judged {judged[:12]}): restore it or rerun "
            "`census-pipeline gate`"
        )
    return None


def decision_problem(verdict: Verdict) -> str | None:
    if (inconsistent := consistency_problem(verdict)) is not None:
        return (
            f"{VERDICT_FILE} is not a verdict the gate wrote: {inconsistent}; rerun "
            "`census-pipeline gate`"
        )
    if not verdict.blessed:
        failed = ", ".join(c.name for c in verdict.failures) or "see the verdict"
        return f"the gate did not bless this model (failed: {failed})"
    return None
