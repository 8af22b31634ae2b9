"""Request and response bodies of the service.

Every rule comes from `census_pipeline.schema` (the same domains and ranges the data checks use),
so the service refuses exactly what the pipeline would have refused: categories are closed
enumerations, numbers carry their valid ranges, unknown fields are rejected. Field names are the
course's hyphenated column names; the underscore spellings are accepted as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

from pydantic import AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field

from census_pipeline.schema import CATEGORY_DOMAINS, NUMERIC_RANGES

if TYPE_CHECKING:
    # The checker sees plain strings; at run time each is the closed enumeration below.
    Workclass: TypeAlias = str
    Education: TypeAlias = str
    MaritalStatus: TypeAlias = str
    Occupation: TypeAlias = str
    Relationship: TypeAlias = str
    Race: TypeAlias = str
    Sex: TypeAlias = str
    NativeCountry: TypeAlias = str
else:
    Workclass = Literal[CATEGORY_DOMAINS["workclass"]]
    Education = Literal[CATEGORY_DOMAINS["education"]]
    MaritalStatus = Literal[CATEGORY_DOMAINS["marital-status"]]
    Occupation = Literal[CATEGORY_DOMAINS["occupation"]]
    Relationship = Literal[CATEGORY_DOMAINS["relationship"]]
    Race = Literal[CATEGORY_DOMAINS["race"]]
    Sex = Literal[CATEGORY_DOMAINS["sex"]]
    NativeCountry = Literal[CATEGORY_DOMAINS["native-country"]]

# Spelled out for the checker; a test holds it equal to schema.LABELS.
Label = Literal["<=50K", ">50K"]

# The first row of the course's census.csv: a <=50K record.
EXAMPLE_RECORD: dict[str, Any] = {
    "age": 39,
    "workclass": "State-gov",
    "fnlgt": 77516,
    "education": "Bachelors",
    "education-num": 13,
    "marital-status": "Never-married",
    "occupation": "Adm-clerical",
    "relationship": "Not-in-family",
    "race": "White",
    "sex": "Male",
    "capital-gain": 2174,
    "capital-loss": 0,
    "hours-per-week": 40,
    "native-country": "United-States",
}


def _names(column: str) -> dict[str, Any]:
    """Accept the course's hyphenated key and its underscore spelling; answer with the former."""
    if "-" not in column:
        return {}
    return {
        "validation_alias": AliasChoices(column, column.replace("-", "_")),
        "serialization_alias": column,
    }


def _whole_number(value: Any) -> Any:
    """A JSON number with no fractional part (`79.0`, `7.9e1`) as the integer it is.

    OpenAPI's `type: integer` is JSON Schema's, under which 79.0 *is* an integer: refusing it
    made the published schema and the validator disagree (schemathesis found it). Everything
    else goes on to the strict check unchanged, so `79.5`, `"79"` and `true` stay type errors.
    """
    if type(value) is float and value.is_integer():
        return int(value)
    return value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def _number(column: str) -> Any:
    low, high = NUMERIC_RANGES[column]
    # strict: "40" or 40.5 or true is a client mistake, not something to guess about.
    return Field(
        ge=low, le=high, strict=True, description=f"Integer in [{low}, {high}].", **_names(column)
    )


def _category(column: str, nullable: bool = False) -> Any:
    note = " null when unknown." if nullable else ""
    return Field(description=f"One of the census values for {column}.{note}", **_names(column))


