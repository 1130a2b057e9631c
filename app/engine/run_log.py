"""The operator's log of runs: one line when a task is queued, when it starts, when it enters a
node, and when it ends (status, attempts, score, duration, model), each carrying the task id.

It follows the event bus (``EventBus.listener``) rather than the executor's code: every event a
process writes about its own runs passes through there, so nothing is logged twice and another
process's runs are not logged here. The end line reads the task's row, which by then holds the
result, the model and the timings; that read runs beside the run, never in its way.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.engine.events import ATTEMPT_SCORED, NODE_STARTED, STATUS, EventListener
from storage.models import TaskStatus
from storage.tasks import fetch_task_row

log = logging.getLogger("draftloop.runs")

# How long a shutdown waits for end lines still being written.
CLOSE_SECONDS = 2.0


def log_task(task_id: str, message: str, *args: Any) -> None:
    """One line about a task; the id goes with the record (``task=`` in text, ``task_id`` in JSON)."""
    log.info(message, *args, extra={"task_id": task_id})


def log_node(task_id: str, node: str) -> None:
    log_task(task_id, "task in node %s", node)


class RunLog:
    """An event listener that writes the operator's log (see the module docstring)."""

    def __init__(self, read_engine: AsyncEngine, default_model: str = "") -> None:
        self.read_engine = read_engine
        # What the process runs on ("provider/model"), for a run whose row names no model
        # (one that failed or paused before its result was written).
        self.default_model = default_model
        self._started: dict[str, float] = {}
        self._scores: dict[str, list[float]] = {}
        self._pending: set[asyncio.Task[None]] = set()

    def listener(self, then: EventListener | None = None) -> EventListener:
        """This log as the bus's listener, followed by ``then`` (the metrics) when given."""

        def observe(task_id: str, event_type: str, data: dict[str, Any]) -> None:
            self.observe(task_id, event_type, data)
            if then is not None:
                then(task_id, event_type, data)

        return observe

    def observe(self, task_id: str, event_type: str, data: dict[str, Any]) -> None:
        if event_type == NODE_STARTED:
            log_node(task_id, str(data.get("node")))
        elif event_type == ATTEMPT_SCORED and isinstance(data.get("score"), (int, float)):
            self._scores.setdefault(task_id, []).append(float(data["score"]))
        elif event_type == STATUS:
            self._status(task_id, str(data.get("status")), data.get("error"))

    def _status(self, task_id: str, status: str, error: Any) -> None:
        if status == TaskStatus.QUEUED.value:
            log_task(task_id, "task queued")
        elif status == TaskStatus.RUNNING.value:
            self._started[task_id] = time.monotonic()
            log_task(task_id, "task started")
        else:
            ended = asyncio.get_running_loop().create_task(self._log_end(task_id, status, error),
                                                           name=f"draftloop-run-log-{task_id}")
            self._pending.add(ended)
            ended.add_done_callback(self._pending.discard)

    async def _log_end(self, task_id: str, status: str, error: Any) -> None:
        started = self._started.pop(task_id, None)
        scores = self._scores.pop(task_id, [])
        row = None
        try:
            async with self.read_engine.connect() as connection:
                row = await fetch_task_row(connection, task_id)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("could not read task %s for its end line: %s", task_id, exc, extra={"task_id": task_id})
        result = (row.result if row is not None else None) or {}
        attempts = result.get("attempts") or len(scores)
        score = result.get("score", max(scores) if scores else None)
        seconds = _duration(row, started)
        model = f"{row.provider}/{row.model}" if row is not None and row.model else self.default_model
        line = ("task ended: status=%s attempts=%d score=%s duration=%s model=%s"
                + (" error=%s" if error else ""))
        args: list[Any] = [status, attempts, "-" if score is None else f"{score:g}",
                           "-" if seconds is None else f"{seconds:.1f}s", model or "-"]
        if error:
            args.append(str(error)[:200])
        log_task(task_id, line, *args)

    async def aclose(self) -> None:
        """Let the end lines being written finish (briefly: the database may be closing)."""
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=CLOSE_SECONDS)


def _duration(row: Any, started: float | None) -> float | None:
    """The run's time: from its row when it has ended there, else since this process saw it start."""
    if row is not None and row.started_at is not None and row.finished_at is not None:
        return (row.finished_at - row.started_at).total_seconds()
    if started is not None:
        return time.monotonic() - started
    return None
