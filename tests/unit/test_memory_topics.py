"""Which earlier pieces count as on the same topic (graph/memory.py), and whose memory a run
reads: the notes a draft prompt gets depend on both."""

from __future__ import annotations

from graph.memory import DEFAULT_OWNER, owner_of, related


def test_topics_sharing_most_content_words_are_related_whatever_the_filler() -> None:
    assert related("green tea", "The benefits of green tea for busy parents")
    assert related("Async Python for backend developers", "async python")
    assert not related("green tea", "Postgres indexes")
    assert not related("green tea", "black coffee")
    assert not related("", "green tea") and not related("the of and", "the of and")


def test_the_owner_is_the_runs_user_else_default() -> None:
    assert owner_of({"metadata": {"user_id": "ann"}}) == "ann"
    assert owner_of({"configurable": {"langgraph_auth_user_id": "bob"}, "metadata": {"user_id": "ann"}}) == "bob"
    assert owner_of({"configurable": {"user_id": "ann", "langgraph_auth_user_id": "bob"}}) == "bob"
    assert owner_of({"metadata": {"user_id": "  "}}) == DEFAULT_OWNER
    assert owner_of(None) == DEFAULT_OWNER
