"""The one settings object of a process, built once at start-up (the service, `draftloop`'s
commands, a worker) from the environment and `./.env`, and passed down from there: library
code does not read the environment itself."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from app.service_settings import ServiceSettings
from graph.configuration import PipelineSettings
from storage.engine import database_url_from_env
from tools.settings_reader import load_dotenv

DOTENV = Path(".env")


@dataclass(frozen=True)
class Configuration:
    # service.database_url is always set: storage.engine.database_url_from_env resolved it.
    service: ServiceSettings
    pipeline: PipelineSettings

    @property
    def database_url(self) -> str:
        assert self.service.database_url is not None  # set by from_env
        return self.service.database_url

    @classmethod
    def from_env(cls, env: Mapping[str, str], database_url: str | None = None) -> Configuration:
        """Every setting read from ``env``; a bad value is a ValueError (a ProviderConfigError for
        the models) naming its variable. ``database_url``, normalised already, is a command's
        --database-url: it replaces DATABASE_URL. Sync on purpose: resolving the database may
        create the data dir."""
        service = replace(ServiceSettings.from_env(env), database_url=database_url or database_url_from_env(env))
        return cls(service=service, pipeline=PipelineSettings.from_env(env))

    @classmethod
    def load(cls, database_url: str | None = None, dotenv: Path = DOTENV) -> Configuration:
        """The process's configuration: ``dotenv`` fills in what the shell has not set."""
        load_dotenv(dotenv)
        return cls.from_env(os.environ, database_url)
