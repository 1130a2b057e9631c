"""The fake Ollama every run talks to, the environment that points a graph at it, and a task's body."""

from __future__ import annotations

import argparse
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FakeModel:
    server: Any
    latency: float
    calls: Counter[str] = field(default_factory=Counter)
    writer: Any = None

    @property
    def base_url(self) -> str:
        return str(self.server.base_url)

    def reset(self) -> None:
        # The fake records every request; drop them between phases so memory stays bounded.
        self.server.requests.clear()
        self.writer.calls.clear()
        self.writer.prompts.clear()


async def start_fake(latency: float) -> FakeModel:
    from devtools.fakes.ollama import FakeOllama
    from devtools.fakes.writer import ScriptedWriter

    server = FakeOllama()
    writer = ScriptedWriter(scores=[85])
    fake = FakeModel(server=server, latency=latency, writer=writer)

    def responder(body: dict[str, Any]) -> Any:
        reply = writer(body)
        reply.latency = latency  # every call, not only drafts
        fake.calls[writer.calls[-1] if writer.calls else "?"] += 1
        return reply

    server.responder = responder
    await server.start()
    return fake


def service_env(fake: FakeModel, extra: dict[str, str]) -> dict[str, str]:
    """What both the in-process graph and the server read: the model is the fake, no research."""
    env = {
        "LLM_PROVIDER": "ollama",
        "OLLAMA_BASE_URL": fake.base_url,
        "OLLAMA_MODEL": "llama3.2",
        "LLM_TIMEOUT": "60",
        "LLM_MAX_RETRIES": "0",
        "RESEARCH_ENABLED": "false",
        "IMAGES_ENABLED": "false",
        "LANGSMITH_TRACING": "false",
    }
    env.update(extra)
    return env


def task_body(args: argparse.Namespace, index: int) -> dict[str, Any]:
    return {
        "request": f"Write a {args.words}-word blog post about async Python for backend developers (bench {index})",
        "research": False,
        "images": False,
    }
