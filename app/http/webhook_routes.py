"""GET /api/webhooks/deliveries: the webhook outbox and every attempt to send it, newest first,
for admins (a delivery's URL and body are another user's run)."""

from __future__ import annotations

from typing import Any, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.exceptions import ValidationException
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Role, WebhookAttempt, WebhookDelivery
from storage.webhooks import DeliveryRepository


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


def attempt_dict(attempt: WebhookAttempt) -> dict[str, Any]:
    return {"number": attempt.number, "started_at": _iso(attempt.started_at), "duration_ms": attempt.duration_ms,
            "status_code": attempt.status_code, "error": attempt.error, "worker_id": attempt.worker_id}


def delivery_dict(delivery: WebhookDelivery) -> dict[str, Any]:
    return {"id": delivery.id, "run_id": delivery.task_id, "url": delivery.url, "status": delivery.status,
            "attempt_count": delivery.attempt_count, "next_attempt_at": _iso(delivery.next_attempt_at),
            "last_error": delivery.last_error, "created_at": _iso(delivery.created_at),
            "delivered_at": _iso(delivery.delivered_at), "body": delivery.body,
            "attempts": [attempt_dict(a) for a in delivery.attempts]}


class WebhookController(Controller):
    path = "/api/webhooks"
    tags = ["admin"]

    @get("/deliveries", opt={"role": Role.ADMIN.value}, summary="Webhook deliveries and their attempts, newest first")
    async def list_deliveries(
        self,
        sessions: NamedDependency[async_sessionmaker[AsyncSession]],
        run_id: str | None = Parameter(default=None, max_length=255, description="a run's or task's id"),
        status: Literal["pending", "delivered", "failed"] | None = Parameter(default=None),
        limit: int = Parameter(default=50, ge=1, le=200),
        cursor: str | None = Parameter(default=None, max_length=512, description="next_cursor of the previous page"),
    ) -> dict[str, Any]:
        async with sessions() as session:
            try:
                page = await DeliveryRepository(session).list(task_id=run_id, status=status, limit=limit,
                                                              cursor=cursor)
            except ValueError as exc:
                raise ValidationException(detail=f"cursor: {exc}", extra=[{"key": "cursor", "message": str(exc)}],
                                          status_code=422) from exc
        return {"items": [delivery_dict(d) for d in page.items], "next_cursor": page.next_cursor}
