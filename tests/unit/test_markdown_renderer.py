"""The markdown renderer's child processes: bodies past the CPU budget are refused and stop
costing CPU at once, a render nobody waits for any more dies with its process, and a dead or
silent process is replaced. Real child processes (Linux /proc tells which are alive)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from app.content_html import render_body, unrendered_body
from app.markdown_renderer import MarkdownRenderer, RenderRefused, RenderUnavailable
from app.service_settings import ServiceSettings

# Each of these costs well over a CPU second to render (1-2 s on an idle 2-core box): far past
# the budgets below, whatever the load.
COSTLY_BODIES = ["![" * 50_000, "[" * 100_000, "|a|\n|-|\n" + "|a\n" * 33_000]
SMALL_BUDGET = 0.05


def _render_children(pid: int) -> list[int]:
    try:
        children = [int(part) for part in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []
    found = []
    for child in children:
        try:
            stat = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except FileNotFoundError:
            continue
        if stat != "Z" and b"app.render_process" in cmdline:
            found.append(child)
    return found


async def render_processes() -> list[int]:
    """This test process's live render children (read off the loop: blockbuster is on)."""
    return await asyncio.to_thread(_render_children, os.getpid())


@pytest.mark.parametrize("body", COSTLY_BODIES, ids=["images", "brackets", "table-rows"])
async def test_a_body_past_the_cpu_budget_is_refused_and_its_process_takes_the_next_body(body: str) -> None:
    async with MarkdownRenderer(budget_seconds=SMALL_BUDGET, processes=1) as renderer:
        await renderer.render("warm up")
        [pid] = await render_processes()

        with pytest.raises(RenderRefused, match="CPU time"):
            await renderer.render(body)

        # The same single-threaded process answers at once: the refused render stopped, it is
        # not burning a core in the background.
        assert await renderer.render("**next**") == render_body("**next**")
        assert await render_processes() == [pid]


async def test_a_body_within_the_budget_renders_as_in_process() -> None:
    body = "# Title\n\nSome **bold** text with [a link](https://example.com) and a citation [1].\n\n" * 200
    async with MarkdownRenderer() as renderer:
        assert await renderer.render(body) == render_body(body)


async def test_a_render_nobody_waits_for_dies_with_its_process() -> None:
    async with MarkdownRenderer(budget_seconds=30, processes=1) as renderer:
        await renderer.render("warm up")
        [pid] = await render_processes()
        rendering = asyncio.create_task(renderer.render(COSTLY_BODIES[0] * 2))
        await asyncio.sleep(0.3)

        rendering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await rendering

        assert pid not in await render_processes()
        assert await renderer.render("again") == render_body("again")


async def test_a_process_silent_past_the_deadline_is_killed_and_the_render_unavailable() -> None:
    async with MarkdownRenderer(budget_seconds=30, processes=1, deadline_seconds=0.3) as renderer:
        await renderer.render("warm up")
        [pid] = await render_processes()

        with pytest.raises(RenderUnavailable):
            await renderer.render(COSTLY_BODIES[0] * 2)

        assert pid not in await render_processes()
        assert await renderer.render_or_escape(COSTLY_BODIES[0] * 2) is None


async def test_a_dead_process_is_replaced_by_the_next_render() -> None:
    async with MarkdownRenderer(processes=1) as renderer:
        await renderer.render("warm up")
        [pid] = await render_processes()
        os.kill(pid, signal.SIGKILL)
        while pid in await render_processes():
            await asyncio.sleep(0.01)

        assert await renderer.render("after") == render_body("after")
        assert pid not in await render_processes()


async def test_where_nobody_can_be_refused_a_costly_body_is_stored_as_text() -> None:
    async with MarkdownRenderer(budget_seconds=SMALL_BUDGET) as renderer:
        assert await renderer.render_or_escape(COSTLY_BODIES[1]) == unrendered_body(COSTLY_BODIES[1])
        assert await renderer.render_or_escape("*fine*") == render_body("*fine*")


async def test_closing_the_renderer_ends_its_processes() -> None:
    renderer = MarkdownRenderer()
    await asyncio.gather(renderer.render("one"), renderer.render("two"))
    assert len(await render_processes()) == 2

    await renderer.aclose()

    assert await render_processes() == []
    with pytest.raises(RenderUnavailable):
        await renderer.render("closed")


def test_the_budget_comes_from_markdown_render_seconds() -> None:
    assert ServiceSettings.from_env({"MARKDOWN_RENDER_SECONDS": "2.5"}).markdown_render_seconds == 2.5
    assert ServiceSettings.from_env({}).markdown_render_seconds == 1.0
    with pytest.raises(ValueError, match="MARKDOWN_RENDER_SECONDS"):
        ServiceSettings.from_env({"MARKDOWN_RENDER_SECONDS": "0"})
