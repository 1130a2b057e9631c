"""Stopping the engine's helper tasks without swallowing a cancellation aimed at the caller."""

from __future__ import annotations

import asyncio
from typing import Any


async def cancel_and_wait(task: asyncio.Task[Any]) -> None:
    """Cancel a helper task and wait for it to unwind, without swallowing a cancellation that
    is aimed at the caller itself."""
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise


async def wait_done(task: asyncio.Task[Any] | None, timeout: float) -> None:
    """Wait up to ``timeout`` for a task to finish, however it ends: its outcome is its owner's
    to handle. None (nothing to wait for) and the calling task itself return at once."""
    if task is not None and task is not asyncio.current_task():
        await asyncio.wait({task}, timeout=timeout)
