"""The markdown render process that app/markdown_renderer.py starts: ``python -m app.render_process``.

It renders one body at a time from stdin to stdout, each within a budget of its own CPU time.
The budget is CPU time (ITIMER_PROF), not wall time: a body is refused for what it costs, the
same on an idle machine as on a busy one, and the render stops when the budget is spent instead
of running on in the background. The process survives a refusal and takes the next body.

Frames: a request is REQUEST (budget in CPU seconds, payload length) then the markdown as UTF-8
(surrogates passed through); a reply is REPLY (status, payload length) then, for OK, the
rendered body as ASCII JSON. READY is written once, when the imports are done.
"""

from __future__ import annotations

import json
import signal
import struct
import sys
from types import FrameType
from typing import BinaryIO

from app.content_html import render_body

REQUEST = struct.Struct(">dI")
REPLY = struct.Struct(">BI")
READY = b"R"
OK, OVER_BUDGET, FAILED = 0, 1, 2
# Windows has no CPU timers: there the parent's wall-clock deadline is the only bound.
CPU_TIMER = hasattr(signal, "setitimer")


class OverBudget(Exception):
    """The render used up its CPU budget."""


class _Budget:
    """Raises OverBudget into the render when its CPU timer fires, and only then: a signal that
    arrives just after the render returned must not break the reply."""

    def __init__(self) -> None:
        self.rendering = False

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.rendering:
            self.rendering = False
            raise OverBudget

    def render(self, markdown: str, seconds: float) -> tuple[int, bytes]:
        try:
            self.rendering = True
            if CPU_TIMER:
                signal.setitimer(signal.ITIMER_PROF, seconds)
            try:
                rendered = render_body(markdown)
            finally:
                self.rendering = False
                if CPU_TIMER:
                    signal.setitimer(signal.ITIMER_PROF, 0)
        except OverBudget:
            return OVER_BUDGET, b""
        except Exception as exc:  # noqa: BLE001 - a renderer bug is this body's failure, not the process's
            return FAILED, f"{type(exc).__name__}: {exc}"[:500].encode("ascii", "backslashreplace")
        payload = {"html": rendered.html, "word_count": rendered.word_count, "excerpt": rendered.excerpt,
                   "version": rendered.version}
        return OK, json.dumps(payload).encode("ascii")


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    """``size`` bytes, or None at end of input (the parent closed the pipe or died)."""
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def serve(stdin: BinaryIO, stdout: BinaryIO) -> None:
    budget = _Budget()
    if CPU_TIMER:
        signal.signal(signal.SIGPROF, budget.on_signal)
    # Ctrl-C in a terminal reaches the whole process group; the parent decides when this ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    stdout.write(READY)
    stdout.flush()
    while (header := _read_exactly(stdin, REQUEST.size)) is not None:
        seconds, size = REQUEST.unpack(header)
        payload = _read_exactly(stdin, size)
        if payload is None:
            return
        status, reply = budget.render(payload.decode("utf-8", "surrogatepass"), seconds)
        stdout.write(REPLY.pack(status, len(reply)) + reply)
        stdout.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
