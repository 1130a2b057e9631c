"""storage.storable: what run output becomes before the database sees it."""

from __future__ import annotations

import json

import pytest

from storage.storable import storable, storable_json, storable_text, unstorable


def test_nul_is_dropped_and_a_lone_surrogate_becomes_the_replacement_character() -> None:
    assert storable_text("a\x00b\ud800c\udfffd") == "ab\ufffdc\ufffdd"


@pytest.mark.parametrize("text", ["plain ascii", "café ☕ 😀", ""])
def test_clean_text_comes_back_as_the_same_object(text: str) -> None:
    assert storable_text(text) is text
    assert not unstorable(text)


def test_every_string_in_nested_values_is_cleaned_keys_included() -> None:
    value = {"title\x00": ["x\ud800", ("y\x00", 3)], "n": 1.5, "ok": None}

    assert storable(value) == {"title": ["x\ufffd", ("y", 3)], "n": 1.5, "ok": None}


@pytest.mark.parametrize("value", [{"text": "a\x00b"}, ["\ud800"], {"k": ["\udc00 low"]}])
def test_json_never_carries_an_escape_jsonb_refuses(value: object) -> None:
    text = storable_json(value)

    assert "\\u0000" not in text and "\\ud8" not in text and "\\udc" not in text
    assert json.loads(text) == storable(value)


def test_json_keeps_a_surrogate_pair_that_spells_an_emoji() -> None:
    assert json.loads(storable_json({"text": "ship it 😀"})) == {"text": "ship it 😀"}
