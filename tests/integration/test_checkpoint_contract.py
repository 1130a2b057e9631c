"""The LangGraph saver contract, checked on the savers the service uses: AsyncSqliteSaver on SQLite
and PooledPostgresSaver (storage/checkpoints.py) on Postgres, both from open_checkpointer().

After langgraph's checkpointer conformance suite (libs/checkpoint-conformance), which the
installed packages do not ship: aput / aget_tuple / alist (thread, namespace, metadata filter,
before, limit), aput_writes and pending writes, parent configs and adelete_thread. It matters
most for PooledPostgresSaver, which writes the stock saver's rows with SQL of its own: if a
langgraph upgrade moves the contract, these fail before a run loses state.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    empty_checkpoint,
)
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from storage.checkpoints import PooledPostgresSaver, open_checkpointer, postgres_conninfo

CHILD_NS = "child:1"
POSTGRES_ONLY = pytest.mark.parametrize("backend", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@pytest.fixture
async def saver(database_url: str) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    async with open_checkpointer(database_url) as opened:
        yield opened


def config_for(thread_id: str, checkpoint_ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": checkpoint_ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def new_thread() -> str:
    # A fresh id per use, so that no test reads another's rows.
    return str(uuid.uuid4())


def checkpoint_with(saver: BaseCheckpointSaver[Any], values: dict[str, Any] | None = None,
                    versions: ChannelVersions | None = None) -> Checkpoint:
    """A well-formed checkpoint with a fresh, increasing id (empty_checkpoint's uuid6). Channel
    versions come from the saver's get_next_version, as a graph's do, unless given."""
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = dict(values or {})
    checkpoint["channel_versions"] = dict(
        versions if versions is not None else {key: saver.get_next_version(None, None) for key in values or {}}
    )
    return checkpoint


def metadata(source: str = "loop", step: int = 0, **extra: Any) -> CheckpointMetadata:
    return {"source": source, "step": step, "parents": {}, **extra}  # type: ignore[typeddict-item]


async def put(saver: BaseCheckpointSaver[Any], thread_id: str, *, parent: RunnableConfig | None = None,
              checkpoint_ns: str = "", meta: CheckpointMetadata | None = None,
              checkpoint: Checkpoint | None = None, new_versions: ChannelVersions | None = None) -> RunnableConfig:
    """Store one checkpoint, as the child of ``parent`` when given, as a graph step would."""
    checkpoint = checkpoint if checkpoint is not None else checkpoint_with(saver)
    config = config_for(thread_id, checkpoint_ns, parent["configurable"]["checkpoint_id"] if parent else None)
    versions = new_versions if new_versions is not None else checkpoint["channel_versions"]
    return await saver.aput(config, checkpoint, meta if meta is not None else metadata(), versions)


async def put_chain(saver: BaseCheckpointSaver[Any], thread_id: str, count: int) -> list[RunnableConfig]:
    """``count`` checkpoints, each the child of the one before; sources alternate input/loop."""
    stored: list[RunnableConfig] = []
    for step in range(count):
        stored.append(await put(saver, thread_id, parent=stored[-1] if stored else None,
                                meta=metadata("input" if step % 2 == 0 else "loop", step)))
    return stored


async def listed(saver: BaseCheckpointSaver[Any], config: RunnableConfig | None, **kwargs: Any) -> list[CheckpointTuple]:
    return [found async for found in saver.alist(config, **kwargs)]


def ids(tuples: list[CheckpointTuple]) -> list[str]:
    return [found.checkpoint["id"] for found in tuples]


def stored_id(config: RunnableConfig) -> str:
    return config["configurable"]["checkpoint_id"]


def writes_of(found: CheckpointTuple | None) -> set[tuple[str, str, Any]]:
    assert found is not None
    return {(task_id, channel, repr(value)) for task_id, channel, value in found.pending_writes or []}


async def test_the_contract_runs_against_the_savers_the_service_uses(
    saver: BaseCheckpointSaver[Any], backend: str
) -> None:
    expected = PooledPostgresSaver if backend == "postgres" else AsyncSqliteSaver
    assert type(saver) is expected


async def test_aput_returns_the_config_of_the_stored_checkpoint(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    checkpoint = checkpoint_with(saver)

    stored = await put(saver, thread_id, checkpoint_ns=CHILD_NS, checkpoint=checkpoint)

    assert stored["configurable"] == {"thread_id": thread_id, "checkpoint_ns": CHILD_NS, "checkpoint_id": checkpoint["id"]}


async def test_aget_tuple_returns_none_for_an_unknown_thread_or_checkpoint_id(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    await put(saver, thread_id)

    assert await saver.aget_tuple(config_for(new_thread())) is None
    assert await saver.aget_tuple(config_for(thread_id, checkpoint_id=empty_checkpoint()["id"])) is None


async def test_aget_tuple_without_a_checkpoint_id_returns_the_latest(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 3)

    latest = await saver.aget_tuple(config_for(thread_id))

    assert latest is not None
    assert latest.checkpoint["id"] == stored_id(chain[-1])
    assert latest.metadata["step"] == 2
    assert latest.config["configurable"] == {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": stored_id(chain[-1])}


async def test_aget_tuple_with_a_checkpoint_id_returns_that_checkpoint(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 3)

    first = await saver.aget_tuple(chain[0])

    assert first is not None
    assert first.checkpoint["id"] == stored_id(chain[0])
    assert first.metadata["step"] == 0


async def test_parent_config_names_the_previous_checkpoint_and_the_first_has_none(
    saver: BaseCheckpointSaver[Any]
) -> None:
    thread_id = new_thread()
    first, second = await put_chain(saver, thread_id, 2)

    root = await saver.aget_tuple(first)
    child = await saver.aget_tuple(second)

    assert root is not None and root.parent_config is None
    assert child is not None and child.parent_config is not None
    assert child.parent_config["configurable"] == {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": stored_id(first)}


async def test_channel_values_round_trip_whether_stored_inline_or_as_blobs(saver: BaseCheckpointSaver[Any]) -> None:
    # PooledPostgresSaver keeps primitives in the checkpoint row and the rest as blobs: both ways back.
    values = {"text": "hello", "count": 3, "ratio": 0.5, "flag": True,
              "items": [1, "two", {"three": 3}], "doc": {"title": "T", "tags": ["a", "b"]}}
    stored = await put(saver, new_thread(), checkpoint=checkpoint_with(saver, values))

    found = await saver.aget_tuple(stored)

    assert found is not None
    assert found.checkpoint["channel_values"] == values
    assert found.checkpoint["channel_versions"].keys() == values.keys()


async def test_a_channel_not_written_again_keeps_the_value_of_its_version(saver: BaseCheckpointSaver[Any]) -> None:
    # A step stores blobs only for the channels it changed (new_versions); the next checkpoint
    # still names the older version of the others and must read their values from it.
    thread_id = new_thread()
    doc = {"title": "kept", "sections": ["one", "two"]}
    first_checkpoint = checkpoint_with(saver, {"doc": doc, "notes": ["a"]})
    first = await put(saver, thread_id, checkpoint=first_checkpoint)
    first_versions = first_checkpoint["channel_versions"]
    notes_version = saver.get_next_version(first_versions["notes"], None)
    second_checkpoint = checkpoint_with(saver, {"doc": doc, "notes": ["a", "b"]},
                                        versions={"doc": first_versions["doc"], "notes": notes_version})

    second = await put(saver, thread_id, parent=first, checkpoint=second_checkpoint, new_versions={"notes": notes_version})

    found = await saver.aget_tuple(second)
    assert found is not None
    assert found.checkpoint["channel_values"] == {"doc": doc, "notes": ["a", "b"]}
    earlier = await saver.aget_tuple(first)
    assert earlier is not None
    assert earlier.checkpoint["channel_values"] == {"doc": doc, "notes": ["a"]}


async def test_putting_the_same_checkpoint_again_replaces_its_metadata(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    checkpoint = checkpoint_with(saver)
    await put(saver, thread_id, checkpoint=checkpoint, meta=metadata("loop", 1, note="first"))

    stored = await put(saver, thread_id, checkpoint=checkpoint, meta=metadata("update", 1, note="second"))

    found = await saver.aget_tuple(stored)
    assert found is not None
    assert (found.metadata["source"], found.metadata["note"]) == ("update", "second")  # type: ignore[typeddict-item]
    assert len(await listed(saver, config_for(thread_id))) == 1


async def test_namespaces_of_one_thread_are_kept_apart(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    root = await put(saver, thread_id, checkpoint=checkpoint_with(saver, {"where": "root"}))
    child = await put(saver, thread_id, checkpoint_ns=CHILD_NS, checkpoint=checkpoint_with(saver, {"where": "child"}))

    root_found = await saver.aget_tuple(config_for(thread_id))
    child_found = await saver.aget_tuple(config_for(thread_id, CHILD_NS))

    assert root_found is not None and root_found.checkpoint["channel_values"] == {"where": "root"}
    assert child_found is not None and child_found.checkpoint["channel_values"] == {"where": "child"}
    assert ids(await listed(saver, config_for(thread_id))) == [stored_id(root)]
    assert ids(await listed(saver, config_for(thread_id, CHILD_NS))) == [stored_id(child)]


async def test_alist_returns_the_threads_checkpoints_newest_first_and_no_others(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 4)
    await put_chain(saver, new_thread(), 2)

    assert ids(await listed(saver, config_for(thread_id))) == [stored_id(c) for c in reversed(chain)]
    assert await listed(saver, config_for(new_thread())) == []


async def test_alist_keeps_only_checkpoints_whose_metadata_matches_every_filter_key(
    saver: BaseCheckpointSaver[Any]
) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 4)  # steps 0..3: input, loop, input, loop
    tagged = await put(saver, thread_id, parent=chain[-1], meta=metadata("loop", 4, score=42, run_id="run-abc"))
    config = config_for(thread_id)

    assert ids(await listed(saver, config, filter={"source": "input"})) == [stored_id(chain[2]), stored_id(chain[0])]
    assert ids(await listed(saver, config, filter={"step": 1})) == [stored_id(chain[1])]
    assert ids(await listed(saver, config, filter={"source": "loop", "step": 3})) == [stored_id(chain[3])]
    assert ids(await listed(saver, config, filter={"score": 42, "run_id": "run-abc"})) == [stored_id(tagged)]
    assert await listed(saver, config, filter={"source": "input", "step": 3}) == []
    assert await listed(saver, config, filter={"source": "update"}) == []


async def test_alist_without_a_config_searches_every_thread_by_metadata(saver: BaseCheckpointSaver[Any]) -> None:
    run_id = f"run-{uuid.uuid4()}"
    first = await put(saver, new_thread(), meta=metadata(run_id=run_id))
    second = await put(saver, new_thread(), meta=metadata(run_id=run_id))
    await put(saver, new_thread(), meta=metadata(run_id="another-run"))

    found = await listed(saver, None, filter={"run_id": run_id})

    assert sorted(ids(found)) == sorted([stored_id(first), stored_id(second)])


async def test_alist_before_returns_only_older_checkpoints(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 4)

    older = await listed(saver, config_for(thread_id), before=chain[2])

    assert ids(older) == [stored_id(chain[1]), stored_id(chain[0])]


async def test_alist_limit_caps_the_result_alone_and_with_before(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    chain = await put_chain(saver, thread_id, 4)
    config = config_for(thread_id)

    assert ids(await listed(saver, config, limit=1)) == [stored_id(chain[3])]
    assert ids(await listed(saver, config, limit=2)) == [stored_id(chain[3]), stored_id(chain[2])]
    assert ids(await listed(saver, config, before=chain[3], limit=1)) == [stored_id(chain[2])]
    assert ids(await listed(saver, config, filter={"source": "input"}, limit=1)) == [stored_id(chain[2])]


async def test_alist_includes_each_checkpoints_pending_writes(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    first, _ = await put_chain(saver, thread_id, 2)
    await saver.aput_writes(first, [("channel", "on the first")], "task-1")

    newest, oldest = await listed(saver, config_for(thread_id))

    assert writes_of(newest) == set()
    assert writes_of(oldest) == {("task-1", "channel", repr("on the first"))}


async def test_pending_writes_come_back_with_their_task_channel_and_value(saver: BaseCheckpointSaver[Any]) -> None:
    stored = await put(saver, new_thread())
    await saver.aput_writes(stored, [("ch1", "v1"), ("ch2", {"data": 123}), ("ch3", [1, 2])], "task-a")
    await saver.aput_writes(stored, [("ch1", "from b")], "task-b", task_path="a:b:c")

    found = await saver.aget_tuple(stored)

    assert writes_of(found) == {
        ("task-a", "ch1", repr("v1")),
        ("task-a", "ch2", repr({"data": 123})),
        ("task-a", "ch3", repr([1, 2])),
        ("task-b", "ch1", repr("from b")),
    }


async def test_a_task_writing_again_does_not_duplicate_its_writes(saver: BaseCheckpointSaver[Any]) -> None:
    # A retried step repeats its aput_writes; (task, index) identifies a write.
    stored = await put(saver, new_thread())
    await saver.aput_writes(stored, [("ch", "value"), ("other", 2)], "task-a")
    await saver.aput_writes(stored, [("ch", "value"), ("other", 2)], "task-a")

    found = await saver.aget_tuple(stored)

    assert found is not None
    assert len(found.pending_writes or []) == 2
    assert writes_of(found) == {("task-a", "ch", repr("value")), ("task-a", "other", repr(2))}


async def test_error_and_interrupt_writes_are_kept_beside_regular_ones(saver: BaseCheckpointSaver[Any]) -> None:
    stored = await put(saver, new_thread())
    await saver.aput_writes(stored, [("ch", "regular")], "task-a")
    await saver.aput_writes(stored, [(ERROR, "something went wrong"), (INTERRUPT, {"reason": "approval"})], "task-a")

    found = await saver.aget_tuple(stored)

    assert writes_of(found) == {
        ("task-a", "ch", repr("regular")),
        ("task-a", ERROR, repr("something went wrong")),
        ("task-a", INTERRUPT, repr({"reason": "approval"})),
    }


async def test_writes_belong_to_their_checkpoint_and_namespace(saver: BaseCheckpointSaver[Any]) -> None:
    thread_id = new_thread()
    root = await put(saver, thread_id)
    child = await put(saver, thread_id, checkpoint_ns=CHILD_NS)
    await saver.aput_writes(root, [("ch", "root")], "task-root")
    await saver.aput_writes(child, [("ch", "child")], "task-child")
    next_root = await put(saver, thread_id, parent=root)

    assert writes_of(await saver.aget_tuple(root)) == {("task-root", "ch", repr("root"))}
    assert writes_of(await saver.aget_tuple(child)) == {("task-child", "ch", repr("child"))}
    assert writes_of(await saver.aget_tuple(next_root)) == set()


async def test_adelete_thread_removes_its_checkpoints_and_writes_in_every_namespace_only(
    saver: BaseCheckpointSaver[Any]
) -> None:
    doomed, kept = new_thread(), new_thread()
    for thread_id in (doomed, kept):
        root = await put(saver, thread_id, checkpoint=checkpoint_with(saver, {"doc": {"thread": thread_id}}))
        await put(saver, thread_id, checkpoint_ns=CHILD_NS)
        await saver.aput_writes(root, [("ch", thread_id)], "task-a")

    await saver.adelete_thread(doomed)

    assert await saver.aget_tuple(config_for(doomed)) is None
    assert await saver.aget_tuple(config_for(doomed, CHILD_NS)) is None
    assert await listed(saver, config_for(doomed)) == []
    survivor = await saver.aget_tuple(config_for(kept))
    assert survivor is not None
    assert survivor.checkpoint["channel_values"] == {"doc": {"thread": kept}}
    assert writes_of(survivor) == {("task-a", "ch", repr(kept))}
    assert await saver.aget_tuple(config_for(kept, CHILD_NS)) is not None


@POSTGRES_ONLY
async def test_integer_channel_versions_are_stored_as_the_stock_saver_stores_them(
    saver: BaseCheckpointSaver[Any], database_url: str
) -> None:
    # The contract allows int versions (ChannelVersions, langgraph's own conformance data uses
    # them). Graphs on this saver never make them (its get_next_version returns strings), but
    # PooledPostgresSaver once bound them as text[] and asyncpg refused them.
    values = {"doc": {"title": "T"}, "notes": ["a"], "count": 3}
    checkpoint = checkpoint_with(saver, values, versions={"doc": 1, "notes": 10**20, "count": 2})
    pooled_thread, stock_thread = new_thread(), new_thread()

    pooled = await put(saver, pooled_thread, checkpoint=checkpoint)
    found = await saver.aget_tuple(pooled)
    async with AsyncPostgresSaver.from_conn_string(postgres_conninfo(database_url)) as stock_saver:
        stock = await put(stock_saver, stock_thread, checkpoint=checkpoint)
        stock_found = await stock_saver.aget_tuple(stock)
        read_by_stock = await stock_saver.aget_tuple(pooled)
    connection = await asyncpg.connect(postgres_conninfo(database_url))
    try:
        rows = {thread_id: {tuple(row) for row in await connection.fetch(
            "SELECT channel, version, type FROM checkpoint_blobs WHERE thread_id = $1", thread_id)}
            for thread_id in (pooled_thread, stock_thread)}
    finally:
        await connection.close()

    assert found is not None and stock_found is not None and read_by_stock is not None
    assert found.checkpoint["channel_values"] == values
    assert found.checkpoint["channel_versions"] == {"doc": 1, "notes": 10**20, "count": 2}
    assert (found.checkpoint, found.metadata) == (stock_found.checkpoint, stock_found.metadata)
    assert (read_by_stock.checkpoint, read_by_stock.metadata) == (found.checkpoint, found.metadata)
    assert rows[pooled_thread] == rows[stock_thread] == {("doc", "1", "msgpack"), ("notes", str(10**20), "msgpack")}
