"""The webhook outbox: deliveries planned with the end of a run, claimed by one deliverer at a
time under a lease, and every attempt to send them.

A delivery is inserted in the transaction (on Postgres: the statement) that ends its run
(storage/leases.py end_run) or cancels it (storage/tasks.py's caller, app/engine/commands.py),
so a crash after the run's end cannot lose it. Deliverers claim due rows the way workers claim
tasks (``FOR UPDATE SKIP LOCKED`` on Postgres, the write lock on SQLite): a claimed row is sent
by its holder only, and taken over by another once its lease runs out.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from storage.affected_rows import affected_rows
from storage.models import DeliveryStatus, WebhookAttempt, WebhookDelivery, new_id, utcnow
from storage.pagination import decode_cursor, encode_keyset, older_than, page_limit
from storage.storable import storable, storable_text


@dataclass(frozen=True, slots=True)
class PlannedDelivery:
    """The webhook a run's end writes: where to, and the body, frozen at the end."""

    url: str
    body: dict[str, Any]


def delivery_values(planned: PlannedDelivery, task_id: str, now: datetime) -> dict[str, Any]:
    """The outbox row's columns (every non-null one: the Postgres end-of-run statement inserts
    it from a CTE, where Python-side defaults do not apply)."""
    return {"id": new_id(), "task_id": task_id, "url": planned.url, "body": storable(planned.body),
            "status": DeliveryStatus.PENDING.value, "attempt_count": 0, "next_attempt_at": now,
            "created_at": now, "updated_at": now}


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    items: list[WebhookDelivery]
    next_cursor: str | None


class DeliveryRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def plan(self, planned: PlannedDelivery, task_id: str, *, now: datetime | None = None) -> str:
        """Add a delivery in the caller's transaction; its id."""
        values = delivery_values(planned, task_id, now or utcnow())
        await self.session.execute(insert(WebhookDelivery).values(**values))
        return str(values["id"])

    async def claim(self, worker_id: str, limit: int, lease_seconds: float, *,
                    now: datetime | None = None) -> list[WebhookDelivery]:
        """Lease up to ``limit`` due deliveries to ``worker_id``, oldest due first: pending, due,
        and not held under a live lease (a deliverer that died mid-send loses it)."""
        now = now or utcnow()
        due = (
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == DeliveryStatus.PENDING.value, WebhookDelivery.next_attempt_at <= now,
                   or_(WebhookDelivery.lease_expires_at.is_(None), WebhookDelivery.lease_expires_at < now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        claimed = await self.session.scalars(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_(due.scalar_subquery()))
            .values(lease_owner=worker_id, lease_expires_at=now + timedelta(seconds=lease_seconds))
            .returning(WebhookDelivery)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return sorted(claimed, key=lambda d: (d.next_attempt_at, d.id))

    async def record_attempt(self, delivery_id: str, worker_id: str, *, started_at: datetime, duration_ms: int,
                             status_code: int | None, error: str | None, outcome: DeliveryStatus,
                             retry_at: datetime | None) -> bool:
        """Store one attempt and what follows it (delivered, failed for good, or pending until
        ``retry_at``), if ``worker_id`` still holds the delivery; False (nothing written) when
        its lease went to another deliverer meanwhile."""
        now = utcnow()
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.lease_owner == worker_id,
                   WebhookDelivery.status == DeliveryStatus.PENDING.value)
            .values(status=outcome.value, attempt_count=WebhookDelivery.attempt_count + 1,
                    next_attempt_at=retry_at or now, lease_owner=None, lease_expires_at=None,
                    last_error=None if error is None else storable_text(error), updated_at=now,
                    delivered_at=now if outcome == DeliveryStatus.DELIVERED else None)
            .returning(WebhookDelivery.attempt_count)
            .execution_options(synchronize_session=False)
        )
        number = result.scalar_one_or_none()
        if number is None:
            return False
        self.session.add(WebhookAttempt(delivery_id=delivery_id, number=number, worker_id=worker_id,
                                        started_at=started_at, duration_ms=duration_ms, status_code=status_code,
                                        error=None if error is None else storable_text(error)))
        await self.session.flush()
        return True

    async def release(self, worker_id: str) -> int:
        """Hand back every delivery ``worker_id`` holds (it stops), unsent; how many."""
        result = await self.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.lease_owner == worker_id, WebhookDelivery.status == DeliveryStatus.PENDING.value)
            .values(lease_owner=None, lease_expires_at=None)
            .execution_options(synchronize_session=False)
        )
        return affected_rows(result)

    async def of_task(self, task_id: str) -> list[WebhookDelivery]:
        return list(await self.session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.task_id == task_id).order_by(WebhookDelivery.created_at)))

    async def list(self, *, task_id: str | None = None, status: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> DeliveryPage:
        """Newest first with their attempts, keyset-paginated on (created_at, id); ValueError for
        a bad cursor."""
        limit = page_limit(limit)
        stmt = select(WebhookDelivery).options(selectinload(WebhookDelivery.attempts))
        if task_id is not None:
            stmt = stmt.where(WebhookDelivery.task_id == task_id)
        if status is not None:
            stmt = stmt.where(WebhookDelivery.status == status)
        if cursor is not None:
            after_at, after_id = decode_cursor(cursor)
            stmt = stmt.where(older_than(WebhookDelivery.created_at, WebhookDelivery.id, after_at, after_id))
        stmt = stmt.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc()).limit(limit + 1)
        rows = list(await self.session.scalars(stmt))
        items = rows[:limit]
        next_cursor = encode_keyset(items[-1].created_at, items[-1].id) if len(rows) > limit else None
        return DeliveryPage(items=items, next_cursor=next_cursor)
