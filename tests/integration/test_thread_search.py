"""ThreadRepository.search and merge_metadata on real SQLite and Postgres: JSON containment in
SQL that matches storage/json_filter.contains (what a values filter uses in Python), sorting
and offset pages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.json_filter import contains
from storage.models import ThreadStatus
from storage.threads import ThreadRepository

DOCUMENTS: dict[str, dict[str, Any]] = {
    "t1": {"graph_id": "draftloop", "user": {"id": "u1", "team": "blue"}, "tags": ["a", "b"], "n": 1,
           "flag": True, "none": None, "name": 'it\'s "quoted"', "dotted.key": "x",
           "thé": {"x\ny": "é", "a\\b": 1}},
    "t2": {"graph_id": "draftloop", "user": {"id": "u2", "team": "blue"}, "tags": ["a"], "n": 1.5, "flag": False},
    "t3": {"graph_id": "other", "user": {"id": "u1"}, "n": "1", "tags": [], "flag": 1},
    "t4": {},
}
FILTERS: list[dict[str, Any]] = [
    {"graph_id": "draftloop"},
    {"user": {"team": "blue"}},
    {"user": {"id": "u1"}},
    {"user": {}},
    {"user": "u1"},
    {"tags": ["a"]},
    {"tags": ["a", "b"]},
    {"tags": []},
    {"n": 1},
    {"n": 1.0},
    {"n": 1.5},
    {"n": "1"},
    {"flag": True},
    {"flag": False},
    {"flag": 1},
    {"none": None},
    {"missing": None},
    {"name": 'it\'s "quoted"'},
    {"dotted.key": "x"},
    {"thé": {"x\ny": "é"}},
    {"thé": {"a\\b": 1}},
    {"thé": {"a\\b": 2}},
    {"graph_id": "draftloop", "user": {"id": "u2"}},
    {"graph_id": "nowhere"},
]


@pytest.fixture
async def threads(sessions: async_sessionmaker[AsyncSession]) -> async_sessionmaker[AsyncSession]:
    async with sessions.begin() as session:
        repo = ThreadRepository(session)
        for thread_id, document in DOCUMENTS.items():
            await repo.create(thread_id, document)
    return sessions


@pytest.mark.parametrize("wanted", FILTERS, ids=str)
async def test_metadata_filter_in_sql_matches_the_python_containment_rule(
    threads: async_sessionmaker[AsyncSession], wanted: dict[str, Any]
) -> None:
    async with threads() as session:
        found = await ThreadRepository(session).search(metadata=wanted, sort_by="thread_id", descending=False)
    expected = [thread_id for thread_id, document in DOCUMENTS.items() if contains(document, wanted)]
    assert [t.thread_id for t in found] == expected


def test_the_python_rule_is_containment_for_objects_and_equality_for_the_rest() -> None:
    assert [t for t, d in DOCUMENTS.items() if contains(d, {"tags": ["a"]})] == ["t2"]
    assert [t for t, d in DOCUMENTS.items() if contains(d, {"flag": 1})] == ["t3"]
    assert [t for t, d in DOCUMENTS.items() if contains(d, {"user": {"id": "u1"}})] == ["t1", "t3"]
    assert not contains(None, {"a": 1})


async def test_search_sorts_both_ways_and_pages_with_offset(threads: async_sessionmaker[AsyncSession]) -> None:
    async with threads.begin() as session:
        await ThreadRepository(session).set_status("t2", ThreadStatus.BUSY)
    async with threads() as session:
        repo = ThreadRepository(session)
        ascending = await repo.search(sort_by="thread_id", descending=False)
        page = await repo.search(sort_by="thread_id", descending=True, limit=2, offset=1)
        busy = await repo.search(status="busy")
        by_ids = await repo.search(ids=["t4", "t1"], sort_by="thread_id", descending=False)
        newest = await repo.search()
    assert [t.thread_id for t in ascending] == ["t1", "t2", "t3", "t4"]
    assert [t.thread_id for t in page] == ["t3", "t2"]
    assert [t.thread_id for t in busy] == ["t2"]
    assert [t.thread_id for t in by_ids] == ["t1", "t4"]
    assert newest[0].thread_id == "t2"  # the status change made it the most recently updated


async def test_merge_metadata_overwrites_the_given_keys_and_keeps_a_creator_already_there(
    threads: async_sessionmaker[AsyncSession]
) -> None:
    async with threads.begin() as session:
        repo = ThreadRepository(session)
        await repo.merge_metadata("t1", {"graph_id": "draftloop", "assistant_id": "a1"}, if_absent={"user_id": "u9"})
        await repo.merge_metadata("t4", {"graph_id": "draftloop"}, if_absent={"user_id": "u9"})
        await repo.merge_metadata("t3", {"graph_id": "draftloop"}, if_absent={"user": "ignored"})
    async with threads() as session:
        repo = ThreadRepository(session)
        t1, t3, t4 = (await repo.get("t1"), await repo.get("t3"), await repo.get("t4"))
    assert t1 is not None and t1.meta == {**DOCUMENTS["t1"], "assistant_id": "a1", "user_id": "u9"}
    assert t3 is not None and t3.meta["graph_id"] == "draftloop" and t3.meta["user"] == {"id": "u1"}
    assert t4 is not None and t4.meta == {"graph_id": "draftloop", "user_id": "u9"}
