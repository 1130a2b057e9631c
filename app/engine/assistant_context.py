"""An assistant's run defaults and how a run's own settings sit over them.

Shared by the HTTP routes that start runs and by the cron scheduler, which resolves a cron's
assistant at each tick so that a new version of the assistant reaches the next scheduled run.

An assistant's default webhook is the ``webhook`` key of its context (and config.configurable,
kept equal to it). It lives there rather than in the metadata because it is a default of the
runs made with the assistant, like ``max_revisions``: it is versioned with the other defaults
(setting an old version as the latest brings its webhook back), replaced with them by an update,
and the metadata stays the client's own, to describe and search by. It never reaches the graph:
a run's context takes DEFAULT_FIELDS only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.engine.api_runs import DEFAULT_FIELDS
from storage.models import Assistant

# The key of an assistant's context (and config.configurable) that holds its default webhook.
WEBHOOK_KEY = "webhook"


def defaults_of(assistant: Assistant) -> dict[str, Any]:
    """The run defaults an assistant holds."""
    configurable = (assistant.config or {}).get("configurable") or {}
    given = {**configurable, **(assistant.context or {})}
    return {key: value for key, value in given.items() if key in DEFAULT_FIELDS and value is not None}


def webhook_of(assistant: Assistant | None) -> str | None:
    """The webhook the runs made with ``assistant`` call when they name none of their own."""
    if assistant is None:
        return None
    configurable = (assistant.config or {}).get("configurable") or {}
    url = (assistant.context or {}).get(WEBHOOK_KEY) or configurable.get(WEBHOOK_KEY)
    return url if isinstance(url, str) and url else None


def own_defaults(configurable: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run defaults a run's config.configurable sets itself."""
    return {key: value for key, value in (configurable or {}).items() if key in DEFAULT_FIELDS and value is not None}


def merged_context(defaults: Mapping[str, Any], configurable: Mapping[str, Any] | None,
                   context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's context as sent, plus the assistant's defaults it set nowhere (a configurable
    key already wins over the assistant's, in app/engine/api_runs.py's run_context)."""
    own = own_defaults(configurable)
    return {**{key: value for key, value in defaults.items() if key not in own}, **(context or {})}
