"""Request-body validation errors as messages that name the field and its rule.

Pydantic's own messages ("Input should be a valid integer") name neither the bounds nor what
was sent, and Litestar keeps only those. Here each error is rebuilt from the body model's JSON
schema: ``target_words: must be an integer between 20 and 5000, got true``. The models are
validated strictly (app/http/app.py), so a JSON type other than the field's is such an error
rather than a value coerced into another meaning (``true`` read as 1, ``"300"`` as 300).
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

# A model-level check names its field as the message's first word: "publish: ...".
_FIELD_PREFIX_SEPARATOR = ": "
# Up to this many fields are listed when a body holds an unknown one; more point at the schema.
_MAX_LISTED_FIELDS = 15
_SHOWN_CHARS = 40
# A body that is not an object at all.
_OBJECT_TYPES = frozenset({"model_type", "model_attributes_type", "dict_type", "dataclass_type"})
_OWN_MESSAGE_TYPES = frozenset({"value_error", "assertion_error"})
# Errors about a value's bounds or choices (the rest of that kind end in _type or _parsing).
_CONSTRAINT_TYPES = frozenset({
    "greater_than", "greater_than_equal", "less_than", "less_than_equal", "multiple_of", "finite_number",
    "string_too_short", "string_too_long", "string_pattern_mismatch", "too_short", "too_long", "literal_error",
    "enum", "int_from_float", "url_parsing", "url_scheme",
})


def body_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a handler's ``data`` annotation names (``RunCreate | None`` too)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, typing.Annotated):
        for member in typing.get_args(annotation):
            if (model := body_model(member)) is not None:
                return model
    return None


def field_errors(model: type[BaseModel] | None, errors: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """One {"field", "message"} per field, in the order pydantic reported them."""
    root = _schema(model) if model is not None else {}
    found: dict[str, str] = {}
    for error in errors:
        field, message = _field_error(root, error)
        found.setdefault(field, message)
    return [{"field": field, "message": message} for field, message in found.items()]


def shown(value: Any) -> str:
    """What the client sent, short enough for an error message."""
    if isinstance(value, str):
        if len(value) > _SHOWN_CHARS:
            return f"a string of {len(value)} characters"
        return "the string " + json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value)} item{'' if len(value) == 1 else 's'}"
    text = json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[:_SHOWN_CHARS - 1] + "…"


@functools.cache
def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return model.model_json_schema()


def _field_error(root: dict[str, Any], error: Mapping[str, Any]) -> tuple[str, str]:
    loc = list(error.get("loc") or ())
    kind = str(error.get("type", ""))
    message = str(error.get("msg", ""))
    if kind == "missing":
        return _dotted(loc), "is required"
    if kind == "extra_forbidden":
        _, parent = _walk(root, loc[:-1])
        return _dotted(loc), _unknown_field(parent, root)
    path, node = _walk(root, loc)
    field = _dotted(path) or "body"
    if kind in _OWN_MESSAGE_TYPES:
        message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
        return _own_field(field, message, node, root) if not path else (field, message)
    if kind in _OBJECT_TYPES and not path:
        return "body", f"must be a JSON object, got {shown(error.get('input'))}"
    if not kind.endswith(("_type", "_parsing")) and kind not in _CONSTRAINT_TYPES:
        # A custom error (PydanticCustomError) already says what the field must be.
        return field, message
    return field, f"must be {_rule(node, root)}, got {shown(error.get('input'))}"



def _own_field(field: str, message: str, node: Mapping[str, Any], root: dict[str, Any]) -> tuple[str, str]:
    """A model-level check's message, under the field it names first ("publish: ...")."""
    name, separator, rest = message.partition(_FIELD_PREFIX_SEPARATOR)
    if separator and name in _deref(node, root).get("properties", {}):
        return name, rest
    return field, message


