""".env.example against docs/configuration.md's tables: the same variables with the same
defaults, so that a copied .env.example configures what the documentation says it does.

Rules: a variable whose documented default is a value (in backticks) is set to that value in
.env.example; one whose default is "unset", "none" or another variable's is there commented out
(unset); every variable .env.example names is in a configuration table, apart from EXCEPTIONS.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Named in .env.example but, as its comments say, not Draftloop's configuration: docs/testing.md
# describes the suite's own, docs/langgraph-api.md `langgraph dev`'s.
EXCEPTIONS = frozenset({"REQUIRE_POSTGRES", "TEST_POSTGRES_URL",
                        "LANGSMITH_TRACING", "LANGGRAPH_CLI_NO_ANALYTICS", "LANGGRAPH_NO_VERSION_CHECK"})
_ROW = re.compile(r"^\| (`[A-Z][A-Z0-9_]*`(?:, `[A-Z][A-Z0-9_]*`)*) \| ([^|]*) \|")
_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
_UNSET = object()


def documented_defaults() -> dict[str, object]:
    """Each variable of docs/configuration.md's tables and its default: the value in
    backticks, or _UNSET when the default is described in words (unset, none, the writer's)."""
    section = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    defaults: dict[str, object] = {}
    for line in section.splitlines():
        match = _ROW.match(line)
        if not match:
            continue
        names = re.findall(r"`([A-Z][A-Z0-9_]*)`", match.group(1))
        # "`5`, `60`" gives one value per name; "`0` (`make run`: `1`)" gives the first.
        values = re.findall(r"`([^`]*)`", match.group(2)) if match.group(2).startswith("`") else []
        for index, name in enumerate(names):
            if len(names) > 1 and len(values) == len(names):
                defaults[name] = values[index]
            else:
                defaults[name] = values[0] if values else _UNSET
    return defaults


def env_example() -> dict[str, object]:
    """Each variable .env.example names: its value, or _UNSET when the line is commented out."""
    found: dict[str, object] = {}
    for line in (ROOT / ".env.example").read_text(encoding="utf-8").splitlines():
        match = _ASSIGNMENT.match(line.strip())
        if match:
            commented, name, value = match.groups()
            found[name] = _UNSET if commented else value.split(" #", 1)[0].strip()
    return found


def shown(value: object) -> str:
    return "unset" if value is _UNSET else repr(value)


def test_the_configuration_tables_are_found() -> None:
    defaults = documented_defaults()
    assert len(defaults) > 60
    assert defaults["LLM_PROVIDER"] == "auto" and defaults["OPENAI_MODEL"] is _UNSET
    assert defaults["LOGIN_MAX_FAILURES"] == "5" and defaults["LOGIN_WINDOW_SECONDS"] == "60"


def test_every_documented_variable_is_in_env_example_with_the_documented_default() -> None:
    documented, example = documented_defaults(), env_example()
    problems = [f"{name}: docs/configuration.md {shown(default)}, .env.example "
                f"{shown(example[name]) if name in example else 'missing'}"
                for name, default in documented.items() if name not in example or example[name] != default]
    assert not problems, "\n".join(problems)


def test_every_env_example_variable_is_in_a_configuration_table() -> None:
    documented = documented_defaults()
    extra = sorted(name for name in env_example() if name not in documented and name not in EXCEPTIONS)
    assert not extra, f"in .env.example but in no docs/configuration.md table: {extra}"


def test_env_example_says_that_draftloop_reads_dotenv_by_itself() -> None:
    header = (ROOT / ".env.example").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "reads ./.env" in header and "langgraph dev" in header
