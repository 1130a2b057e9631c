"""The event loop the service's own processes run on.

uvloop where it is installed (every platform but Windows; a dependency in pyproject.toml), as
uvicorn picks for the API process: its transports, timers and callback queue cost less per
step than asyncio's pure-Python selector loop, and a worker process spends a tenth of its CPU
on them (bench/ANALYSIS.md). Elsewhere, asyncio's own loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_new_uvloop: Callable[[], asyncio.AbstractEventLoop] | None
try:
    import uvloop

    _new_uvloop = uvloop.new_event_loop
except ImportError:  # Windows: uvloop does not build there
    _new_uvloop = None

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """A new-loop factory for ``asyncio.Runner``; None means asyncio's default loop."""
    return _new_uvloop


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on the service's event loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
