"""Operations endpoints: liveness, readiness (database, checkpointer, model) and metrics."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import psycopg
from litestar import Controller, Response, get
from litestar.di import NamedDependency
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.engine.stats import RunningRuns
from app.graph_runtime import GraphRuntime
from app.metrics import Metrics
from app.supervisor import WorkerSupervisor
from storage.connection_budget import pool_usage

READY_CHECK_TIMEOUT = 3.0


class OpsController(Controller):
    path = "/"
    tags = ["operations"]
    include_in_schema = True

    @get("/health", opt={"public": True}, summary="Liveness: the process answers")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", opt={"public": True}, summary="Readiness: database, checkpointer and model provider")
    async def ready(self, runtime: NamedDependency[GraphRuntime],
                    workers: NamedDependency[WorkerSupervisor]) -> Response[dict[str, Any]]:
        checks: dict[str, Any] = {}
        try:
            async with asyncio.timeout(READY_CHECK_TIMEOUT):
                async with runtime.engine.connect() as connection:
                    await connection.execute(text("SELECT 1"))
            checks["database"] = {"ok": True}
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            checks["database"] = {"ok": False, "error": type(exc).__name__}
        try:
            async with asyncio.timeout(READY_CHECK_TIMEOUT):
                await runtime.checkpointer.aget_tuple({"configurable": {"thread_id": "__ready__"}})
            checks["checkpointer"] = {"ok": True, "kind": type(runtime.graph.checkpointer).__name__}
        except (sqlite3.Error, psycopg.Error, OSError, TimeoutError) as exc:
            checks["checkpointer"] = {"ok": False, "error": type(exc).__name__}
        info = await runtime.deps.models.describe(refresh=True)
        checks["model"] = {"ok": info.reachable, "provider": info.provider, "model": info.model,
                           "requested": info.requested, "detail": info.detail}
        if workers.count:
            # An api-only server with no live worker accepts tasks that nothing runs.
            checks["workers"] = {"ok": workers.alive > 0, "alive": workers.alive, "count": workers.count}
        ready = all(check["ok"] for check in checks.values())
        # Not a check: how close each connection pool is to its share of the connection budget
        # (storage/connection_budget.py), for whoever sizes max_connections or the pools.
        pools = pool_usage(runtime.engine, runtime.autocommit_engine, runtime.graph.checkpointer)
        return Response({"status": "ready" if ready else "not ready", "checks": checks, "pools": pools},
                        status_code=200 if ready else 503)

    @get("/metrics", opt={"public": "metrics"}, summary="Prometheus metrics", media_type="text/plain; version=0.0.4")
    async def metrics(self, runtime: NamedDependency[GraphRuntime], metrics: NamedDependency[Metrics],
                      running: NamedDependency[RunningRuns]) -> bytes:
        return await metrics.render(runtime.sessions, running.running_count)
