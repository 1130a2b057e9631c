"""Size limits from issue 19: no module over 400 lines and no class over 250, outside migrations
and tests. A module that outgrows them does more than one job; split it by what it holds
(docs/architecture.md lists the layout) rather than raising the limit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "graph", "tools", "storage", "bench", "devtools")
MAX_MODULE_LINES = 400
MAX_CLASS_LINES = 250


def product_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (REPO / package).rglob("*.py")
                  if "migrations" not in path.relative_to(REPO).parts)


def class_lengths(source: str) -> list[tuple[str, int]]:
    """(name, lines from `class` to its last line) of every class, nested ones included."""
    return [(node.name, (node.end_lineno or node.lineno) - node.lineno + 1)
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ClassDef)]


def test_the_scan_finds_the_product_modules() -> None:
    # A wrong root or package list would make the limits below pass on nothing.
    names = {path.relative_to(REPO).as_posix() for path in product_modules()}
    assert {"app/engine/dispatcher.py", "graph/builder.py", "storage/outcomes.py", "bench/load.py"} <= names


def test_class_lengths_counts_a_class_from_its_header_to_its_last_line() -> None:
    source = "class A:\n    x = 1\n\n    def f(self) -> None:\n        pass\n\n\nclass B:\n    pass\n"
    assert class_lengths(source) == [("A", 5), ("B", 2)]


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: p.relative_to(REPO).as_posix())
def test_module_stays_within_the_size_limits(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n") + (0 if source.endswith("\n") or not source else 1)
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by what it holds"
    too_long = [(name, length) for name, length in class_lengths(source) if length > MAX_CLASS_LINES]
    assert not too_long, f"classes over {MAX_CLASS_LINES} lines: {too_long}"
