"""graph/message_text.py: one text for a human turn whichever form a client sends it in."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage

from app.engine.api_runs import run_input
from app.http.run_requests import human_texts
from graph.message_text import (
    as_message,
    content_text,
    is_human,
    message_text,
    skipped_blocks,
    skipped_content_warning,
)
from storage.models import Task

TEXT = "Write a blog post about Green tea"
BLOCKS: list[Any] = [{"type": "text", "text": TEXT}]
WITH_IMAGE: list[Any] = [
    {"type": "text", "text": "Write a blog post"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    {"type": "text", "text": "about Green tea"},
]


def serialised(content: Any, cls: str = "HumanMessage") -> dict[str, Any]:
    return {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", cls],
            "kwargs": {"content": content, "type": "human"}}


FORMS: list[Any] = [
    TEXT,
    HumanMessage(TEXT),
    HumanMessage(content=BLOCKS),
    {"role": "user", "content": TEXT},
    {"role": "human", "content": BLOCKS},
    {"type": "human", "content": TEXT},
    {"type": "user", "content": BLOCKS},
    serialised(TEXT),
    serialised(BLOCKS),
]


@pytest.mark.parametrize("form", FORMS, ids=lambda form: type(form).__name__ + ":" + str(form)[:40])
def test_every_form_of_a_human_turn_gives_the_same_text(form: Any) -> None:
    assert message_text(form) == TEXT
    assert is_human(form)


def test_text_blocks_are_joined_with_newlines_and_other_blocks_skipped() -> None:
    assert content_text(WITH_IMAGE) == "Write a blog post\nabout Green tea"
    assert content_text(["plain", {"type": "text", "text": "  "}, {"type": "text", "text": "more"}]) == "plain\nmore"
    assert skipped_blocks(WITH_IMAGE) == ["image_url"]
    assert skipped_blocks(BLOCKS) == [] and skipped_blocks(TEXT) == []


def test_a_list_never_becomes_its_python_repr() -> None:
    text = message_text({"role": "user", "content": BLOCKS})
    assert "{" not in text and "'" not in text and text.endswith("Green tea")


def test_skipped_image_and_file_blocks_give_one_warning_naming_them() -> None:
    message = {"role": "user", "content": [*WITH_IMAGE, {"type": "file", "file_id": "f1"},
                                           {"type": "image", "url": "https://example.com/a.png"}]}
    warning = skipped_content_warning(message)
    assert warning is not None and "image_url, file, image blocks were ignored" in warning
    assert skipped_content_warning(serialised([{"type": "image", "url": "x"}])) == (
        "messages: the message's image block was ignored; Draftloop reads only text")
    assert skipped_content_warning({"role": "user", "content": TEXT}) is None


def test_a_serialised_ai_message_is_not_human_and_a_serialised_non_message_is_refused() -> None:
    ai = {"lc": 1, "type": "constructor", "id": ["langchain", "schema", "messages", "AIMessage"],
          "kwargs": {"content": "hello"}}
    assert isinstance(as_message(ai), AIMessage) and not is_human(ai)
    prompt = {"lc": 1, "type": "constructor", "id": ["langchain", "prompts", "PromptTemplate"], "kwargs": {}}
    with pytest.raises(ValueError, match="PromptTemplate"):
        as_message(prompt)
    assert message_text(prompt) == "" and not is_human(prompt)
    assert message_text({"content": TEXT}) == "" and message_text(5) == ""


def test_the_api_reads_the_same_text_from_every_form_for_its_length_check() -> None:
    texts = human_texts({"messages": [*FORMS[3:], {"role": "assistant", "content": "no"}]})
    assert [text for _, text in texts] == [TEXT] * len(FORMS[3:])
    assert texts[0][0] == "input.messages.0.content"


def test_a_run_hands_the_graph_message_objects_whichever_form_was_sent() -> None:
    run = Task(input={"messages": [serialised(BLOCKS), {"role": "user", "content": TEXT}, 5]})
    messages = run_input(run)["messages"]
    assert isinstance(messages[0], HumanMessage) and message_text(messages[0]) == TEXT
    assert isinstance(messages[1], HumanMessage)
    # What no reader takes is left for the graph's reducer to refuse with its own error.
    assert messages[2] == 5


def test_a_command_update_hands_the_graph_message_objects_too() -> None:
    run = Task(command={"update": {"messages": [{"type": "human", "content": BLOCKS}]}, "resume": None})
    command = run_input(run)
    assert isinstance(command.update["messages"][0], HumanMessage)
    assert message_text(command.update["messages"][0]) == TEXT
