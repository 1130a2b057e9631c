"""The deliverer: sends the webhook outbox (storage/webhooks.py), once per delivery.

One per process that runs graphs (unless WEBHOOK_SEND is off). It claims due deliveries under a
lease, the way the dispatcher claims tasks, so that of several processes exactly one sends each
attempt; one that dies mid-send loses its lease and another sends again (a receiver dedupes on
the ``X-Draftloop-Delivery`` id). Each attempt is recorded; a non-2xx answer or a transport
error is retried with a doubling delay up to WEBHOOK_MAX_ATTEMPTS, and a URL the rules refuse
now (its host moved to a private address) fails the delivery at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from datetime import timedelta

import httpx
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.engine.cancelling import cancel_and_wait
from app.engine.webhooks import RUN_ENDED
from app.webhook_settings import WebhookSettings
from storage.models import DeliveryStatus, WebhookDelivery, utcnow
from storage.webhooks import DeliveryRepository
from tools.webhooks import UnsafeWebhookURLError, WebhookURLPolicy, post_signed

log = logging.getLogger("draftloop.webhooks")

# Deliveries one claim takes, and so sends at once.
CLAIM_BATCH = 8


class Deliverer:
    """Claims and sends due webhook deliveries until stopped; ``wake`` sends new ones at once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: WebhookSettings, worker_id: str) -> None:
        self.sessions = sessions
        self.settings = settings
        self.worker_id = worker_id
        self.policy = WebhookURLPolicy(settings.allow_hosts)
        # Longer than an attempt can take, so a live deliverer never loses a delivery mid-send.
        self.lease_seconds = settings.timeout_seconds * 2 + 5
        self.sent_total = 0
        self._wakeup = asyncio.Event()
        self._loop: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def enabled(self) -> bool:
        return self.settings.send and self.settings.key is not None

    def start(self) -> None:
        if not self.enabled or self._loop is not None:
            return
        # No proxy from the environment: the request goes to the address the rules checked.
        self._http = httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._loop = asyncio.create_task(self._run(), name="draftloop-webhooks")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        if self._loop is None:
            return
        await cancel_and_wait(self._loop)
        self._loop = None
        try:
            async with self.sessions.begin() as session:
                await DeliveryRepository(session).release(self.worker_id)
        except (SQLAlchemyError, OSError) as exc:
            # Their leases expire instead, and another deliverer sends them.
            log.warning("could not hand back webhook deliveries: %s", exc)
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            claimed = await self._claim()
            if claimed:
                await asyncio.gather(*(self._send(delivery) for delivery in claimed))
            if len(claimed) == CLAIM_BATCH:
                continue
            try:
                await asyncio.wait_for(self._wakeup.wait(), timeout=self.settings.poll_seconds)
            except TimeoutError:
                pass

    async def _claim(self) -> list[WebhookDelivery]:
        try:
            async with self.sessions.begin() as session:
                return await DeliveryRepository(session).claim(self.worker_id, CLAIM_BATCH, self.lease_seconds)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("claiming webhook deliveries failed: %s", exc)
            return []

    async def _send(self, delivery: WebhookDelivery) -> None:
        assert self._http is not None and self.settings.key is not None  # started only then
        started_at = utcnow()
        clock = time.monotonic()
        body = json.dumps({**delivery.body, "webhook_sent_at": started_at.isoformat()}).encode()
        status_code: int | None = None
        error: str | None = None
        final = False
        try:
            status_code = await post_signed(self._http, self.policy, delivery.url, body, key=self.settings.key,
                                            timestamp=int(started_at.timestamp()), delivery_id=delivery.id,
                                            event=RUN_ENDED, timeout=self.settings.timeout_seconds)
            if not 200 <= status_code < 300:
                error = f"answered {status_code}"
        except UnsafeWebhookURLError as exc:
            error, final = str(exc), True
        except TimeoutError:
            error = f"no answer within {self.settings.timeout_seconds:g}s"
        except (httpx.HTTPError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempts = delivery.attempt_count + 1
        if error is None:
            outcome, retry_at = DeliveryStatus.DELIVERED, None
        elif final or attempts >= self.settings.max_attempts:
            outcome, retry_at = DeliveryStatus.FAILED, None
        else:
            outcome = DeliveryStatus.PENDING
            retry_at = utcnow() + timedelta(seconds=self.settings.retry_delay(attempts))
        duration_ms = int((time.monotonic() - clock) * 1000)
        try:
            async with self.sessions.begin() as session:
                await DeliveryRepository(session).record_attempt(
                    delivery.id, self.worker_id, started_at=started_at, duration_ms=duration_ms,
                    status_code=status_code, error=error, outcome=outcome, retry_at=retry_at)
        except (SQLAlchemyError, OSError) as exc:
            # Unrecorded: the lease runs out and the delivery is sent again (at least once).
            log.error("could not record webhook attempt %d of delivery %s: %s", attempts, delivery.id, exc)
            return
        if outcome == DeliveryStatus.DELIVERED:
            self.sent_total += 1
        elif outcome == DeliveryStatus.FAILED:
            log.warning("webhook delivery %s of run %s failed after %d attempt(s): %s", delivery.id,
                        delivery.task_id, attempts, error)
        else:
            log.info("webhook delivery %s attempt %d failed (%s); retrying", delivery.id, attempts, error)
