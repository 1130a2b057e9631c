"""A fake Ollama that speaks the real wire protocol: GET /api/tags and NDJSON POST /api/chat.

ChatOllama always streams (even for ainvoke), so /api/chat answers with NDJSON: content pieces
with `done: false`, then a final line with `done: true`, the done reason and token counts, as
Ollama does. Requests with `format` (a JSON schema or "json") get JSON that fits the schema.
Tests script replies, latency, token counts and faults per call, and read back what was sent.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from devtools.fakes.server import FakeHTTPServer, Hang, Request, Reset, Response

Fault = Literal["http_500", "hang", "hang_mid_stream", "reset", "junk", "schema_violation", "not_found"]

DEFAULT_TEXT = "Async Python lets one process wait on many sockets at once."


@dataclass
class OllamaReply:
    """One scripted answer to POST /api/chat."""

    content: str | dict[str, Any] | list[Any] | None = None  # None: generated (from the schema if any)
    fault: Fault | None = None
    latency: float = 0.0  # seconds before the response starts
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    done_reason: str = "stop"


@dataclass
class FakeOllama(FakeHTTPServer):
    models: list[str] = field(default_factory=lambda: ["llama3.2:latest"])
    prompt_tokens: int = 21
    completion_tokens: int = 34
    default_text: str = DEFAULT_TEXT
    piece_delay: float = 0.0  # between streamed lines
    tags_fault: Fault | None = None
    tags_latency: float = 0.0

    def __post_init__(self) -> None:
        super().__init__()
        self.replies: deque[OllamaReply] = deque()
        # Consulted when no reply is queued: lets a test answer by what was asked, not by order.
        self.responder: Callable[[dict[str, Any]], OllamaReply | None] | None = None
        self.route("GET", "/api/tags", self._tags)
        self.route("POST", "/api/chat", self._chat)
        self.route("GET", "/api/version", self._version)

    # scripting -----------------------------------------------------------------------------

    def reply(self, content: str | dict[str, Any] | list[Any] | None = None, **options: Any) -> OllamaReply:
        """Queue the next answer; unqueued calls get generated answers."""
        scripted = OllamaReply(content=content, **options)
        self.replies.append(scripted)
        return scripted

    def fail(self, fault: Fault, **options: Any) -> OllamaReply:
        return self.reply(None, fault=fault, **options)

    # inspection ----------------------------------------------------------------------------

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.method == "POST" and r.path == "/api/chat"]

    @property
    def tags_requests(self) -> int:
        return sum(1 for r in self.requests if r.path == "/api/tags")

    # handlers ------------------------------------------------------------------------------

    async def _version(self, request: Request) -> Response:
        return Response.json({"version": "0.12.0"})

    async def _tags(self, request: Request) -> Response:
        if self.tags_latency:
            await asyncio.sleep(self.tags_latency)
        if self.tags_fault is not None:
            return await self._fault_response(self.tags_fault, "")
        return Response.json({"models": [_model_entry(name) for name in self.models]})

    async def _chat(self, request: Request) -> Response:
        body = request.json()
        scripted = self.replies.popleft() if self.replies else None
        if scripted is None and self.responder is not None:
            scripted = self.responder(body)
        scripted = scripted or OllamaReply()
        if scripted.latency:
            await asyncio.sleep(scripted.latency)
        model = str(body.get("model", ""))
        if scripted.fault in ("http_500", "hang", "reset", "not_found"):
            return await self._fault_response(scripted.fault, model)
        if not any(_tag(model) == _tag(listed) for listed in self.models):
            return await self._fault_response("not_found", model)
        content = self._content_for(body.get("format"), scripted)
        prompt_tokens = scripted.prompt_tokens if scripted.prompt_tokens is not None else self.prompt_tokens
        completion_tokens = (
            scripted.completion_tokens if scripted.completion_tokens is not None else self.completion_tokens
        )
        final = {
            "model": model,
            "created_at": _now(),
            "message": {"role": "assistant", "content": ""},
            "done": True,
            "done_reason": scripted.done_reason,
            "total_duration": 1_234_000_000,
            "load_duration": 12_000_000,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 100_000_000,
            "eval_count": completion_tokens,
            "eval_duration": 1_000_000_000,
        }
        if body.get("stream") is False:
            return Response.json({**final, "message": {"role": "assistant", "content": content}})
        hang = scripted.fault == "hang_mid_stream"
        pieces = _pieces(content)
        # Unpaced, the whole stream is ready at once: one write, so the fake's own CPU (it shares
        # the machine with what the bench measures) does not grow with one system call per token.
        stream: list[bytes] | AsyncIterator[bytes] = (
            self._stream(model, pieces, final, hang=hang) if hang or self.piece_delay
            else [*(_line(model, piece) for piece in pieces), (json.dumps(final) + "\n").encode()])
        return Response(status=200, body=stream, headers={"content-type": "application/x-ndjson"})

    async def _stream(
        self, model: str, pieces: list[str], final: dict[str, Any], *, hang: bool
    ) -> AsyncIterator[bytes]:
        for index, piece in enumerate(pieces):
            yield _line(model, piece)
            if hang and index == 0:
                await asyncio.sleep(3600)
            if self.piece_delay:
                await asyncio.sleep(self.piece_delay)
        yield (json.dumps(final) + "\n").encode()

    def _content_for(self, fmt: Any, scripted: OllamaReply) -> str:
        if scripted.fault == "junk":
            return "Sure! Here is the JSON you asked for: {title: oops" if fmt else "\x00{junk"
        if scripted.fault == "schema_violation":
            return json.dumps({"unexpected": True, "confidence": "very"})
        if scripted.content is not None:
            return scripted.content if isinstance(scripted.content, str) else json.dumps(scripted.content)
        if isinstance(fmt, dict):
            return json.dumps(generate_from_schema(fmt))
        if fmt == "json":
            return json.dumps({"text": self.default_text})
        return self.default_text

    async def _fault_response(self, fault: Fault, model: str) -> Response:
        if fault == "hang":
            raise Hang()
        if fault == "reset":
            raise Reset()
        if fault == "not_found":
            return Response.json({"error": f'model "{model}" not found, try pulling it first'}, status=404)
        return Response.json({"error": "llama runner process has terminated: exit status 2"}, status=500)


def _line(model: str, piece: str) -> bytes:
    """One streamed NDJSON line: a piece of the message, not done yet."""
    line = {"model": model, "created_at": _now(), "message": {"role": "assistant", "content": piece}, "done": False}
    return (json.dumps(line) + "\n").encode()


def _tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


def _model_entry(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "model": name,
        "modified_at": "2025-01-01T00:00:00Z",
        "size": 2_019_393_189,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "llama",
            "families": ["llama"],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def _pieces(content: str) -> list[str]:
    """Split like a tokenizer would, roughly: words with their trailing whitespace."""
    pieces = re.findall(r"\S+\s*|\s+", content)
    return pieces or [""]


def generate_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """A value that validates against a JSON schema (the subset pydantic emits)."""
    root = schema if root is None else root
    if "$ref" in schema:
        return generate_from_schema(_resolve_ref(root, schema["$ref"]), root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    for combinator in ("anyOf", "oneOf", "allOf"):
        if combinator in schema:
            options = [o for o in schema[combinator] if o.get("type") != "null"] or schema[combinator]
            return generate_from_schema(options[0], root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties: dict[str, Any] = schema.get("properties", {})
        return {name: generate_from_schema(sub, root) for name, sub in properties.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        item_schema = schema.get("items", {"type": "string"})
        return [generate_from_schema(item_schema, root) for _ in range(count)]
    if kind in ("number", "integer"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema)


def _resolve_ref(root: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        value: float = (low + high) / 2
    elif low is not None:
        value = low + 1
    elif high is not None:
        value = high - 1
    else:
        value = 1
    if integer:
        return int(round(value))
    return float(value)


def _string(schema: dict[str, Any]) -> str:
    if schema.get("format") in ("uri", "url"):
        return "https://example.com/fake"
    if schema.get("format") == "date-time":
        return "2025-01-01T00:00:00Z"
    text = str(schema.get("title") or "fake text").lower()
    min_length = int(schema.get("minLength", 0))
    max_length = schema.get("maxLength")
    if len(text) < min_length:
        text = text + "x" * (min_length - len(text))
    if max_length is not None:
        text = text[: int(max_length)]
    return text
