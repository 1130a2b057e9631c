"""A webhook URL a request asks for, checked before its run or task is queued: a 422 naming the
field when this server cannot sign webhooks or the URL breaks the rules (tools/webhooks.py).
The deliverer checks it again at every send."""

from __future__ import annotations

import asyncio

from app.http.lg_common import unprocessable
from app.webhook_settings import WebhookSettings
from tools.webhooks import UnsafeWebhookURLError, WebhookURLPolicy


async def webhook_problem(settings: WebhookSettings, url: str) -> str | None:
    """Why ``url`` may not be called, or None when it may."""
    if settings.key is None:
        return "this server does not send webhooks: WEBHOOK_SECRET, the key they are signed with, is not set"
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            await WebhookURLPolicy(settings.allow_hosts).resolve(url)
    except UnsafeWebhookURLError as exc:
        return str(exc)
    except TimeoutError:
        return f"the host did not resolve within {settings.timeout_seconds:g}s"
    return None


async def check_webhook(settings: WebhookSettings, url: str | None, field: str = "webhook") -> str | None:
    """``url`` when it may be called (None stays None), else a 422 naming ``field``."""
    if url is not None and (problem := await webhook_problem(settings, url)) is not None:
        raise unprocessable(field, problem)
    return url


async def check_run_webhook(settings: WebhookSettings, requested: str | None, default: str | None) -> str | None:
    """The webhook a new run calls, checked: its own (``requested``), else its assistant's
    ``default``. A default that cannot be called refuses the run rather than dropping the
    webhook unseen; the 422 names ``webhook`` and says the URL came from the assistant."""
    if requested is not None or default is None:
        return await check_webhook(settings, requested)
    if (problem := await webhook_problem(settings, default)) is not None:
        raise unprocessable("webhook", f"none was sent, and the assistant's default webhook (its context.webhook) "
                                       f"cannot be called: {problem}")
    return default
