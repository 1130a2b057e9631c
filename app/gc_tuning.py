"""Garbage-collector settings for the service's long-running processes.

A graph run allocates a great many short-lived objects (message chunks, ORM rows, stream
events). With CPython's default first-generation threshold (700 allocations) the collector ran
some 2,500 times per round of 100 runs and took about a quarter of the CPU of the in-process
yardstick (bench/ANALYSIS.md). Objects without reference cycles are freed at once either way;
the threshold only decides how often cycles are looked for, so a larger one costs little memory.
"""

from __future__ import annotations

import gc

# Allocations (net of deallocations) between young collections; the two older generations keep
# CPython's factors, so full collections stay as rare relative to young ones as by default.
YOUNG_THRESHOLD = 20_000


def settle_after_startup() -> None:
    """Call once start-up is done. What start-up made (modules, the app, engines, the compiled
    graph) lives as long as the process: frozen, full collections under load do not walk it."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, old)
