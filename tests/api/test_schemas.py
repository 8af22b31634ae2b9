"""The request schema is derived from the domain schema, so the two cannot drift apart."""

from __future__ import annotations

import json
import typing

from pydantic import ValidationError

from census_pipeline.api.body import RECORD
from census_pipeline.api.schemas import EXAMPLE_RECORD, CensusRecord, Label
from census_pipeline.schema import CATEGORY_DOMAINS, FEATURES, LABELS, NULLABLE, NUMERIC_RANGES


def _properties() -> dict[str, typing.Any]:
    schema = CensusRecord.model_json_schema()
    properties: dict[str, typing.Any] = schema["properties"]
    assert set(schema["required"]) == set(FEATURES)
    return properties


def test_fields_are_the_features_in_order() -> None:
    assert list(_properties()) == list(FEATURES)


def test_categories_are_closed_enumerations_of_the_domains() -> None:
    properties = _properties()
    for field, domain in CATEGORY_DOMAINS.items():
        prop = properties[field]
        options = prop.get("anyOf", [prop])
        enums = [o["enum"] for o in options if "enum" in o]
        assert enums == [list(domain)], field
        assert ({"type": "null"} in options) == (field in NULLABLE), field


def test_numbers_carry_their_ranges() -> None:
    properties = _properties()
    for field, (low, high) in NUMERIC_RANGES.items():
        assert properties[field]["type"] == "integer"
        assert (properties[field]["minimum"], properties[field]["maximum"]) == (low, high)


def test_labels_match_the_domain() -> None:
    assert typing.get_args(Label) == LABELS


def test_example_is_valid_and_round_trips_with_hyphens() -> None:
    record = CensusRecord.model_validate(EXAMPLE_RECORD)
    assert record.model_dump(by_alias=True) == EXAMPLE_RECORD


def test_fast_body_validator_follows_the_model() -> None:
    # body.RECORD is built from CensusRecord's fields; both must accept and refuse alike.
    cases: list[dict[str, object]] = [
        EXAMPLE_RECORD,
        {**EXAMPLE_RECORD, "age": 16},
        {**EXAMPLE_RECORD, "age": 39.0},
        {**EXAMPLE_RECORD, "workclass": None},
        {**EXAMPLE_RECORD, "sex": None},
        {**EXAMPLE_RECORD, "race": "Martian"},
        {**EXAMPLE_RECORD, "extra": 1},
        {k: v for k, v in EXAMPLE_RECORD.items() if k != "fnlgt"},
        {k.replace("-", "_"): v for k, v in EXAMPLE_RECORD.items()},
    ]
    for case in cases:
        payload = json.dumps(case).encode()
        try:
            CensusRecord.model_validate_json(payload)
            model_ok = True
        except ValidationError:
            model_ok = False
        try:
            parsed = RECORD.validate_json(payload)
            fast_ok = True
        except ValidationError:
            fast_ok = False
        assert model_ok == fast_ok, case
        if fast_ok:
            assert parsed == CensusRecord.model_validate(case).model_dump(by_alias=True)
