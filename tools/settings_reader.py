"""The one environment reader: each setting declared once (variable, type, default, what it
means, which settings object reads it) and parsed with errors that name the variable; plus the
`.env` file loader. docs/configuration.md is generated from these declarations
(app/configuration_docs.py), so the documentation cannot drift from what the code reads.

It lives in tools/ because every layer reads settings through it and tools/ is the bottom one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class Placement(TypedDict):
    """Where docs/configuration.md lists a setting, and the settings object that reads it; a
    module declaring several passes one of these as keyword arguments."""

    section: str
    read_by: str


class SettingError(ValueError):
    """A variable holds a value its setting cannot take; the message names the variable."""


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable. A blank value counts as unset and gives ``default``."""

    name: str
    default: T
    description: str
    # Where docs/configuration.md lists it, and the settings object that reads it.
    section: str
    read_by: str
    parse: Callable[[str, str], T]
    # The default as the documentation shows it, when the value itself says too little
    # (``None`` becomes "unset").
    shown_default: str | None = None

    def read(self, env: Mapping[str, str]) -> T:
        raw = env.get(self.name, "").strip()
        return self.default if not raw else self.parse(self.name, raw)

    @property
    def documented_default(self) -> str:
        if self.shown_default is not None:
            return self.shown_default
        if self.default is None:
            return "unset"
        return f"`{format_value(self.default)}`"


# The key under which a settings dataclass's field carries its Setting (dataclasses.Field.metadata).
_SETTING = "draftloop_setting"


def declared(setting: Setting[T]) -> T:
    """A settings dataclass field backed by ``setting``: its default is the setting's, and
    ``read_declared`` reads it. The declaration stays the one place the default is written."""
    result: T = field(default=setting.default, metadata={_SETTING: setting})
    return result


def read_declared(cls: type[Any], env: Mapping[str, str]) -> dict[str, Any]:
    """The value of each field of the dataclass ``cls`` made with ``declared``, by field name."""
    return {f.name: f.metadata[_SETTING].read(env) for f in fields(cls) if _SETTING in f.metadata}


def format_value(value: object) -> str:
    """A default as one would write it in a .env file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _number_in_range(name: str, value: float, low: float | None, high: float | None,
                     *, positive: bool) -> None:
    # Written so that NaN fails both checks: it compares false with everything.
    if positive and not value > 0:
        raise SettingError(f"{name} must be positive, got {value!r}")
    if low is not None and high is not None and not low <= value <= high:
        raise SettingError(f"{name} must be between {format_value(low)} and {format_value(high)}, "
                           f"got {format_value(value)}")


def _parse_int(name: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise SettingError(f"{name} must be an integer, got {raw!r}") from None


def int_setting(name: str, default: int, description: str, *, section: str, read_by: str,
                low: int | None = None, high: int | None = None, positive: bool = False,
                shown_default: str | None = None) -> Setting[int]:
    """An integer, in [low, high] when both are given, above 0 when ``positive``."""

    def parse(var: str, raw: str) -> int:
        value = _parse_int(var, raw)
        _number_in_range(var, value, low, high, positive=positive)
        return value

    return Setting(name, default, description, section, read_by, parse, shown_default)


def optional_int_setting(name: str, description: str, *, section: str, read_by: str,
                         shown_default: str | None = None) -> Setting[int | None]:
    """An integer that may be left unset (None)."""
    return Setting[int | None](name, None, description, section, read_by, _parse_int, shown_default)


def float_setting(name: str, default: float, description: str, *, section: str, read_by: str,
                  low: float | None = None, high: float | None = None, positive: bool = False,
                  shown_default: str | None = None) -> Setting[float]:
    """A number, in [low, high] when both are given, above 0 when ``positive``."""

    def parse(var: str, raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise SettingError(f"{var} must be a number, got {raw!r}") from None
        _number_in_range(var, value, low, high, positive=positive)
        return value

    return Setting(name, default, description, section, read_by, parse, shown_default)


def bool_setting(name: str, default: bool, description: str, *, section: str, read_by: str,
                 shown_default: str | None = None) -> Setting[bool]:
    """true/false (also 1/0, yes/no, on/off); anything else is an error, not a silent false."""

    def parse(var: str, raw: str) -> bool:
        lowered = raw.lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise SettingError(f"{var} must be true or false, got {raw!r}")

    return Setting(name, default, description, section, read_by, parse, shown_default)


def str_setting(name: str, default: str, description: str, *, section: str, read_by: str,
                shown_default: str | None = None) -> Setting[str]:
    return Setting(name, default, description, section, read_by, _keep, shown_default)


def optional_str_setting(name: str, description: str, *, section: str, read_by: str,
                         shown_default: str | None = None) -> Setting[str | None]:
    """A string that may be left unset (None): keys, URLs, model names."""
    return Setting(name, None, description, section, read_by, _keep_optional, shown_default)


def choice_setting(name: str, default: str, choices: tuple[str, ...], description: str, *, section: str,
                   read_by: str, shown_default: str | None = None) -> Setting[str]:
    """One of ``choices``, compared in lower case."""

    def parse(var: str, raw: str) -> str:
        value = raw.lower()
        if value not in choices:
            raise SettingError(f"{var} must be one of {', '.join(choices)}, got {value!r}")
        return value

    return Setting(name, default, description, section, read_by, parse, shown_default)


def _keep(_name: str, raw: str) -> str:
    return raw


def _keep_optional(_name: str, raw: str) -> str | None:
    return raw


def load_dotenv(path: Path = Path(".env"), environ: MutableMapping[str, str] | None = None) -> None:
    """KEY=VALUE lines into the environment; variables already set win, so the shell overrides."""
    target = os.environ if environ is None else environ
    if not path.is_file():
        return
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.removeprefix("export ").strip()
        target.setdefault(key, value.strip().strip('"').strip("'"))
