"""Applies the settings registry to runs, so that a change takes effect without a restart.

The executor asks for the effective values when it starts a run and when it claims work. They
come from one small query, cached for ``ttl_seconds``: another process sharing the database
sees a change within that time, and the process that made it sees it at once (``invalidate``).

Precedence, highest first: what the run itself carries (a task's fields, a LangGraph run's
context), then a stored setting, then the environment.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.service_settings import ServiceSettings
from app.settings_registry import EnvConfig, Resolved, resolve
from graph.context import Dependencies, DraftloopContext
from storage.settings_store import SettingsRepository
from tools.llm.provider import ModelProvider
from tools.llm.settings import RequestLimit

log = logging.getLogger("draftloop.settings")

DEFAULT_TTL_SECONDS = 1.0
# Registry keys that map one to one onto GraphSettings fields.
_GRAPH_FIELDS = ("quality_threshold", "max_revisions", "research_enabled", "images_enabled",
                 "default_target_words", "search_results", "research_timeout")


class RunSettings:
    """The effective settings for new runs, and the model providers they select.

    A provider per (provider, model) is built once and kept until ``aclose``: runs still using
    it may outlive a change, and building one per run would re-probe Ollama every time.
    """

    def __init__(self, sessions: async_sessionmaker[AsyncSession], deps: Dependencies, service: ServiceSettings,
                 *, ttl_seconds: float = DEFAULT_TTL_SECONDS) -> None:
        self.sessions = sessions
        self.env = EnvConfig(deps.settings, service, deps.models.settings)
        self.ttl_seconds = ttl_seconds
        self._base_models = deps.models
        self._models: dict[tuple[str, str], ModelProvider] = {}
        self._resolved: dict[str, Resolved] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()

    def invalidate(self) -> None:
        """A setting changed in this process: the next read goes to the database."""
        self._resolved = None

    async def resolved(self) -> dict[str, Resolved]:
        """Every setting with its value and source; at most ``ttl_seconds`` old."""
        cached = self._resolved
        if cached is not None and time.monotonic() - self._read_at < self.ttl_seconds:
            return cached
        async with self._lock:
            if self._resolved is not None and time.monotonic() - self._read_at < self.ttl_seconds:
                return self._resolved
            try:
                async with self.sessions() as session:
                    stored = await SettingsRepository(session).values()
            except (SQLAlchemyError, OSError) as exc:
                # Runs go on with the last values seen (or the environment's) while the database
                # is away; the next read tries again.
                log.warning("reading settings failed, using the last known values: %s", exc)
                return cached if cached is not None else resolve(self.env, {})
            self._resolved = resolve(self.env, stored)
            self._read_at = time.monotonic()
            return self._resolved

    async def values(self) -> dict[str, Any]:
        return {key: item.value for key, item in (await self.resolved()).items()}

    async def concurrency(self) -> int:
        return int((await self.values())["worker_concurrency"])

    async def context_for_run(self, context: DraftloopContext, *, model: str | None = None) -> DraftloopContext:
        """``context`` with the registry applied to its dependencies and defaults; the fields
        the run set itself are left as they are, so they still win, as does ``model`` (the run's
        or its assistant's chat model, of the provider the registry selects)."""
        values = await self.values()
        deps = context.deps
        changes: dict[str, Any] = {}
        if deps is not None:
            graph = {name: values[name] for name in _GRAPH_FIELDS if getattr(deps.settings, name) != values[name]}
            models = self.provider_for(values["model_provider"], model or values["model_name"])
            if graph or models is not deps.models:
                changes["deps"] = replace(deps, settings=replace(deps.settings, **graph) if graph else deps.settings,
                                          models=models)
        # Only a "yes" is applied: a request's own words ("let me approve it") may still ask.
        if context.require_approval is None and values["require_approval"]:
            changes["require_approval"] = True
        return replace(context, **changes) if changes else context

    async def request_limit(self) -> RequestLimit:
        """How long a request new runs can take: the context of the model they will use."""
        values = await self.values()
        return await self.provider_for(values["model_provider"], values["model_name"]).request_limit()

    def provider_for(self, provider: str, model: str) -> ModelProvider:
        """The environment's provider when the registry selects what it serves, else one built
        (once) from the environment's model settings with the provider and model swapped."""
        llm = self.env.llm
        if provider == llm.provider and model == self.env.model_for(provider):
            return self._base_models
        key = (provider, model)
        built = self._models.get(key)
        if built is None:
            if provider == "openai":
                settings = llm.with_overrides(provider=provider, openai_model=model)
            elif provider == "embedded":
                settings = llm.with_overrides(provider=provider)
            else:
                settings = llm.with_overrides(provider=provider, ollama_model=model)
            built = self._models[key] = ModelProvider(settings)
            log.info("model provider from settings: %s %s", provider, model)
        return built

    async def aclose(self) -> None:
        """Close the providers built here; the environment's belongs to the graph runtime."""
        providers, self._models = list(self._models.values()), {}
        for provider in providers:
            await provider.aclose()
