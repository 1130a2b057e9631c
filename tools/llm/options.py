"""Per-call model options: an output cap, a sampling temperature, JSON-schema output."""

from __future__ import annotations

import json
from functools import partial
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.runnables import Runnable, RunnableLambda
from langchain_ollama import ChatOllama
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, ValidationError


def with_output_limit(model: BaseChatModel, max_tokens: int) -> BaseChatModel:
    """A copy of the model that stops after max_tokens: small models otherwise ramble until the
    context is full, and a long ramble costs minutes on a CPU."""
    if isinstance(model, ChatOllama):
        return model.model_copy(update={"num_predict": max_tokens})
    if isinstance(model, ChatOpenAI):
        current = model.max_tokens
        return model.model_copy(update={"max_tokens": min(current, max_tokens) if current else max_tokens})
    return model


def with_temperature(model: BaseChatModel, value: float) -> BaseChatModel:
    """A copy of the model that samples at temperature ``value`` (ChatOllama and ChatOpenAI);
    other chat models are returned as they are."""
    if isinstance(model, (ChatOllama, ChatOpenAI)):
        return model.model_copy(update={"temperature": value})
    return model


def structured(model: BaseChatModel, schema: type[BaseModel] | dict[str, Any]) -> Runnable[LanguageModelInput, Any]:
    """The model constrained to a JSON schema (Ollama `format`, OpenAI `response_format`).

    Bad output raises OutputParserException whatever the provider. Given a pydantic class,
    ChatOpenAI would validate inside the openai SDK and raise a bare pydantic ValidationError
    from the call itself (even with include_raw=True), so the class is sent as its JSON schema
    and validated here instead.
    """
    if isinstance(schema, dict):
        return model.with_structured_output(schema, method="json_schema")
    as_json = model.with_structured_output(schema.model_json_schema(), method="json_schema")
    return as_json | RunnableLambda(partial(_validate, schema))


def _validate(schema: type[BaseModel], value: Any) -> BaseModel:
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        raise OutputParserException(
            f"The model's JSON does not fit {schema.__name__}: {exc}", llm_output=json.dumps(value)
        ) from exc
