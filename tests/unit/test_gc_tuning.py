"""The collector settings the service's processes take after start-up (app/gc_tuning.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from app import gc_tuning


@pytest.fixture
def restored_collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


@pytest.mark.usefixtures("restored_collector")
def test_settling_raises_the_young_threshold_and_keeps_the_older_generations_factors() -> None:
    _, middle, old = gc.get_threshold()
    gc_tuning.settle_after_startup()
    assert gc.get_threshold() == (gc_tuning.YOUNG_THRESHOLD, middle, old)


@pytest.mark.usefixtures("restored_collector")
def test_settling_freezes_what_exists_so_far() -> None:
    gc.unfreeze()
    survivor = [object() for _ in range(10)]
    gc_tuning.settle_after_startup()
    assert gc.get_freeze_count() >= len(survivor)