class CensusRecord(BaseModel):
    """One person's census answers: the model's 14 features."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={"examples": [EXAMPLE_RECORD]},
    )

    age: WholeNumber = _number("age")
    workclass: Workclass | None = _category("workclass", nullable=True)
    fnlgt: WholeNumber = _number("fnlgt")
    education: Education = _category("education")
    education_num: WholeNumber = _number("education-num")
    marital_status: MaritalStatus = _category("marital-status")
    occupation: Occupation | None = _category("occupation", nullable=True)
    relationship: Relationship = _category("relationship")
    race: Race = _category("race")
    sex: Sex = _category("sex")
    capital_gain: WholeNumber = _number("capital-gain")
    capital_loss: WholeNumber = _number("capital-loss")
    hours_per_week: WholeNumber = _number("hours-per-week")
    native_country: NativeCountry | None = _category("native-country", nullable=True)


class Contribution(BaseModel):
    """How much one feature moved this prediction, in log-odds (LightGBM's SHAP values)."""

    feature: str
    value: int | str | None = Field(description="The record's value of the feature.")
    contribution: float = Field(description="Positive pushes towards >50K, negative away.")


class Prediction(BaseModel):
    """The model's answer for one record."""

    label: Label = Field(description="'>50K' when probability >= threshold, else '<=50K'.")
    probability: float = Field(ge=0, le=1, description="Predicted probability of >50K.")
    threshold: float = Field(
        ge=0,
        le=1,
        description="Decision threshold this record was labelled at: the model's, or its "
        "group's when the model was mitigated with group thresholds.",
    )
    model_version: str
    id: str | None = Field(
        None,
        description="The record's id in the prediction log, for POST /feedback: the request id "
        "for /predict, '<request id>:<index>' for each record of /predict/batch.",
    )
    explanation: list[Contribution] | None = Field(
        None, description="Top features by |contribution|; only with ?explain=true."
    )


class Welcome(BaseModel):
    message: str
    docs: str
    openapi: str
    endpoints: dict[str, str]


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class PredictionLogState(BaseModel):
    """The prediction log's writer in this worker; its trouble never makes the service unready."""

    state: Literal["starting", "writing", "unavailable", "stopped"]
    queued: int = Field(description="Records waiting to be written.")
    written: int
    dropped: int = Field(description="Records not logged because the queue was full.")
    last_error: str | None = None


class Readiness(BaseModel):
    status: Literal["ready"] = "ready"
    model_version: str
    blessed: bool
    prediction_log: PredictionLogState | None = Field(
        None, description="null when logging is off (CENSUS_API_PREDICTION_LOG=false)."
    )


class FeedbackItem(BaseModel):
    """The true label of one logged record."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, description="The prediction's `id`.")
    label: Label = Field(description="What the person's income really was.")


class FeedbackOutcome(BaseModel):
    id: str
    status: Literal[200, 404] = Field(description="200 stored; 404 no logged record has this id.")
    detail: str | None = None


class FeedbackResult(BaseModel):
    stored: int
    unknown: int
    results: list[FeedbackOutcome]


class GateCheck(BaseModel):
    """One check of the deploy gate, as the gate wrote it."""

    model_config = ConfigDict(extra="ignore")

    name: str
    kind: str
    value: float | None = None
    bound: str | float | None = None
    passed: bool | None = Field(description="null when the check was skipped.")
    status: str | None = None
    enforced: bool
    reason: str


class HeadlineMetrics(BaseModel):
    model_config = ConfigDict(extra="allow")

    roc_auc: float | None = None
    accuracy: float | None = None
    f1: float | None = None
    precision: float | None = None
    recall: float | None = None
    threshold: float | None = None


class GateVerdict(BaseModel):
    """`models/verdict.json`: whether the gate lets this model ship, with every check."""

    model_config = ConfigDict(extra="ignore")

    blessed: bool
    model_version: str
    model_sha256: str
    created_at: str | None = None
    checks: list[GateCheck]
    override: dict[str, Any] | None = Field(
        None, description="Set when a person blessed the model despite failed checks, with why."
    )
    headline_metrics: HeadlineMetrics
    inputs: dict[str, str] | None = Field(
        None,
        description="sha256 of each file the gate judged; `model_metadata` is model.json's.",
    )


class ModelInfo(BaseModel):
    """What the service is serving and why it is allowed to."""

    model_version: str
    model_sha256: str
    metadata_sha256: str
    train_data_sha256: str
    num_trees: int
    threshold: float
    features: list[str]
    headline_metrics: HeadlineMetrics | None
    blessed: bool
    verdict: GateVerdict | None


class ErrorItem(BaseModel):
    field: str = Field(description="Where the problem is, e.g. 'body.education-num'.")
    message: str
    type: str


class ErrorResponse(BaseModel):
    """Every error the service returns has this shape; none carries a stack trace."""

    detail: str
    errors: list[ErrorItem] | None = None
