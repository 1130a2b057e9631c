"""Lines an end-to-end test wants in the run's summary even when it passes (pytest shows a
passing test's own output nowhere, not even with -q)."""

from __future__ import annotations

import pytest

_REPORT_LINES = pytest.StashKey[list[str]]()


def report_line(config: pytest.Config, line: str) -> None:
    """Show ``line`` in the terminal summary at the end of the run."""
    config.stash.setdefault(_REPORT_LINES, []).append(line)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_REPORT_LINES, [])
    if lines:
        terminalreporter.write_sep("-", "end-to-end figures")
        for line in lines:
            terminalreporter.write_line(line)
