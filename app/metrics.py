"""Prometheus metrics: a registry per app (tests build many apps in one process).

Counts that live in the database (tasks by status, queue depth, model tokens) are read at
scrape time, so every process reports the same, durable truth; timings are observed here.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import Task, TaskStatus, Usage

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_RUN_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.tasks = Gauge("draftloop_tasks", "Tasks by status", ["status"], registry=self.registry)
        self.queue_depth = Gauge("draftloop_queue_depth", "Tasks waiting for a worker", registry=self.registry)
        self.tokens = Gauge("draftloop_model_tokens", "Model tokens recorded, all time", ["direction"],
                            registry=self.registry)
        self.running_here = Gauge("draftloop_runs_in_process", "Runs this process drives now", registry=self.registry)
        self.run_seconds = Histogram("draftloop_run_duration_seconds", "Task run time, claim to end",
                                     ["status"], buckets=_RUN_BUCKETS, registry=self.registry)
        self.node_seconds = Histogram("draftloop_node_duration_seconds", "Graph node time", ["node"],
                                      buckets=_RUN_BUCKETS, registry=self.registry)
        self.http_seconds = Histogram("draftloop_http_request_duration_seconds", "HTTP latency",
                                      ["method", "route", "status"], buckets=_LATENCY_BUCKETS,
                                      registry=self.registry)
        self._node_started: dict[tuple[str, str], float] = {}
        self._run_started: dict[str, float] = {}

    def observe_event(self, task_id: str, event_type: str, data: dict[str, Any]) -> None:
        now = time.monotonic()
        if event_type == "node_started":
            self._node_started[(task_id, str(data.get("node")))] = now
        elif event_type == "node_finished":
            started = self._node_started.pop((task_id, str(data.get("node"))), None)
            if started is not None:
                self.node_seconds.labels(node=str(data.get("node"))).observe(now - started)
        elif event_type == "status":
            status = str(data.get("status"))
            if status == TaskStatus.RUNNING.value:
                self._run_started[task_id] = now
            elif status != TaskStatus.QUEUED.value:
                started = self._run_started.pop(task_id, None)
                if started is not None:
                    self.run_seconds.labels(status=status).observe(now - started)
                # Node timers of a run that ended mid-node would otherwise leak.
                for key in [k for k in self._node_started if k[0] == task_id]:
                    del self._node_started[key]

    async def render(self, sessions: async_sessionmaker[AsyncSession], running_here: int) -> bytes:
        async with sessions() as session:
            counts = dict((await session.execute(select(Task.status, func.count()).group_by(Task.status))).all())
            tokens_in, tokens_out = (await session.execute(
                select(func.coalesce(func.sum(Usage.input_tokens), 0), func.coalesce(func.sum(Usage.output_tokens), 0))
            )).one()
        for status in TaskStatus:
            self.tasks.labels(status=status.value).set(counts.get(status.value, 0))
        self.queue_depth.set(counts.get(TaskStatus.QUEUED.value, 0))
        self.tokens.labels(direction="input").set(tokens_in)
        self.tokens.labels(direction="output").set(tokens_out)
        self.running_here.set(running_here)
        return generate_latest(self.registry)
