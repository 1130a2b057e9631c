"""`make test`: the test tiers as two pytest processes side by side.

The end-to-end and fault tiers spend most of their time waiting on `draftloop serve` processes
(one pytest process used about a third of a core over the whole suite), so running the unit and
integration tiers beside them takes the suite from the sum of the two to about the longer one.
Two groups, not more: each group's servers and pools share 100 Postgres connections, and inside a
group the tests keep running one at a time, as they were written to.

Each group writes to its own log, shown whole when the group ends (interleaved `-q` dots would
read as nothing); a line every minute says what is still running. Arguments are passed to both
pytest processes. Every directory of tests must belong to a group, so a new tier cannot be left
out silently.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"
GROUPS: dict[str, tuple[str, ...]] = {
    "end-to-end and faults": ("tests/e2e", "tests/faults"),
    "unit and integration": ("tests/unit", "tests/integration"),
}
PROGRESS_SECONDS = 60.0
# pytest's exit code when a selection (-k, -m) matches nothing in one group.
NO_TESTS_COLLECTED = 5


@dataclass
class Group:
    name: str
    paths: tuple[str, ...]
    log: IO[bytes]
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    ended: float | None = None


def directories_with_tests(tests: Path = TESTS) -> set[str]:
    """Every directory under tests/ that holds a test module, relative to the repository root."""
    return {str(path.parent.relative_to(tests.parent)) for path in tests.rglob("test_*.py")}


def uncovered(directories: set[str], groups: dict[str, tuple[str, ...]] = GROUPS) -> set[str]:
    """Test directories that no group runs."""
    covered = [Path(path) for paths in groups.values() for path in paths]
    return {d for d in directories if not any(Path(d) == c or c in Path(d).parents for c in covered)}


def start(name: str, paths: tuple[str, ...], args: list[str]) -> Group:
    log = tempfile.TemporaryFile(prefix="draftloop-tests-")
    command = [sys.executable, "-m", "pytest", "-q", "--durations=15", *paths, *args]
    process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    return Group(name, paths, log, process)


def passed(code: int, selected: bool) -> bool:
    """A group passes with 0; with a selection given, also when the selection missed it."""
    return code == 0 or (selected and code == NO_TESTS_COLLECTED)


def show(group: Group) -> None:
    group.log.seek(0)
    elapsed = (group.ended or time.monotonic()) - group.started
    print(f"\n===== {group.name} ({' '.join(group.paths)}): exit {group.process.returncode}, "
          f"{elapsed / 60:.1f} min =====", flush=True)
    sys.stdout.buffer.write(group.log.read())
    sys.stdout.flush()


def main(args: list[str]) -> int:
    missing = uncovered(directories_with_tests())
    if missing:
        print(f"test directories in no group of devtools/test_tiers.py: {sorted(missing)}", file=sys.stderr)
        return 2
    groups = [start(name, paths, args) for name, paths in GROUPS.items()]
    print(f"running {len(groups)} groups side by side: {', '.join(g.name for g in groups)}", flush=True)
    last_note = time.monotonic()
    while any(g.ended is None for g in groups):
        for group in groups:
            if group.ended is None and group.process.poll() is not None:
                group.ended = time.monotonic()
                show(group)
        if time.monotonic() - last_note >= PROGRESS_SECONDS:
            last_note = time.monotonic()
            running = [g.name for g in groups if g.ended is None]
            if running:
                print(f"[{time.strftime('%H:%M:%S')}] still running: {', '.join(running)}", flush=True)
        time.sleep(0.5)
    selected = bool(args)
    failed = [g.name for g in groups if not passed(g.process.returncode or 0, selected)]
    print(f"\n{'FAILED: ' + ', '.join(failed) if failed else 'all groups passed'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
