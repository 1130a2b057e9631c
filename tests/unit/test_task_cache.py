"""app.task_cache: what may be served from memory, and what must go back to the database."""

from __future__ import annotations

import time

from app.task_cache import TaskDetailCache

BODY = {"id": "t1", "status": "running"}


def _cache(ttl: float = 60.0, *, connected: bool = True) -> tuple[TaskDetailCache, dict[str, bool]]:
    state = {"connected": connected}
    return TaskDetailCache(lambda: state["connected"], ttl), state


def _read(cache: TaskDetailCache, task_id: str, body: dict[str, object]) -> None:
    with cache.reading(task_id) as read:
        read.store(body)


def test_a_stored_body_is_served_until_its_task_changes() -> None:
    cache, _ = _cache()
    _read(cache, "t1", BODY)

    assert cache.get("t1") is BODY and cache.hits == 1
    cache.forget("t1")
    assert cache.get("t1") is None


def test_a_change_during_the_read_keeps_what_it_read_out_of_the_cache() -> None:
    cache, _ = _cache()
    with cache.reading("t1") as read:
        cache.forget("t1")  # the notification arrives while the SELECT is in flight
        read.store(BODY)
    assert cache.get("t1") is None

    _read(cache, "t1", BODY)  # the next read, after the change, may be kept
    assert cache.get("t1") is BODY


def test_an_overlapping_read_is_not_stored_either_when_the_task_changed_during_it() -> None:
    cache, _ = _cache()
    with cache.reading("t1") as first:
        with cache.reading("t1") as second:
            cache.forget("t1")
            second.store(BODY)
        first.store(BODY)
    assert cache.get("t1") is None


def test_a_change_of_another_task_does_not_spoil_the_read() -> None:
    cache, _ = _cache()
    with cache.reading("t1") as read:
        cache.forget("t2")
        read.store(BODY)
    assert cache.get("t1") is BODY


def test_nothing_is_kept_or_served_while_changes_cannot_be_heard() -> None:
    cache, state = _cache(connected=False)
    _read(cache, "t1", BODY)
    assert cache.get("t1") is None

    state["connected"] = True
    _read(cache, "t1", BODY)
    state["connected"] = False
    assert cache.get("t1") is None


def test_a_reconnect_clears_everything_including_reads_in_flight() -> None:
    cache, _ = _cache()
    _read(cache, "t1", BODY)
    with cache.reading("t2") as read:
        cache.forget("")  # the listener reconnected: it may have missed anything
        read.store(BODY)
    assert cache.get("t1") is None and cache.get("t2") is None


def test_an_entry_expires_after_the_ttl() -> None:
    cache, _ = _cache(ttl=0.05)
    _read(cache, "t1", BODY)
    time.sleep(0.1)
    assert cache.get("t1") is None


def test_a_zero_ttl_turns_the_cache_off() -> None:
    cache, _ = _cache(ttl=0.0)
    _read(cache, "t1", BODY)
    assert cache.get("t1") is None


def test_a_full_cache_starts_over_instead_of_growing() -> None:
    cache = TaskDetailCache(lambda: True, 60.0, max_entries=3)
    for n in range(4):
        _read(cache, f"t{n}", BODY)
    assert cache.get("t3") is BODY and cache.get("t0") is None
