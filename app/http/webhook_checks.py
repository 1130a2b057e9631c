"""A webhook URL a request asks for, checked before its run or task is queued: a 422 naming the
field when this server cannot sign webhooks or the URL breaks the rules (tools/webhooks.py).
The deliverer checks it again at every send."""

from __future__ import annotations

import asyncio

from app.http.lg_common import unprocessable
from app.webhook_settings import WebhookSettings
from tools.webhooks import UnsafeWebhookURLError, WebhookURLPolicy


async def check_webhook(settings: WebhookSettings, url: str | None, field: str = "webhook") -> str | None:
    """``url`` when it may be called (None stays None), else a 422 naming ``field``."""
    if url is None:
        return None
    if settings.key is None:
        raise unprocessable(field, "this server does not send webhooks: WEBHOOK_SECRET, the key they are signed "
                                   "with, is not set")
    try:
        async with asyncio.timeout(settings.timeout_seconds):
            await WebhookURLPolicy(settings.allow_hosts).resolve(url)
    except UnsafeWebhookURLError as exc:
        raise unprocessable(field, str(exc)) from None
    except TimeoutError:
        raise unprocessable(field, f"the host did not resolve within {settings.timeout_seconds:g}s") from None
    return url
