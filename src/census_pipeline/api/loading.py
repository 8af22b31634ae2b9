"""Loading what the service serves, once, and refusing what it must not serve.

The model comes through `Predictor` (which verifies the model file's sha256 against its
metadata). The gate's verdict must bless that very model and that very metadata: a verdict for
another model sha256, or one whose recorded `inputs.model_metadata` digest is not the sha256 of
the `model.json` loaded here (an edited threshold, say), counts as no blessing at all. Every
failure is a `PipelineError` whose message says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from census_pipeline.api.schemas import GateVerdict, ModelInfo
from census_pipeline.api.settings import Settings
from census_pipeline.errors import PipelineError
from census_pipeline.files import read_json, sha256_file
from census_pipeline.predict import Predictor

logger = logging.getLogger("census_pipeline.api")

# Same names as `PathsParams.verdict` and `.model_metadata`: the service reads no params file
# (a test holds them equal).
VERDICT_FILE = "verdict.json"
METADATA_FILE = "model.json"
# The key under which the gate's verdict records the sha256 of the metadata file it judged.
METADATA_INPUT = "model_metadata"
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

    def predict_one(self, record: dict[str, Any], explain: bool = False) -> dict[str, Any]:
        """`record` as validated by `body.RECORD`: hyphenated keys, values in their domains."""
        probability = self.predictor.probability_one(record)
        return self._prediction(probability, self._explain(record) if explain else None)

    def predict_many(
        self, records: Sequence[dict[str, Any]], explain: bool = False
    ) -> list[dict[str, Any]]:
        probabilities = self.predictor.predict_many(records).probabilities.tolist()
        if not explain:
            return [self._prediction(probability, None) for probability in probabilities]
        # One pred_contrib call for the whole batch, not one per record.
        contributions = self.predictor.contributions_many(records).tolist()
        names = self.predictor.feature_names
        return [
            self._prediction(probability, self._top(record, zip(names, row, strict=True)))
            for probability, record, row in zip(probabilities, records, contributions, strict=True)
        ]

    def _prediction(
        self, probability: float, explanation: list[dict[str, Any]] | None
    ) -> dict[str, Any]:
        # A plain dict shaped like `Prediction`: building the model instance would cost ten
        # times more, for values that come from the model rather than from a client.
        answer: dict[str, Any] = {
            "label": self.predictor.label(probability),
            "probability": probability,
            "threshold": self.info.threshold,
            "model_version": self.info.model_version,
        }
        if explanation is not None:
            answer["explanation"] = explanation
        return answer

    def _explain(self, record: dict[str, Any]) -> list[dict[str, Any]]:
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
    predictor = _load_predictor(settings.model_dir)
    metadata = predictor.metadata
    metadata_sha256 = sha256_file(settings.model_dir / METADATA_FILE)
    verdict = read_verdict(settings.model_dir / VERDICT_FILE)
    try:
        blessed = check_blessing(
            verdict, metadata.model_sha256, settings.allow_unblessed, metadata_sha256
        )
    except PipelineError:
        predictor.close()
        raise
    info = ModelInfo(
        model_version=metadata.model_version,
        model_sha256=metadata.model_sha256,
        metadata_sha256=metadata_sha256,
        train_data_sha256=metadata.train_data_sha256,
        num_trees=metadata.num_trees,
        threshold=metadata.threshold,
        features=list(metadata.feature_names),
        headline_metrics=verdict.headline_metrics if verdict else None,
        blessed=blessed,
        verdict=verdict,
    )
    card = read_card(settings.model_card_path)
    return ServedModel(predictor=predictor, info=info, card_html=card)


def _load_predictor(model_dir: Path) -> Predictor:
    if not model_dir.is_dir():
        raise PipelineError(
            f"{model_dir}: model folder not found: run the pipeline and `census-pipeline "
            "publish` (`make run` does both), or set CENSUS_API_MODEL_DIR to the folder holding "
            "model.txt and model.json"
        )
    return Predictor.load(model_dir)


def read_verdict(path: Path) -> GateVerdict | None:
    """The gate's verdict, or None when the gate has not run (so nothing is blessed)."""
    if not path.is_file():
        return None
    try:
        return GateVerdict.model_validate(read_json(path))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PipelineError(
            f"{path}: {where}: {first['msg']} (rerun `census-pipeline gate`)"
        ) from exc


def check_blessing(
    verdict: GateVerdict | None, model_sha256: str, allow_unblessed: bool, metadata_sha256: str
) -> bool:
    """True when blessed; an unblessed model is an error unless development allows it."""
    problem = _blessing_problem(verdict, model_sha256, metadata_sha256)
    if problem is None:
        if verdict is not None and verdict.override is not None:
            reason = verdict.override.get("reason", "no reason recorded")
            logger.warning("the gate's checks failed but a person blessed the model: %s", reason)
        return True
    if not allow_unblessed:
        raise PipelineError(
            f"{problem}; set CENSUS_API_ALLOW_UNBLESSED=true to serve it anyway (development only)"
        )
    logger.warning("serving an UNBLESSED model (CENSUS_API_ALLOW_UNBLESSED is set): %s", problem)
    return False


def _blessing_problem(
    verdict: GateVerdict | None, model_sha256: str, metadata_sha256: str
) -> str | None:
    if verdict is None:
        return f"no {VERDICT_FILE} beside the model: run `census-pipeline gate` first"
    if verdict.model_sha256 != model_sha256:
        return (
            f"{VERDICT_FILE} is for another model (sha256 {verdict.model_sha256[:12]}, "
            f"served model {model_sha256[:12]}): rerun `census-pipeline gate`"
        )
    judged = (verdict.inputs or {}).get(METADATA_INPUT)
    if judged is None:
        return (
            f"{VERDICT_FILE} does not record which {METADATA_FILE} it judged "
            f"(no inputs.{METADATA_INPUT}): rerun `census-pipeline gate`"
        )
    if judged != metadata_sha256:
        return (
            f"{METADATA_FILE} was changed after the gate judged it (sha256 {metadata_sha256[:12]}, "
            f"judged {judged[:12]}): restore it or rerun `census-pipeline gate`"
        )
    if not verdict.blessed:
        failed = [c.name for c in verdict.checks if c.enforced and c.passed is False]
        reasons = ", ".join(failed) or "see the verdict"
        return f"the gate did not bless this model (failed: {reasons})"
    return None


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
