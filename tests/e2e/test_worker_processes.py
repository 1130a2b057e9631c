"""`draftloop serve --workers N`: an API-only server whose graph runs happen in the worker
processes it supervises (the design change bench/RESULTS.md argues for), on SQLite and Postgres.
"""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from pathlib import Path

import httpx
import pytest
from langgraph_sdk import get_client

# The backend, server-launcher and signed-in client fixtures are test_service_process's.
from devtools.fakes.writer import GraphFakes
from devtools.identities import admin_headers
from tests.e2e.test_service_process import (  # noqa: F401 - fixtures
    NODES,
    REQUEST,
    backend,
    database_url,
    events_url,
    http,
    launcher,
    post_task,
    postgres_database,
    postgres_test_database,
)
from tests.service_process import (
    RUN_TIMEOUT,
    STARTUP_TIMEOUT,
    ServerProcess,
    ServiceLauncher,
    SlowJudge,
    events_of,
    finished_nodes,
    follow_events,
    sample_lease_owners,
    schema_title,
    statuses,
    stored_tasks,
    wait_for_status,
    wait_until,
)


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except FileNotFoundError:
        return []
    return [int(part) for part in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


async def child_pids(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc; read off the loop, blockbuster is on)."""
    return await asyncio.to_thread(_children, pid)


async def is_alive(pid: int) -> bool:
    return await asyncio.to_thread(_alive, pid)


async def start_with_workers(launcher: ServiceLauncher, name: str, workers: int) -> tuple[ServerProcess, list[int]]:  # noqa: F811 - a helper's parameter named like the imported fixture
    server = await launcher.start(name, WORKERS=str(workers))
    for _ in range(int(STARTUP_TIMEOUT / 0.1)):
        pids = await child_pids(server.pid)
        if len(pids) == workers:
            return server, pids
        await asyncio.sleep(0.1)
    pytest.fail(f"{workers} worker processes did not start\n{launcher.describe()}")


async def test_an_api_server_with_workers_runs_every_task_in_its_worker_processes_and_streams_their_events(
    launcher: ServiceLauncher, graph_fakes: GraphFakes, http: httpx.AsyncClient, database_url: str  # noqa: F811 - the imported fixture
) -> None:
    graph_fakes.writer.draft_latency = 0.5
    server, workers = await start_with_workers(launcher, "split", 2)
    # The WORKER_NICE default: graph steps give way to the API process. Each worker sets it
    # once its imports are done.
    await wait_until(lambda: {os.getpriority(os.PRIO_PROCESS, pid) for pid in workers} == {10},
                     "niceness 10 on both workers", timeout=STARTUP_TIMEOUT, launcher=launcher)
    ready = await http.get(f"{server.url}/ready")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["workers"] == {"ok": True, "alive": 2, "count": 2}

    owners: dict[str, set[str]] = {}
    stop_sampling = asyncio.Event()
    sampler = asyncio.create_task(sample_lease_owners(database_url, owners, stop_sampling))
    try:
        posted = await asyncio.gather(*(
            post_task(http, server.url, {"request": f"{REQUEST} (case-{uuid.uuid4().hex[:8]})"}) for _ in range(8)))
        items, closed = await follow_events(http, events_url(server.url, posted[0]))
        for task_id in posted:
            await wait_for_status(http, server.url, task_id, "completed", timeout=RUN_TIMEOUT, launcher=launcher)
    finally:
        stop_sampling.set()
        await asyncio.wait_for(sampler, 10)

    # Followed live through the API process although another process wrote every event.
    assert closed
    events = events_of(items)
    assert statuses(events) == ["queued", "running", "completed"]
    assert finished_nodes(events) == NODES
    stored = await stored_tasks(database_url)
    assert {task_id: stored[task_id].task.run_count for task_id in posted} == {task_id: 1 for task_id in posted}
    assert set(owners) == set(posted), "a run too short to be sampled"
    held_by = set().union(*owners.values())
    assert held_by <= {"split-w0", "split-w1"}, f"the API process ran a graph: {held_by}"
    assert graph_fakes.writer.calls.count("draft") == 8

    await server.terminate(timeout=30)
    assert not [pid for pid in workers if await is_alive(pid)], "workers outlived the server"


async def test_workers_start_a_queued_task_at_once_not_at_their_next_poll(
    launcher: ServiceLauncher, http: httpx.AsyncClient,  # noqa: F811 - the imported fixture
) -> None:
    # A poll this far apart cannot be what starts the task: a NOTIFY (Postgres) or the
    # supervisor's wake pipe (SQLite) must.
    server = await launcher.start("wake", WORKERS="1", QUEUE_POLL_SECONDS="60")
    first = await post_task(http, server.url, {"request": f"{REQUEST} (first)"})
    # The first may be claimed by the worker's start-up poll; after it, only a wake-up helps.
    await wait_for_status(http, server.url, first, "completed", timeout=RUN_TIMEOUT, launcher=launcher)

    second = await post_task(http, server.url, {"request": f"{REQUEST} (second)"})

    await wait_for_status(http, server.url, second, "completed", timeout=15, launcher=launcher)


async def test_a_killed_worker_is_restarted_and_its_task_resumes_from_the_checkpoint(
    launcher: ServiceLauncher, graph_fakes: GraphFakes, http: httpx.AsyncClient, database_url: str  # noqa: F811 - the imported fixture
) -> None:
    writer = graph_fakes.writer
    slow = SlowJudge(writer, latency=30.0)
    graph_fakes.ollama.responder = slow
    server, [worker] = await start_with_workers(launcher, "respawn", 1)
    task_id = await post_task(http, server.url, {"request": REQUEST})
    await wait_until(lambda: "score" in writer.calls, "critique call", launcher=launcher)
    chat_before = len(graph_fakes.ollama.chat_requests)

    slow.latency = 0
    os.kill(worker, signal.SIGKILL)
    task = await wait_for_status(http, server.url, task_id, "completed", timeout=RUN_TIMEOUT, launcher=launcher)

    assert task["result"]["attempts"] == 1
    restarted = graph_fakes.ollama.chat_requests[chat_before:]
    assert [schema_title(body) for body in restarted] == ["CritiqueVerdict"], "only the critique may run again"
    replacement = await child_pids(server.pid)
    assert len(replacement) == 1 and replacement[0] != worker
    stored = (await stored_tasks(database_url))[task_id]
    assert stored.attempt_numbers == [1] and stored.task.run_count == 2

    # The server dies without a word to its worker; the worker notices and stops on its own.
    await server.kill()
    for _ in range(150):
        if not await is_alive(replacement[0]):
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"a worker outlived its SIGKILLed server\n{launcher.describe()}")


async def test_a_run_a_worker_drives_rolled_back_from_the_api_process_leaves_its_thread_as_before(
    launcher: ServiceLauncher, graph_fakes: GraphFakes,  # noqa: F811 - the imported fixture
) -> None:
    server, _ = await start_with_workers(launcher, "rollback", 1)
    client = get_client(url=server.url, headers=admin_headers())
    try:
        thread = (await client.threads.create())["thread_id"]
        human = {"messages": [{"role": "user", "content": REQUEST}]}
        await client.runs.wait(thread, "draftloop", input=human)
        before = await client.threads.get_state(thread)
        history = [s["checkpoint"]["checkpoint_id"] for s in await client.threads.get_history(thread, limit=100)]

        graph_fakes.writer.draft_latency = 30.0
        run = await client.runs.create(thread, "draftloop", input=human)
        async with asyncio.timeout(RUN_TIMEOUT):
            while len(await client.threads.get_history(thread, limit=100)) <= len(history):
                await asyncio.sleep(0.05)
        await client.runs.cancel(thread, run["run_id"], action="rollback")

        with pytest.raises(httpx.HTTPStatusError) as gone:
            await client.runs.get(thread, run["run_id"])
        assert gone.value.response.status_code == 404
        # The worker stops at its next lease check; whatever it saved meanwhile goes too.
        await asyncio.sleep(1.5)
        assert await client.threads.get_state(thread) == before
        after = [s["checkpoint"]["checkpoint_id"] for s in await client.threads.get_history(thread, limit=100)]
        assert after == history
        assert (await client.threads.get(thread))["status"] == "idle"
    finally:
        await client.aclose()
