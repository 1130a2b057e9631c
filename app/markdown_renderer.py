"""Renders post bodies in child processes (app/render_process.py), each body within a CPU budget.

Rendering is pure Python: in a thread it would still hold the GIL, and nothing could stop it
once started. A child process leaves the event loop and its GIL alone, is stopped by its own CPU
timer when a body costs more than the budget (a refusal the writer hears about), and is killed
when it does not answer by a wall-clock deadline far past that (it died, or the machine is too
busy for it: a temporary failure). Children start on first use (~0.1 s), are reused, and end
with their renderer or when their parent dies (their stdin closes).

One renderer per process, opened with the graph runtime (app/graph_runtime.py): the posts API
renders what editors write, finalize what runs write.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from types import TracebackType

from app.content_html import RenderedBody, unrendered_body
from app.render_process import OK, OVER_BUDGET, READY, REPLY, REQUEST

log = logging.getLogger("draftloop.render")

# CPU seconds one body may take. The costliest bodies under the 100,000-character cap (runs of
# ``![`` or ``[``, table rows) take 1-2 s; a 5,000-word post takes about 0.1 s.
DEFAULT_BUDGET_SECONDS = 1.0
# Renders that may run at once in this process: bodies are usually milliseconds, and a second
# child keeps one expensive body from holding up the others.
DEFAULT_PROCESSES = 2
# A child that has not answered this long after its CPU budget is killed: it died, hangs, or
# the machine starves it. Generous, because CPU time on a busy machine passes slowly.
MIN_DEADLINE_SECONDS = 10.0
START_SECONDS = 30.0


class RenderRefused(ValueError):
    """The body took more CPU time than the budget allows: the writer should simplify it."""


class RenderUnavailable(RuntimeError):
    """No render process answered in time (it died, or the machine is overloaded): retry."""


class _Died(RenderUnavailable):
    """The render process's pipe broke: it exited, or was killed."""


def render_command() -> list[str]:
    return [sys.executable, "-m", "app.render_process"]


class _Child:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def exchange(self, markdown: str, budget_seconds: float) -> tuple[int, bytes]:
        stdin, stdout = self.process.stdin, self.process.stdout
        assert stdin is not None and stdout is not None
        payload = markdown.encode("utf-8", "surrogatepass")
        stdin.write(REQUEST.pack(budget_seconds, len(payload)) + payload)
        await stdin.drain()
        status, size = REPLY.unpack(await stdout.readexactly(REPLY.size))
        return status, await stdout.readexactly(size)

    async def kill(self) -> None:
        if self.process.returncode is None:
            try:
                self.process.kill()
            except ProcessLookupError:
                pass  # exited between the check and the kill
        await self.process.wait()


class MarkdownRenderer:
    """``render`` for writes that can be refused, ``render_or_escape`` for those that cannot."""

    def __init__(self, budget_seconds: float = DEFAULT_BUDGET_SECONDS, processes: int = DEFAULT_PROCESSES,
                 deadline_seconds: float | None = None) -> None:
        """``deadline_seconds``: wall-clock time a render may take before its process is killed
        (default: ten times the budget, at least MIN_DEADLINE_SECONDS)."""
        if not budget_seconds > 0:
            raise ValueError("budget_seconds must be positive")
        if processes < 1:
            raise ValueError("processes must be at least 1")
        self.budget_seconds = budget_seconds
        self.deadline_seconds = deadline_seconds or max(MIN_DEADLINE_SECONDS, 10 * budget_seconds)
        self._slots = asyncio.Semaphore(processes)
        self._idle: list[_Child] = []
        self._closed = False

    async def __aenter__(self) -> MarkdownRenderer:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for child in idle:
            await child.kill()

    async def render(self, markdown: str) -> RenderedBody:
        """The body rendered; RenderRefused past the CPU budget, RenderUnavailable when no
        process answered."""
        if self._closed:
            raise RenderUnavailable("the renderer is closed")
        async with self._slots:
            status, reply = await self._exchange(markdown)
        if status == OVER_BUDGET:
            raise RenderRefused(f"takes more than {self.budget_seconds:g} s of CPU time to render; long runs "
                                "of unclosed brackets, emphasis markers or table rows cost the most")
        if status != OK:
            # The renderer has no answer for this text: show it as text rather than fail a write.
            log.error("markdown renderer failed (%d characters): %s", len(markdown), reply.decode("ascii"))
            return unrendered_body(markdown)
        fields = json.loads(reply)
        return RenderedBody(html=fields["html"], word_count=fields["word_count"], excerpt=fields["excerpt"],
                            version=fields["version"])

    async def render_or_escape(self, markdown: str) -> RenderedBody | None:
        """For writes nobody can be told about (a run's finalize, an old post's first read): the
        body rendered, or past the budget shown as escaped text; None when no process answered,
        so that the caller stores nothing and a later read tries again."""
        try:
            return await self.render(markdown)
        except RenderRefused as exc:
            log.warning("markdown body of %d characters stored as text: it %s", len(markdown), exc)
            return unrendered_body(markdown)
        except RenderUnavailable as exc:
            log.warning("markdown body of %d characters left to render on a later read: %s", len(markdown), exc)
            return None

    async def _exchange(self, markdown: str) -> tuple[int, bytes]:
        child, reused = await self._child()
        try:
            return await self._through(child, markdown)
        except _Died:
            if not reused:
                raise
        # Killed while idle and not reaped yet, so it looked alive: a new one takes the body.
        child, _ = await self._child()
        return await self._through(child, markdown)

    async def _through(self, child: _Child, markdown: str) -> tuple[int, bytes]:
        """One body through ``child``, which goes back to the idle ones unless anything failed."""
        try:
            status, reply = await asyncio.wait_for(child.exchange(markdown, self.budget_seconds),
                                                   self.deadline_seconds)
        except BaseException as exc:
            # Cancelled mid-render, timed out or broken: a reply still to come would be read
            # as the next body's, so this child is done for.
            await asyncio.shield(child.kill())
            if isinstance(exc, (asyncio.IncompleteReadError, ConnectionError)):
                raise _Died("the render process died") from exc
            if isinstance(exc, TimeoutError):
                raise RenderUnavailable(f"the render process did not answer within "
                                        f"{self.deadline_seconds:g} s") from exc
            raise
        if self._closed:
            await child.kill()
        else:
            self._idle.append(child)
        return status, reply

    async def _child(self) -> tuple[_Child, bool]:
        """An idle child that is still alive (True: reused), else a new one."""
        while self._idle:
            child = self._idle.pop()
            if child.process.returncode is None:
                return child, True
            await child.kill()
        process = await asyncio.create_subprocess_exec(*render_command(), stdin=asyncio.subprocess.PIPE,
                                                       stdout=asyncio.subprocess.PIPE)
        child = _Child(process)
        try:
            assert process.stdout is not None
            ready = await asyncio.wait_for(process.stdout.readexactly(len(READY)), START_SECONDS)
        except BaseException as exc:
            await asyncio.shield(child.kill())
            if isinstance(exc, (TimeoutError, asyncio.IncompleteReadError)):
                raise RenderUnavailable("the render process did not start") from exc
            raise
        if ready != READY:
            await child.kill()
            raise RenderUnavailable("the render process did not start")
        return child, False
