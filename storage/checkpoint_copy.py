"""Copying a thread's checkpoints to a new thread id, through the saver's own API.

LangGraph's savers declare ``acopy_thread``; the Postgres and SQLite ones installed here do not
implement it yet (the base class raises NotImplementedError). A saver that does is used as is;
otherwise every checkpoint is written again under the new id with ``aput`` and its pending
writes with ``aput_writes``, oldest first, so the copy has the same checkpoint ids, parents and
metadata, and either backend's own serialisation (the pooled Postgres saver's included).
"""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver, ChannelVersions, CheckpointTuple


async def copy_thread_checkpoints(saver: BaseCheckpointSaver[Any], source: str, target: str) -> int:
    """Copy every checkpoint (all namespaces) and pending write of ``source`` to ``target``;
    how many checkpoints were copied (0: the source had no state)."""
    if type(saver).acopy_thread is not BaseCheckpointSaver.acopy_thread:
        await saver.acopy_thread(source, target)
        return sum([1 async for _ in saver.alist({"configurable": {"thread_id": target}})])
    tuples = [item async for item in saver.alist({"configurable": {"thread_id": source}})]
    # alist answers newest first; a checkpoint is written after its parent.
    tuples.reverse()
    last_versions: dict[str, ChannelVersions] = {}
    for item in tuples:
        await _copy_one(saver, item, target, last_versions)
    return len(tuples)


async def _copy_one(saver: BaseCheckpointSaver[Any], item: CheckpointTuple, target: str,
                    last_versions: dict[str, ChannelVersions]) -> None:
    configurable = item.config["configurable"]
    namespace = configurable.get("checkpoint_ns", "")
    checkpoint = item.checkpoint
    versions = checkpoint["channel_versions"]
    previous = last_versions.get(namespace, {})
    # The channels this checkpoint changed: what the saver stored with it the first time (the
    # Postgres saver keeps one blob per channel version).
    new_versions = {channel: version for channel, version in versions.items() if previous.get(channel) != version}
    last_versions[namespace] = dict(versions)
    parent_id = (item.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    # Only these keys: the savers add other configurable keys to the stored metadata.
    put_config: RunnableConfig = {"configurable": {"thread_id": target, "checkpoint_ns": namespace,
                                                   **({"checkpoint_id": parent_id} if parent_id else {})}}
    written = await saver.aput(put_config, checkpoint, item.metadata, new_versions)
    by_task: dict[str, list[tuple[str, Any]]] = {}
    for task_id, channel, value in item.pending_writes or ():
        by_task.setdefault(task_id, []).append((channel, value))
    for task_id, writes in by_task.items():
        await saver.aput_writes(written, writes, task_id)
