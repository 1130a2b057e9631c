"""A fake OpenAI-compatible server (vLLM, llama.cpp, LM Studio): POST /v1/chat/completions.

Answers with the non-streaming chat.completion JSON including `usage`, or with SSE chunks and a
final usage chunk when the client streams. `response_format` json_schema gets schema-fitting JSON.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator
from typing import Any

from devtools.fakes.ollama import generate_from_schema
from devtools.fakes.scripting import FaultQueue
from devtools.fakes.server import FakeHTTPServer, Request, Response


class FakeOpenAI(FakeHTTPServer):
    def __init__(self, *, prompt_tokens: int = 11, completion_tokens: int = 7) -> None:
        super().__init__()
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.replies: deque[str] = deque()
        self.faults = FaultQueue()
        self.route("POST", "/v1/chat/completions", self._chat)
        self.route("GET", "/v1/models", self._models)

    @property
    def chat_requests(self) -> list[dict[str, Any]]:
        return [r.json() for r in self.requests if r.path == "/v1/chat/completions"]

    def reply(self, content: str) -> None:
        self.replies.append(content)

    async def _models(self, request: Request) -> Response:
        return Response.json({"object": "list", "data": [{"id": "local-model", "object": "model"}]})

    async def _chat(self, request: Request) -> Response:
        scripted = await self.faults.next()
        if scripted is not None:
            return scripted
        body = request.json()
        response_format = body.get("response_format") or {}
        if self.replies:
            content = self.replies.popleft()
        elif response_format.get("type") == "json_schema":
            content = json.dumps(generate_from_schema(response_format["json_schema"]["schema"]))
        else:
            content = "Hello from a fake OpenAI server."
        usage = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if body.get("stream"):
            return Response(
                body=self._sse(body["model"], content, usage),
                headers={"content-type": "text/event-stream"},
            )
        return Response.json({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": body["model"],
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }],
            "usage": usage,
        })

    async def _sse(self, model: str, content: str, usage: dict[str, int]) -> AsyncIterator[bytes]:
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model}
        for piece in content.split(" "):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": piece + " "}, "finish_reason": None}]}
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        done = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        yield f"data: {json.dumps(done)}\n\n".encode()
        yield f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n".encode()
        yield b"data: [DONE]\n\n"
