"""Run-scoped dependencies handed to nodes through LangGraph's runtime context.

The service and the CLI pass a fully built `Dependencies` in `context`. LangGraph Studio (via
`langgraph dev`) can only pass plain JSON, so when no dependencies arrive the graph builds them
from the environment, once per event loop, and reuses them.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from langchain_core.language_models import BaseChatModel
from langgraph.runtime import Runtime
from pydantic import InstanceOf
from pydantic.json_schema import SkipJsonSchema

from graph.configuration import GraphSettings, PipelineSettings
from tools.llm.provider import ModelProvider
from tools.pages import PageSource
from tools.pexels import PexelsClient
from tools.serper import SerperClient

OutcomeSaver = Callable[[dict[str, Any]], Awaitable[None]]


@dataclass
class Dependencies:
    settings: GraphSettings
    models: ModelProvider
    serper: SerperClient
    pexels: PexelsClient
    save_outcome: OutcomeSaver | None = None
    # The critique's judge when JUDGE_PROVIDER names one; None: the writer's model judges.
    judge: ModelProvider | None = None
    # Reads the top sources' pages for evidence; None: research keeps to the search snippets.
    pages: PageSource | None = None
    # Stores the draft on offer and the attempts so far while a run waits for approval.
    save_pending: OutcomeSaver | None = None

    @classmethod
    def from_settings(cls, http: httpx.AsyncClient, settings: PipelineSettings,
                      save_outcome: OutcomeSaver | None = None,
                      save_pending: OutcomeSaver | None = None) -> Dependencies:
        return cls(
            settings=settings.graph,
            models=ModelProvider(settings.llm),
            serper=settings.clients.serper_client(http),
            pexels=settings.clients.pexels_client(http),
            save_outcome=save_outcome,
            judge=ModelProvider(settings.judge) if settings.judge is not None else None,
            pages=settings.clients.page_reader(http),
            save_pending=save_pending,
        )

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every API key these dependencies send upstream: redacted from any upstream text a
        run shows (warnings, errors), since an upstream may echo the request's headers."""
        keys = [self.models.settings.openai_api_key, *self.serper.secrets, *self.pexels.secrets]
        if self.judge is not None:
            keys.append(self.judge.settings.openai_api_key)
        return tuple(dict.fromkeys(key for key in keys if key))

    async def aclose(self) -> None:
        """Close the model providers (HTTP clients, the embedded server's reference)."""
        await self.models.aclose()
        if self.judge is not None:
            await self.judge.aclose()


@dataclass
class DraftloopContext:
    """What a run may carry. Plain fields can come from Studio or the API as JSON."""

    require_approval: bool | None = None
    quality_threshold: int | None = None
    max_revisions: int | None = None
    # Hidden from the JSON schema Studio shows: only in-process callers can hand over clients.
    deps: SkipJsonSchema[InstanceOf[Dependencies] | None] = field(default=None, repr=False)


_env_dependencies: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Dependencies] = (
    weakref.WeakKeyDictionary()
)


async def _from_environment() -> Dependencies:
    # An httpx client is bound to the loop that opened it, so the cache is per loop.
    loop = asyncio.get_running_loop()
    deps = _env_dependencies.get(loop)
    if deps is None:
        # The one place library code reads the environment: `langgraph dev` builds the module's
        # graph with no way to hand settings over, so they come from the environment here.
        deps = Dependencies.from_settings(httpx.AsyncClient(), PipelineSettings.from_env(os.environ))
        _env_dependencies[loop] = deps
    return deps


async def dependencies(runtime: Runtime[DraftloopContext] | None) -> Dependencies:
    context = runtime.context if runtime is not None else None
    if isinstance(context, DraftloopContext) and context.deps is not None:
        return context.deps
    return await _from_environment()


def effective_settings(runtime: Runtime[DraftloopContext] | None, deps: Dependencies) -> GraphSettings:
    """Per-run overrides from the context win over the process settings."""
    context = runtime.context if runtime is not None else None
    settings = deps.settings
    if not isinstance(context, DraftloopContext):
        return settings
    overrides: dict[str, Any] = {}
    if context.quality_threshold is not None:
        overrides["quality_threshold"] = int(context.quality_threshold)
    if context.max_revisions is not None:
        overrides["max_revisions"] = int(context.max_revisions)
    if not overrides:
        return settings
    return GraphSettings(**{**settings.__dict__, **overrides})


async def active_model(deps: Dependencies) -> tuple[BaseChatModel, str, str]:
    """The chat model plus the provider and model names that usage records carry."""
    chat = await deps.models.chat_model()
    info = await deps.models.describe()
    return chat, info.provider, info.model


async def judge_model(deps: Dependencies) -> tuple[BaseChatModel, str, str]:
    """The critique's judge: JUDGE_PROVIDER's model when set, else the writer's (structured
    calls run at temperature 0 either way)."""
    if deps.judge is None:
        return await active_model(deps)
    chat = await deps.judge.chat_model()
    info = await deps.judge.describe()
    return chat, info.provider, info.model
