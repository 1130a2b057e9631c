"""The import rules of DESIGN.md, read from the source with ast: app -> graph -> tools/storage,
nothing outside tests/ imports tests/, and the HTTP layer does not import the dispatcher.

Every import counts wherever it sits (module level, inside a function, under TYPE_CHECKING):
a lazy import is still a dependency. Violations that exist today and are being worked off are
listed in KNOWN_VIOLATIONS; a new one fails, and so does an entry that is no longer true, so the
list can only shrink.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Every first-party package outside tests/; tests/ itself may import anything.
SCANNED = ("app", "graph", "tools", "storage", "bench", "devtools")
# The engine's machinery: controllers reach the engine only through the narrow services of
# app/engine/commands.py, run_settings.py and stats.py, which Litestar injects. (app/http/app.py,
# the composition root, opens the run services: app.engine.services is not on this list.)
DISPATCHER = ("app.engine.dispatcher", "app.engine.heartbeat", "app.engine.driver", "app.engine.run_end")
# The one environment reader: a leaf (standard library only) that every layer reads settings
# through, storage included.
SETTINGS_READER = "tools.settings_reader"

# (importing module, imported module) pairs that break a rule today; a new one fails, and so
# does an entry that is no longer true, so the list can only shrink.
KNOWN_VIOLATIONS: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    where: str  # path:line, for the failure message

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.imported}"


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def owning_module(dotted: str, root: Path = REPO) -> str:
    """The longest prefix of ``dotted`` that is a module or package under ``root``, so that
    `from app.executor import Executor` and `from app import executor` both name app.executor;
    ``dotted`` itself when nothing under ``root`` owns it (a third-party import)."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        base = root.joinpath(*parts[:end])
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts[:end])
    return dotted


def imports_in(path: Path, root: Path = REPO) -> Iterator[Import]:
    """Every import in the file at any depth, relative ones resolved, as first-party modules."""
    importer = module_name(path, root)
    # A package's relative imports start from the package itself, a module's from its parent.
    package = importer.split(".") if path.name == "__init__.py" else importer.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            names = [f"{module}.{alias.name}" if module else alias.name for alias in node.names]
        for name in names:
            yield Import(importer, owning_module(name, root), f"{path.relative_to(root)}:{node.lineno}")


@cache
def scanned_imports() -> tuple[Import, ...]:
    return tuple(
        found
        for top in SCANNED
        for path in sorted((REPO / top).rglob("*.py"))
        for found in imports_in(path)
    )


def within(module: str, *packages: str) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


Rule = Callable[[Import], bool]

RULES: dict[str, Rule] = {
    "graph never imports app": lambda i: within(i.importer, "graph") and within(i.imported, "app"),
    "tools and storage import neither app nor graph":
        lambda i: within(i.importer, "tools", "storage") and within(i.imported, "app", "graph"),
    "tools and storage do not import each other, but for the settings reader":
        lambda i: ((within(i.importer, "tools") and within(i.imported, "storage"))
                   or (within(i.importer, "storage") and within(i.imported, "tools")
                       and i.imported != SETTINGS_READER)),
    "the settings reader imports nothing first-party":
        lambda i: i.importer == SETTINGS_READER and within(i.imported, *SCANNED),
    "nothing outside tests imports tests": lambda i: within(i.imported, "tests"),
    "the HTTP layer never imports the dispatcher":
        lambda i: within(i.importer, "app.http") and within(i.imported, *DISPATCHER),
}


def violations(rule: Rule) -> dict[tuple[str, str], Import]:
    return {(i.importer, i.imported): i for i in scanned_imports() if rule(i)}


@pytest.mark.parametrize("rule_name", RULES)
def test_no_import_breaks_the_rule_beyond_the_known_violations(rule_name: str) -> None:
    new = [str(i) for pair, i in sorted(violations(RULES[rule_name]).items()) if pair not in KNOWN_VIOLATIONS]
    assert not new, f"{rule_name}:\n" + "\n".join(new)


def test_every_known_violation_still_exists() -> None:
    broken = {pair for rule in RULES.values() for pair in violations(rule)}
    stale = sorted(KNOWN_VIOLATIONS - broken)
    assert not stale, f"fixed, so remove from KNOWN_VIOLATIONS: {stale}"


def test_the_scan_sees_lazy_imports_inside_functions() -> None:
    # bench/load_harness/fake_model.py imports the fakes inside a function; a scan of module level
    # alone would miss it, and every rule would pass without looking.
    lazy = [i for i in scanned_imports()
            if i.importer == "bench.load_harness.fake_model" and i.imported == "devtools.fakes.ollama"]
    assert lazy


def test_relative_and_from_package_imports_resolve_to_the_module(tmp_path: Path) -> None:
    package = tmp_path / "app" / "http"
    package.mkdir(parents=True)
    (tmp_path / "app" / "__init__.py").write_text("")
    (tmp_path / "app" / "executor.py").write_text("")
    (package / "__init__.py").write_text("from .. import executor\n")
    (package / "tasks.py").write_text("from ..executor import Executor\nfrom app import executor\nimport httpx\n")

    found = {(i.importer, i.imported) for path in sorted(tmp_path.rglob("*.py")) for i in imports_in(path, tmp_path)}

    assert found == {
        ("app.http", "app.executor"),
        ("app.http.tasks", "app.executor"),
        ("app.http.tasks", "httpx"),
    }
