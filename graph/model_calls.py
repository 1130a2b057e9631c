"""Model calls that never crash a run on bad output, and the usage record each one leaves.

Whatever text a model returns enters the state from here, cleaned of what no database can
store (NUL, lone surrogates: storage/storable.py): a stray control character in a draft or a
judge's note must not fail the run when finalize writes it.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from openai import ContentFilterFinishReasonError, LengthFinishReasonError
from pydantic import BaseModel, ValidationError

from graph.configuration import GraphSettings
from graph.message_text import content_text
from graph.state import UsageRecord
from storage.storable import storable, storable_text
from tools.llm.options import with_output_limit, with_temperature

SchemaT = TypeVar("SchemaT", bound=BaseModel)
_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
# Enough for any of our schemas; a model that needs more is rambling, not answering.
STRUCTURED_MAX_TOKENS = 600
# Output a schema-constrained call may end with instead of JSON: the run goes on without it.
_BAD_OUTPUT = (OutputParserException, ValidationError, ValueError, LengthFinishReasonError,
               ContentFilterFinishReasonError)


@dataclass
class ModelReply:
    message: AIMessage
    usage: UsageRecord


def usage_record(
    message: AIMessage,
    *,
    node: str,
    provider: str,
    model: str,
    started: float,
    settings: GraphSettings,
    turn: int,
) -> UsageRecord:
    meta: Mapping[str, Any] = message.usage_metadata or {}
    tokens_in = int(meta.get("input_tokens", 0) or 0)
    tokens_out = int(meta.get("output_tokens", 0) or 0)
    return UsageRecord(
        turn=turn,
        node=node,
        provider=provider,
        model=model,
        input_tokens=tokens_in,
        output_tokens=tokens_out,
        duration_ms=int((time.perf_counter() - started) * 1000),
        cost_usd=settings.cost(provider, model, tokens_in, tokens_out),
    )


async def invoke_text(
    chat: BaseChatModel,
    messages: Sequence[BaseMessage],
    *,
    node: str,
    provider: str,
    model: str,
    settings: GraphSettings,
    turn: int,
    max_tokens: int | None = None,
) -> ModelReply:
    started = time.perf_counter()
    if max_tokens:
        chat = with_output_limit(chat, max_tokens)
    message = await chat.ainvoke(messages)
    if not isinstance(message, AIMessage):
        message = AIMessage(content=content_text(message.content))
    if isinstance(message.content, str):
        message = message.model_copy(update={"content": storable_text(message.content)})
    usage = usage_record(message, node=node, provider=provider, model=model, started=started,
                         settings=settings, turn=turn)
    return ModelReply(message=message, usage=usage)


def parse_json_reply(text: str, schema: type[SchemaT]) -> SchemaT | None:
    """Small models wrap JSON in prose or code fences; take the outermost object if it fits."""
    candidates = [text]
    match = _JSON_OBJECT.search(text)
    if match:
        candidates.append(match.group(0))
    for candidate in candidates:
        try:
            return schema.model_validate(json.loads(candidate))
        except (ValueError, ValidationError, TypeError):
            continue
    return None


async def invoke_structured(
    chat: BaseChatModel,
    schema: type[SchemaT],
    messages: Sequence[BaseMessage],
    *,
    node: str,
    provider: str,
    model: str,
    settings: GraphSettings,
    turn: int,
) -> tuple[SchemaT | None, UsageRecord, str | None]:
    """Returns (parsed or None, usage, problem). Junk JSON is a problem to report, not a crash."""
    started = time.perf_counter()
    # JSON is a decision, not prose: sampling only adds ways to break the schema or to change
    # the verdict between identical calls, so it is greedy whatever LLM_TEMPERATURE says.
    limited = with_temperature(with_output_limit(chat, STRUCTURED_MAX_TOKENS), 0.0)
    # The schema goes out as plain JSON schema and is validated here: given a pydantic class,
    # ChatOpenAI validates inside the SDK and raises instead of reporting a parsing error.
    bound = limited.with_structured_output(schema.model_json_schema(), method="json_schema", include_raw=True)
    try:
        # With include_raw=True the reply is always {"raw", "parsed", "parsing_error"}; langchain's
        # signature says dict | BaseModel whatever include_raw is.
        reply: dict[str, Any] = await bound.ainvoke(messages)  # type: ignore[assignment]
    except _BAD_OUTPUT as exc:
        empty = AIMessage(content="", usage_metadata=_usage_from_completion(exc))
        usage = usage_record(empty, node=node, provider=provider, model=model, started=started,
                             settings=settings, turn=turn)
        return None, usage, f"{node}: the model's structured output was unusable ({type(exc).__name__})"
    raw = reply.get("raw")
    message = raw if isinstance(raw, AIMessage) else AIMessage(content="")
    usage = usage_record(message, node=node, provider=provider, model=model, started=started,
                         settings=settings, turn=turn)
    parsed = storable(reply.get("parsed"))
    if isinstance(parsed, dict):
        try:
            return schema.model_validate(parsed), usage, None
        except ValidationError:
            pass
    recovered = parse_json_reply(storable_text(content_text(message.content)), schema)
    if recovered is not None:
        return recovered, usage, None
    error = reply.get("parsing_error")
    return None, usage, f"{node}: the model returned output that does not fit the schema ({type(error).__name__ if error else 'no JSON'})"


async def invoke_structured_retrying(
    chat: BaseChatModel,
    schema: type[SchemaT],
    messages: Sequence[BaseMessage],
    *,
    tries: int,
    node: str,
    provider: str,
    model: str,
    settings: GraphSettings,
    turn: int,
) -> tuple[SchemaT | None, list[UsageRecord], str | None]:
    """invoke_structured, asked again (up to `tries` calls in all) while the output is unusable:
    (parsed or None, the usage of every call, the last problem)."""
    usages: list[UsageRecord] = []
    problem: str | None = None
    for _ in range(max(1, tries)):
        parsed, usage, problem = await invoke_structured(chat, schema, messages, node=node, provider=provider,
                                                         model=model, settings=settings, turn=turn)
        usages.append(usage)
        if parsed is not None:
            return parsed, usages, None
    return None, usages, problem


_SENTENCE_WORDS = re.compile(r"[A-Za-z][A-Za-z'’-]+")


def sentences_only(items: list[str], limit: int = 6) -> list[str]:
    """The judge's issues and suggestions that read as sentences: a small model's judge also
    returns fragments, echoes of the schema and repeats, which would only confuse a revision."""
    kept: list[str] = []
    seen: set[str] = set()
    for item in items:
        text = " ".join(str(item).split())
        words = _SENTENCE_WORDS.findall(text)
        key = " ".join(w.lower() for w in words)
        letters = sum(ch.isalpha() for ch in text)
        if len(words) < 4 or letters < 0.6 * len(text) or key in seen:
            continue
        if re.fullmatch(r"(?i)(issue|suggestion|string|none|n/?a|fake text)s?\W*\d*", text):
            continue
        seen.add(key)
        kept.append(text)
    return kept[:limit]


def _usage_from_completion(exc: Exception) -> dict[str, int]:
    """openai's finish-reason errors carry the completion, whose tokens were still spent."""
    usage = getattr(getattr(exc, "completion", None), "usage", None)
    if usage is None:
        return {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    tokens_in, tokens_out = int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)
    return {"input_tokens": tokens_in, "output_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
