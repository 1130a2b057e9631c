"""Tiny environment readers for the clients' from_env constructors, with errors that name the variable."""

from __future__ import annotations

import os


def env_str(name: str) -> str | None:
    """The variable's value, or None when it is unset or blank (a blank key is no key)."""
    value = os.environ.get(name, "").strip()
    return value or None


def env_float(name: str, default: float) -> float:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not value > 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value


def env_int(name: str, default: int) -> int:
    raw = env_str(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value
