"""tools.gguf and the embedded model's name, on tiny GGUF files the tests write themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Literal

import pytest

from devtools.fakes.gguf import ARRAY, BOOL, FLOAT32, STRING, UINT32, UINT64, Typed, write_gguf
from tools.embedded import model_name
from tools.gguf import GGUFError, read_string
from tools.llm.provider import ModelProvider
from tools.llm.settings import LLMSettings

# What real files put before general.name, and the bulky tokenizer arrays after it.
LEADING: list[tuple[str, Typed]] = [
    ("general.architecture", (STRING, "llama")),
    ("llama.block_count", (UINT32, 30)),
    ("llama.rope.freq_base", (FLOAT32, 10000.0)),
    ("tokenizer.ggml.add_bos_token", (BOOL, True)),
    ("tokenizer.ggml.tokens", (ARRAY, (STRING, ["<s>", "hello", "wörld"]))),
    ("tokenizer.ggml.token_type", (ARRAY, (UINT32, [1, 1, 1]))),
    ("nested", (ARRAY, (ARRAY, [(UINT64, [1, 2]), (STRING, ["a"])]))),
]
NAME: tuple[str, Typed] = ("general.name", (STRING, "Tiny Test Model 1M"))


@pytest.mark.parametrize(("version", "order"), [(3, "<"), (2, "<"), (1, "<"), (3, ">")])
def test_general_name_is_read_past_every_value_type(
    tmp_path: Path, version: int, order: Literal["<", ">"]
) -> None:
    path = write_gguf(tmp_path / "m.gguf", [*LEADING, NAME], version=version, order=order, tensor_count=5)

    assert read_string(path, "general.name") == "Tiny Test Model 1M"


def test_reading_stops_at_the_key_without_parsing_what_follows(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", [NAME, *LEADING])
    # Garbage after the wanted key: a reader that went on would fail on it.
    path.write_bytes(path.read_bytes()[:-7] + b"\xff" * 7)

    assert read_string(path, "general.name") == "Tiny Test Model 1M"


def test_an_absent_key_or_one_holding_another_type_reads_as_none(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", LEADING)

    assert read_string(path, "general.name") is None
    assert read_string(path, "llama.block_count") is None


@pytest.mark.parametrize(("content", "problem"), [
    (b"PK\x03\x04 a zip, not a model", "not a GGUF file"),
    (b"GGUF\x07\x00\x00\x00" + bytes(16), "unsupported GGUF version 7"),
    (b"GGUF\x03\x00\x00\x00\x00", "cut short"),
    # One KV whose key claims 2**40 bytes.
    (b"GGUF\x03\x00\x00\x00" + bytes(8) + (1).to_bytes(8, "little") + (1 << 40).to_bytes(8, "little"),
     "claims"),
])
def test_a_file_that_is_not_a_readable_gguf_header_raises_gguf_error(
    tmp_path: Path, content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(content)

    with pytest.raises(GGUFError, match=problem):
        read_string(path, "general.name")


def test_a_header_cut_inside_the_metadata_raises_gguf_error(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", [*LEADING, NAME])
    path.write_bytes(path.read_bytes()[:40])

    with pytest.raises(GGUFError, match="cut short"):
        read_string(path, "general.name")


def test_model_name_is_the_metadata_name_trimmed(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "m.gguf", [("general.name", (STRING, "  Tiny Test Model 1M \n"))])

    assert model_name(path) == "Tiny Test Model 1M"


@pytest.mark.parametrize("case", ["no name", "blank name", "not gguf", "missing"])
def test_model_name_falls_back_to_the_file_stem(tmp_path: Path, case: str) -> None:
    path = tmp_path / "Tiny-1M.Q4_0.gguf"
    if case == "no name":
        write_gguf(path, LEADING)
    elif case == "blank name":
        write_gguf(path, [("general.name", (STRING, "  "))])
    elif case == "not gguf":
        path.write_bytes(b"not a model")

    assert model_name(path) == "Tiny-1M.Q4_0"


async def test_embedded_provider_reports_the_gguf_name_without_blocking_the_loop(tmp_path: Path) -> None:
    path = await asyncio.to_thread(write_gguf, tmp_path / "tiny.gguf", [*LEADING, NAME])
    async with ModelProvider(LLMSettings(provider="embedded", embedded_model_path=path)) as provider:
        info = await provider.describe()

    # blockbuster fails this test if the header is read on the event loop.
    assert (info.provider, info.model) == ("embedded", "Tiny Test Model 1M")
    assert "starts on first use" in info.detail


async def test_embedded_provider_without_the_model_file_reports_its_stem(tmp_path: Path) -> None:
    settings = LLMSettings(provider="embedded", embedded_model_path=tmp_path / "Absent-2M.gguf")
    async with ModelProvider(settings) as provider:
        info = await provider.describe()

    assert (info.model, info.reachable) == ("Absent-2M", False)
