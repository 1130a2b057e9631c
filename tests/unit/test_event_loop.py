"""The loop the service's processes run on (app/event_loop.py)."""

from __future__ import annotations

import asyncio

import uvloop

from app import event_loop


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop())


def test_run_drives_the_coroutine_on_uvloop_and_returns_its_result() -> None:
    assert event_loop.run(_loop_type()) is uvloop.Loop


def test_loop_factory_makes_uvloop_loops() -> None:
    factory = event_loop.loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
