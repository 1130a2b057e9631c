"""The loopback fakes of devtools/fakes as pytest fixtures, each started on a free port and
stopped after its test. Kept here, not beside the fakes: devtools is plain code that bench
scripts import too, and must not need pytest."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from devtools.fakes.ollama import FakeOllama
from devtools.fakes.openai_compat import FakeOpenAI
from devtools.fakes.pages import FakePages
from devtools.fakes.pexels import FakePexels
from devtools.fakes.serper import FakeSerper
from devtools.fakes.writer import GraphFakes, ScriptedWriter


@pytest.fixture
async def fake_ollama() -> AsyncIterator[FakeOllama]:
    """A started FakeOllama on a free loopback port."""
    server = FakeOllama()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAI]:
    """A started FakeOpenAI on a free loopback port."""
    server = FakeOpenAI()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def fake_serper() -> AsyncIterator[FakeSerper]:
    fake = await FakeSerper().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_pexels() -> AsyncIterator[FakePexels]:
    fake = await FakePexels().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def fake_pages() -> AsyncIterator[FakePages]:
    fake = await FakePages().start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
async def graph_fakes(fake_ollama: FakeOllama, fake_serper: FakeSerper, fake_pexels: FakePexels,
                      http_client: httpx.AsyncClient) -> AsyncIterator[GraphFakes]:
    """The three fakes a graph run talks to, with a ScriptedWriter answering as the model."""
    writer = ScriptedWriter()
    fake_ollama.responder = writer
    yield GraphFakes(fake_ollama, fake_serper, fake_pexels, writer, http_client)
