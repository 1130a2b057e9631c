"""devtools/test_tiers.py: every test directory runs in some group."""

from __future__ import annotations

from pathlib import Path

from devtools.test_tiers import GROUPS, NO_TESTS_COLLECTED, directories_with_tests, passed, uncovered


def test_every_test_directory_of_the_repository_belongs_to_a_group() -> None:
    directories = directories_with_tests()
    assert {"tests/unit", "tests/integration", "tests/e2e", "tests/faults"} <= directories
    assert uncovered(directories) == set()


def test_a_new_test_directory_outside_every_group_is_reported(tmp_path: Path) -> None:
    for directory in ("unit", "soak/nightly"):
        (tmp_path / "tests" / directory).mkdir(parents=True)
        (tmp_path / "tests" / directory / "test_x.py").write_text("")
    directories = directories_with_tests(tmp_path / "tests")
    assert directories == {"tests/unit", "tests/soak/nightly"}
    assert uncovered(directories, GROUPS) == {"tests/soak/nightly"}
    assert uncovered(directories, {**GROUPS, "soak": ("tests/soak",)}) == set()


def test_a_group_that_collected_nothing_passes_only_under_a_selection() -> None:
    assert passed(0, selected=False) and passed(0, selected=True)
    assert passed(NO_TESTS_COLLECTED, selected=True)
    assert not passed(NO_TESTS_COLLECTED, selected=False)
    assert not passed(1, selected=True)
