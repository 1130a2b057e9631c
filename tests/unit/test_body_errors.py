"""Messages of refused request bodies: each names the field, its rule and what was sent."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from app.http.body_errors import body_model, field_errors, shown
from app.http.lg_schemas import RunCreate


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    width: int | None = Field(default=None, ge=1)


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=20)
    ratio: float | None = Field(default=None, gt=0, le=1)
    count: int = Field(default=1, ge=0)
    mode: Literal["a", "b"] = "a"
    tags: list[Annotated[str, Field(max_length=5)]] = Field(default_factory=list, max_length=2)
    inner: Inner | None = None
    either: int | str | None = None

    @model_validator(mode="after")
    def _check(self) -> Body:
        if self.name == "taken":
            raise ValueError("name: is taken; choose another")
        return self


def errors_of(model: type[BaseModel], value: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationError) as raised:
        model.model_validate(value)
    return field_errors(model, raised.value.errors())


@pytest.mark.parametrize(("value", "field", "message"), [
    ({}, "name", "is required"),
    ({"name": 5}, "name", "must be a string of 1 to 20 characters, got 5"),
    ({"name": "x", "ratio": 0}, "ratio", "must be a number greater than 0 and at most 1, got 0"),
    ({"name": "x", "count": -1}, "count", "must be an integer of at least 0, got -1"),
    ({"name": "x", "count": True}, "count", "must be an integer of at least 0, got true"),
    ({"name": "x", "mode": "c"}, "mode", 'must be one of a, b, got the string "c"'),
    ({"name": "x", "tags": ["toolong"]}, "tags.0", 'must be a string of at most 5 characters, got the string "toolong"'),
    ({"name": "x", "inner": {"width": "3"}}, "inner.width", 'must be an integer of at least 1, got the string "3"'),
    ({"name": "x", "inner": []}, "inner", "must be a JSON object, got a list of 0 items"),
    ({"name": "x", "either": 1.5}, "either", "must be an integer or a string, got 1.5"),
    ({"name": "x", "nope": 1}, "nope",
     "is not a field of this body; its fields are name, ratio, count, mode, tags, inner, either"),
    ({"name": "taken"}, "name", "is taken; choose another"),
    ([], "body", "must be a JSON object, got a list of 0 items"),
])
def test_each_error_names_the_field_and_its_rule(value: Any, field: str, message: str) -> None:
    assert errors_of(Body, value) == [{"field": field, "message": message}]


def test_an_unknown_field_of_a_large_body_points_at_the_schema_instead_of_listing_them() -> None:
    [error] = errors_of(RunCreate, {"assistant_id": "draftloop", "surprise": 1})
    assert error == {"field": "surprise",
                     "message": "is not a field of this body (the OpenAPI schema at /schema lists them)"}


def test_what_was_sent_is_shown_short() -> None:
    assert shown("x" * 41) == "a string of 41 characters"
    assert shown({"a": 1}) == "an object"
    assert shown(None) == "null" and shown(False) == "false"


def test_the_model_is_found_in_an_optional_body_annotation() -> None:
    assert body_model(RunCreate | None) is RunCreate
    assert body_model(dict[str, Any]) is None
