""".env.example against the README's configuration tables: the same variables with the same
defaults, so that a copied .env.example configures what the README says it does.

Rules: a variable whose README default is a value (in backticks) is set to that value in
.env.example; one whose default is "unset", "none" or another variable's is there commented out
(unset); every variable .env.example names is in a README table, apart from EXCEPTIONS.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Named in .env.example but, as its comments say, not Draftloop's configuration: the README
# describes these under Testing (the suite's own) and LangGraph Studio (`langgraph dev`'s).
EXCEPTIONS = frozenset({"REQUIRE_POSTGRES", "TEST_POSTGRES_URL",
                        "LANGSMITH_TRACING", "LANGGRAPH_CLI_NO_ANALYTICS", "LANGGRAPH_NO_VERSION_CHECK"})
_ROW = re.compile(r"^\| (`[A-Z][A-Z0-9_]*`(?:, `[A-Z][A-Z0-9_]*`)*) \| ([^|]*) \|")
_ASSIGNMENT = re.compile(r"^(#\s*)?([A-Z][A-Z0-9_]*)=(.*)$")
_UNSET = object()


def readme_defaults() -> dict[str, object]:
    """Each variable of the README's Configuration tables and its default: the value in
    backticks, or _UNSET when the default is described in words (unset, none, the writer's)."""
    section = (ROOT / "README.md").read_text(encoding="utf-8").split("\n## Configuration\n", 1)[1]
    section = section.split("\n## ", 1)[0]
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


def test_the_readme_tables_are_found() -> None:
    defaults = readme_defaults()
    assert len(defaults) > 60
    assert defaults["LLM_PROVIDER"] == "auto" and defaults["OPENAI_MODEL"] is _UNSET
    assert defaults["LOGIN_MAX_FAILURES"] == "5" and defaults["LOGIN_WINDOW_SECONDS"] == "60"


def test_every_readme_variable_is_in_env_example_with_the_readme_default() -> None:
    readme, example = readme_defaults(), env_example()
    problems = [f"{name}: README {shown(default)}, .env.example "
                f"{shown(example[name]) if name in example else 'missing'}"
                for name, default in readme.items() if name not in example or example[name] != default]
    assert not problems, "\n".join(problems)


def test_every_env_example_variable_is_in_a_readme_table() -> None:
    readme = readme_defaults()
    extra = sorted(name for name in env_example() if name not in readme and name not in EXCEPTIONS)
    assert not extra, f"in .env.example but in no README configuration table: {extra}"


def test_env_example_says_that_draftloop_reads_dotenv_by_itself() -> None:
    header = (ROOT / ".env.example").read_text(encoding="utf-8").split("\n\n", 1)[0]
    assert "reads ./.env" in header and "langgraph dev" in header
