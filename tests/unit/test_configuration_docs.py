"""docs/configuration.md is generated from the settings' declarations (app/configuration_docs.py);
the committed page must be what the generator writes today."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.configuration_docs import declared_settings, render
from tools.settings_reader import str_setting

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_configuration_page_is_the_generated_one() -> None:
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/configuration.md is stale: run `make docs` and commit it"


def test_every_variable_is_declared_once() -> None:
    names = [setting.name for setting in declared_settings()]
    assert sorted(name for name in set(names) if names.count(name) > 1) == []


def test_each_declaration_gives_one_table_row_with_its_default_and_reader() -> None:
    page = render()
    assert "| `QUALITY_THRESHOLD` | `70` | Score from 0 to 100" in page
    assert "| `DATABASE_URL` | unset (SQLite file) |" in page
    assert page.rstrip().endswith("[testing.md](testing.md#postgres).")


def test_a_setting_in_a_section_the_page_lacks_is_refused() -> None:
    stray = str_setting("STRAY", "x", "Nowhere.", section="Elsewhere", read_by="Nobody")
    with pytest.raises(ValueError, match="Elsewhere"):
        render((*declared_settings(), stray))