def _unknown_field(parent: Mapping[str, Any], root: dict[str, Any]) -> str:
    names = list(_deref(parent, root).get("properties", {}))
    if not names or len(names) > _MAX_LISTED_FIELDS:
        return "is not a field of this body (the OpenAPI schema at /schema lists them)"
    return f"is not a field of this body; its fields are {', '.join(names)}"


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _deref(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        node = root.get("$defs", {}).get(str(node["$ref"]).rsplit("/", 1)[-1], {})
    return node


def _non_null(node: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any]:
    """``X | None`` as X: null is always allowed where it is, and never the rule to state."""
    node = _deref(node, root)
    options = [option for option in node.get("anyOf", ()) if option.get("type") != "null"]
    return _deref(options[0], root) if len(options) == 1 else node


def _walk(root: dict[str, Any], loc: Sequence[Any]) -> tuple[list[Any], Mapping[str, Any]]:
    """The part of ``loc`` that names fields and list items, and the schema found there. What
    follows is a union member's tag ("int", "list[str]"): the error concerns the field so far."""
    node: Mapping[str, Any] = root
    path: list[Any] = []
    for part in loc:
        node = _non_null(node, root)
        if isinstance(part, int) and isinstance(node.get("items"), Mapping):
            node = node["items"]
        elif isinstance(part, str) and part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(part, str) and isinstance(node.get("additionalProperties"), Mapping):
            node = node["additionalProperties"]
        else:
            break
        path.append(part)
    return path, node


def _rule(node: Mapping[str, Any], root: Mapping[str, Any]) -> str:
    """The field's rule in words: "an integer between 20 and 5000", "one of x, linkedin"."""
    node = _non_null(node, root)
    options = [option for option in node.get("anyOf", node.get("oneOf", ())) if option.get("type") != "null"]
    if options:
        return " or ".join(dict.fromkeys(_rule(option, root) for option in options))
    if "const" in node:
        return json.dumps(node["const"])
    if "enum" in node:
        return "one of " + ", ".join(str(value) for value in node["enum"])
    kind = node.get("type")
    if kind == "integer":
        return "an integer" + _bounds(node)
    if kind == "number":
        return "a number" + _bounds(node)
    if kind == "boolean":
        return "a JSON boolean (true or false)"
    if kind == "string":
        return "a string" + _length(node, "character") + _pattern(node)
    if kind == "array":
        items = node.get("items")
        each = f", each {_rule(items, root)}" if isinstance(items, Mapping) and _non_null(items, root) else ""
        return "a list" + _length(node, "item", low="minItems", high="maxItems") + each
    if kind == "object":
        return "a JSON object"
    return "a valid value"


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _bounds(node: Mapping[str, Any]) -> str:
    low, high = node.get("minimum"), node.get("maximum")
    if low is not None and high is not None:
        return f" between {_number(low)} and {_number(high)}"
    parts = []
    if low is not None:
        parts.append(f"at least {_number(low)}")
    if node.get("exclusiveMinimum") is not None:
        parts.append(f"greater than {_number(node['exclusiveMinimum'])}")
    if high is not None:
        parts.append(f"at most {_number(high)}")
    if node.get("exclusiveMaximum") is not None:
        parts.append(f"less than {_number(node['exclusiveMaximum'])}")
    phrase = " and ".join(parts)
    return f" of {phrase}" if phrase.startswith("at ") else f" {phrase}" if phrase else ""


def _length(node: Mapping[str, Any], unit: str, *, low: str = "minLength", high: str = "maxLength") -> str:
    shortest, longest = node.get(low), node.get(high)
    if longest is not None:
        if shortest:
            return f" of {shortest} to {longest} {unit}s"
        return f" of at most {longest} {unit}{'' if longest == 1 else 's'}"
    if shortest:
        return f" of at least {shortest} {unit}{'' if shortest == 1 else 's'}"
    return ""


def _pattern(node: Mapping[str, Any]) -> str:
    if "pattern" not in node:
        return ""
    # The description says the pattern in words where a field has one (a slug's does).
    return f": {node['description']}" if node.get("description") else f" matching {node['pattern']}"
