"""The one environment reader: typed values, blank as unset, errors that name the variable, and
the .env file under the shell's variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from tools.settings_reader import (
    Placement,
    SettingError,
    bool_setting,
    choice_setting,
    declared,
    float_setting,
    int_setting,
    load_dotenv,
    optional_int_setting,
    optional_str_setting,
    read_declared,
)

WHERE = Placement(section="Test", read_by="the test")


def test_unset_and_blank_variables_give_the_default() -> None:
    setting = int_setting("COUNT", 3, "How many.", low=0, high=10, **WHERE)
    assert setting.read({}) == 3
    assert setting.read({"COUNT": "   "}) == 3
    assert setting.read({"COUNT": " 7 "}) == 7


@pytest.mark.parametrize(("raw", "message"), [
    ("seven", "COUNT must be an integer, got 'seven'"),
    ("11", "COUNT must be between 0 and 10, got 11"),
    ("1.5", "COUNT must be an integer"),
])
def test_a_bad_integer_is_refused_naming_the_variable(raw: str, message: str) -> None:
    setting = int_setting("COUNT", 3, "How many.", low=0, high=10, **WHERE)
    with pytest.raises(SettingError, match=message):
        setting.read({"COUNT": raw})


def test_large_bounds_are_written_out_in_the_message() -> None:
    setting = int_setting("TTL", 60, "Seconds.", low=60, high=2 * 365 * 24 * 3600, **WHERE)
    with pytest.raises(SettingError, match="TTL must be between 60 and 63072000, got 1"):
        setting.read({"TTL": "1"})


@pytest.mark.parametrize("raw", ["0", "-2", "nan"])
def test_a_positive_number_refuses_zero_negatives_and_nan(raw: str) -> None:
    setting = float_setting("WAIT", 15.0, "Seconds.", positive=True, **WHERE)
    with pytest.raises(SettingError, match="WAIT must be positive"):
        setting.read({"WAIT": raw})


def test_nan_is_outside_every_range() -> None:
    setting = float_setting("WAIT", 15.0, "Seconds.", low=0.1, high=600, **WHERE)
    with pytest.raises(SettingError, match="WAIT must be between 0.1 and 600, got nan"):
        setting.read({"WAIT": "nan"})


def test_a_float_reads_decimals_and_refuses_words() -> None:
    setting = float_setting("WAIT", 15.0, "Seconds.", low=0.1, high=600, **WHERE)
    assert setting.read({"WAIT": "0.25"}) == 0.25
    with pytest.raises(SettingError, match="WAIT must be a number, got 'soon'"):
        setting.read({"WAIT": "soon"})


@pytest.mark.parametrize(("raw", "value"), [("1", True), ("YES", True), ("on", True), ("0", False),
                                            ("False", False), ("off", False)])
def test_a_switch_takes_the_usual_spellings(raw: str, value: bool) -> None:
    assert bool_setting("SWITCH", not value, "On or off.", **WHERE).read({"SWITCH": raw}) is value


def test_a_switch_refuses_anything_else_rather_than_reading_it_as_off() -> None:
    with pytest.raises(SettingError, match="SWITCH must be true or false, got 'maybe'"):
        bool_setting("SWITCH", True, "On or off.", **WHERE).read({"SWITCH": "maybe"})


def test_a_choice_is_compared_in_lower_case_and_lists_the_choices_when_refused() -> None:
    setting = choice_setting("MODE", "text", ("text", "json"), "Format.", **WHERE)
    assert setting.read({"MODE": " JSON "}) == "json"
    with pytest.raises(SettingError, match="MODE must be one of text, json, got 'xml'"):
        setting.read({"MODE": "xml"})


def test_optional_values_are_none_when_unset() -> None:
    assert optional_str_setting("KEY", "A key.", **WHERE).read({"KEY": ""}) is None
    assert optional_int_setting("CAP", "A cap.", **WHERE).read({}) is None
    assert optional_int_setting("CAP", "A cap.", **WHERE).read({"CAP": "200"}) == 200


def test_the_documented_default_is_the_value_as_a_dotenv_file_writes_it() -> None:
    assert float_setting("WAIT", 120.0, "Seconds.", **WHERE).documented_default == "`120`"
    assert bool_setting("SWITCH", True, "On.", **WHERE).documented_default == "`true`"
    assert optional_str_setting("KEY", "A key.", **WHERE).documented_default == "unset"
    assert optional_str_setting("KEY", "A key.", shown_default="none", **WHERE).documented_default == "none"


def test_dotenv_fills_in_what_the_shell_has_not_set(tmp_path: Path) -> None:
    dotenv = tmp_path / ".env"
    dotenv.write_text('# a comment\nexport PORT=9000\nHOST="0.0.0.0"\nLOG_LEVEL=debug\nnot a line\n',
                      encoding="utf-8")
    environ = {"LOG_LEVEL": "WARNING"}
    load_dotenv(dotenv, environ)
    assert environ == {"PORT": "9000", "HOST": "0.0.0.0", "LOG_LEVEL": "WARNING"}


def test_a_missing_dotenv_changes_nothing(tmp_path: Path) -> None:
    environ: dict[str, str] = {}
    load_dotenv(tmp_path / "absent.env", environ)
    assert environ == {}


RETRIES = int_setting("RETRIES", 2, "Retries.", low=0, high=5, **WHERE)
VERBOSE = bool_setting("VERBOSE", False, "Chatty.", **WHERE)


@dataclass(frozen=True)
class ExampleSettings:
    retries: int = declared(RETRIES)
    verbose: bool = declared(VERBOSE)
    name: str = "plain"


def test_a_declared_field_defaults_to_its_settings_default() -> None:
    assert ExampleSettings() == ExampleSettings(retries=2, verbose=False, name="plain")


def test_read_declared_reads_declared_fields_only_by_field_name() -> None:
    assert read_declared(ExampleSettings, {"RETRIES": "4", "VERBOSE": "yes", "NAME": "ignored"}) == {
        "retries": 4, "verbose": True}
