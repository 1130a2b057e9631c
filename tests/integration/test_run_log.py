"""The operator's log: a line when a task is queued, starts, enters each node and ends (status,
attempts, score, duration, model), each with the task id; for tasks and for LangGraph runs, on
SQLite and Postgres, with the model behind the loopback fake Ollama."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time

import httpx
import pytest

from app.engine.run_log import log_task
from app.logs import JsonFormatter, TaskIdFilter, TextFormatter, current_task_id
from devtools.fakes.writer import GraphFakes
from tests.integration.test_task_api import POST, api, wait_for_status  # noqa: F401 - api: the app in this loop

RUN_LOG = "draftloop.runs"
NODES = ["route_intent", "research", "draft", "critique", "finalize"]
END_LINE = re.compile(r"task ended: status=(\w+) attempts=(\d+) score=(\S+) duration=(\d+\.\d)s model=(\S+)")


def lines_of(caplog: pytest.LogCaptureFixture, task_id: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == RUN_LOG and getattr(r, "task_id", None) == task_id]


async def wait_for_end_line(caplog: pytest.LogCaptureFixture, task_id: str, timeout: float = 10) -> list[str]:
    # The end line is written once the row has been read back, just after the final status.
    deadline = time.monotonic() + timeout
    while not any(line.startswith("task ended") for line in lines_of(caplog, task_id)):
        assert time.monotonic() < deadline, f"no end line for {task_id}: {lines_of(caplog, task_id)}"
        await asyncio.sleep(0.05)
    return lines_of(caplog, task_id)


async def test_a_task_logs_queued_started_each_node_and_its_end_with_status_attempts_score_duration_model(
        api: httpx.AsyncClient, graph_fakes: GraphFakes, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger=RUN_LOG)
    graph_fakes.writer.scores = [40, 85]
    task_id = (await api.post("/api/tasks", json=POST)).json()["id"]
    task = await wait_for_status(api, task_id, "completed")
    lines = await wait_for_end_line(caplog, task_id)

    assert lines[:2] == ["task queued", "task started"]
    assert [line.removeprefix("task in node ") for line in lines[2:-1]] == [
        "route_intent", "research", "draft", "critique", "draft", "critique", "finalize"]
    status, attempts, score, seconds, model = END_LINE.fullmatch(lines[-1]).groups()  # type: ignore[union-attr]
    assert (status, int(attempts), float(score)) == ("completed", 2, task["result"]["score"])
    assert float(seconds) == pytest.approx(task["timings"]["run_ms"] / 1000, abs=0.051)
    assert model == "ollama/llama3.2"


async def test_a_failed_task_logs_its_end_with_the_error(
        api: httpx.AsyncClient, graph_fakes: GraphFakes, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger=RUN_LOG)
    graph_fakes.ollama.models = ["some-other-model:latest"]  # the run fails on its first model call
    task_id = (await api.post("/api/tasks", json={**POST, "research": False})).json()["id"]
    task = await wait_for_status(api, task_id, "failed")
    end = (await wait_for_end_line(caplog, task_id))[-1]

    assert end.startswith("task ended: status=failed attempts=0 score=- duration=")
    assert "model=ollama/llama3.2" in end and f"error={task['error'][:40]}" in end


async def test_a_langgraph_run_logs_its_nodes_and_end_under_its_run_id(
        api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger=RUN_LOG)
    thread_id = (await api.post("/threads", json={})).json()["thread_id"]
    run = await api.post(f"/threads/{thread_id}/runs", json={
        "assistant_id": "draftloop", "input": {"messages": [{"role": "user", "content": POST["request"]}]}})
    run_id = run.json()["run_id"]
    await api.get(f"/threads/{thread_id}/runs/{run_id}/join")
    lines = await wait_for_end_line(caplog, run_id)

    assert lines[:2] == ["task queued", "task started"]
    assert [line.removeprefix("task in node ") for line in lines[2:-1]] == NODES
    assert END_LINE.fullmatch(lines[-1]) and "status=completed attempts=1" in lines[-1]


@pytest.mark.parametrize("formatter", [TextFormatter("%(message)s"), JsonFormatter()])
def test_a_run_log_line_carries_its_own_task_id_whatever_run_is_current(formatter: logging.Formatter) -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(TaskIdFilter())
    handler.setFormatter(formatter)
    logger = logging.getLogger("draftloop.runs")
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    # The line is written from another task's context (the event writer's): its id must not leak in.
    token = current_task_id.set("some-other-task")
    try:
        log_task("the-task", "task queued")
    finally:
        current_task_id.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(level)

    text = out.getvalue().strip()
    if isinstance(formatter, JsonFormatter):
        assert json.loads(text)["task_id"] == "the-task"
    else:
        assert text == "task queued task=the-task"
