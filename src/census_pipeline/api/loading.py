"""Loading what the service serves, once, and refusing what it must not serve.

Whether the model may be served is decided by `census_pipeline.trust`, the check batch scoring
and CD share: the model file matches its metadata and is a binary classifier, the verdict
(signed, when a verify key is configured) judged this very model and metadata, and its
`blessed` is what its own checks imply. Every failure is a `PipelineError` whose message says
what to do; this module adds the service's own way around an unblessed model (a setting).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from census_pipeline.api.schemas import GateVerdict, ModelInfo
from census_pipeline.api.settings import Settings
from census_pipeline.errors import PipelineError
from census_pipeline.predict import Predictor
from census_pipeline.trust import (
    METADATA_FILE,
    METADATA_INPUT,
    UNSIGNED_WARNING,
    VERDICT_FILE,
    TrustedModel,
    UntrustedModel,
    load_trusted_model,
)
from census_pipeline.verdict import Verdict

logger = logging.getLogger("census_pipeline.api")

# VERDICT_FILE, METADATA_FILE and METADATA_INPUT are re-exported from `trust`: the same names
# as `PathsParams.verdict` and `.model_metadata` (a test holds them equal).
__all__ = ["METADATA_FILE", "METADATA_INPUT", "VERDICT_FILE", "ServedModel", "load_served_model"]
EXPLAIN_TOP = 5


@dataclass(frozen=True, slots=True)
class ServedModel:
    """The predictor plus everything the endpoints report about it, fixed at start-up."""

    predictor: Predictor
    info: ModelInfo
    card_html: str | None

    @property
    def version(self) -> str:
        return self.info.model_version

    def predict_one(
        self, record: dict[str, Any], explanation: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """`record` as validated by `body.RECORD`: hyphenated keys, values in their domains.

        `explanation` is `explain_one`'s answer, computed apart (the service runs it off the
        event loop, in its explain pool)."""
        one = self.predictor.predict_one(record)
        return self._prediction(one.probability, one.label, one.threshold, explanation)

    def predict_many(
        self, records: Sequence[dict[str, Any]], explain: bool = False
    ) -> list[dict[str, Any]]:
        scored = self.predictor.predict_many(records)
        answers = zip(
            scored.probabilities.tolist(), scored.labels, scored.thresholds.tolist(), strict=True
        )
        if not explain:
            return [self._prediction(p, label, t, None) for p, label, t in answers]
        # One pred_contrib call for the whole batch, not one per record.
        contributions = self.predictor.contributions_many(records).tolist()
        names = self.predictor.feature_names
        return [
            self._prediction(p, label, t, self._top(record, zip(names, row, strict=True)))
            for (p, label, t), record, row in zip(answers, records, contributions, strict=True)
        ]

    def _prediction(
        self,
        probability: float,
        label: str,
        threshold: float,
        explanation: list[dict[str, Any]] | None,
    ) -> dict[str, Any]:
        # A plain dict shaped like `Prediction`: building the model instance would cost ten
        # times more, for values that come from the model rather than from a client. The
        # label and threshold are the Predictor's (the record's group's, under group thresholds).
        answer: dict[str, Any] = {
            "label": label,
            "probability": probability,
            "threshold": threshold,
            "model_version": self.info.model_version,
        }
        if explanation is not None:
            answer["explanation"] = explanation
        return answer

    def explain_one(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        """The top contributions to one record's score: milliseconds of CPU, so not inline."""
        return self._top(record, self.predictor.contributions_one(record).items())

    @staticmethod
    def _top(
        record: dict[str, Any], contributions: Iterable[tuple[str, float]]
    ) -> list[dict[str, Any]]:
        top = sorted(contributions, key=lambda item: abs(item[1]), reverse=True)
        return [
            {"feature": name, "value": record[name], "contribution": value}
            for name, value in top[:EXPLAIN_TOP]
        ]


def load_served_model(settings: Settings) -> ServedModel:
    """The model the shared trust check (`census_pipeline.trust`) lets this service use."""
    if not settings.model_dir.is_dir():
        raise PipelineError(
            f"{settings.model_dir}: model folder not found: run the pipeline and `census-pipeline "
            "publish` (`make run` does both), or set CENSUS_API_MODEL_DIR to the folder holding "
            "model.txt and model.json"
        )
    try:
        trusted = load_trusted_model(settings.model_dir, allow_unblessed=settings.allow_unblessed)
    except UntrustedModel as exc:
        raise PipelineError(
            f"{exc.problem}; set CENSUS_API_ALLOW_UNBLESSED=true to serve it anyway "
            "(development only)"
        ) from None
    _log_trust(trusted)
    metadata = trusted.metadata
    reported = _reported(trusted.verdict)
    info = ModelInfo(
        model_version=metadata.model_version,
        model_sha256=metadata.model_sha256,
        metadata_sha256=trusted.metadata_sha256,
        train_data_sha256=metadata.train_data_sha256,
        num_trees=metadata.num_trees,
        threshold=metadata.threshold,
        features=list(metadata.feature_names),
        headline_metrics=reported.headline_metrics if reported else None,
        blessed=trusted.blessed,
        verdict=reported,
    )
    card = _checked_card(read_card(settings.model_card_path), settings.model_card_path, trusted)
    return ServedModel(predictor=trusted.predictor, info=info, card_html=card)


def _checked_card(card: str | None, path: Path, trusted: TrustedModel) -> str | None:
    """With a verify key configured, a card that is not sealed for this verdict is not served."""
    if card is None:
        return None
    problem = trusted.card_problem(card.encode("utf-8"), path)
    if problem is not None:
        logger.warning(
            "not serving the model card at %s: %s; /model-card will answer 404", path, problem
        )
        return None
    return card


def _log_trust(trusted: TrustedModel) -> None:
    if not trusted.blessed:
        logger.warning(
            "serving an UNBLESSED model (CENSUS_API_ALLOW_UNBLESSED is set): %s", trusted.problem
        )
    elif trusted.verdict is not None and trusted.verdict.override is not None:
        logger.warning(
            "the gate's checks failed but a person blessed the model: %s",
            trusted.verdict.override.reason,
        )
    signature = trusted.verdict.signature if trusted.verdict else None
    if trusted.verify_keys is None:
        logger.warning(UNSIGNED_WARNING)
    elif trusted.signed and signature is not None:
        logger.info("the verdict is signed by key %s, which is configured", signature.key_id)


def _reported(verdict: Verdict | None) -> GateVerdict | None:
    """The verdict as /model reports it (the service's own, more tolerant schema)."""
    return None if verdict is None else GateVerdict.model_validate(verdict.model_dump(mode="json"))


def read_card(path: Path) -> str | None:
    """The card is optional: without a readable one /model-card answers 404 and the model is
    served all the same (a missing file, a folder, no permission, not UTF-8)."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        logger.warning("no model card at %s: /model-card will answer 404", path)
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        logger.warning(
            "cannot read the model card at %s (%s): /model-card will answer 404", path, reason
        )
    return None
