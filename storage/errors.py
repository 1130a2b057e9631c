"""Which failures mean the database is out of reach, as opposed to a statement it refused or
a failure that has nothing to do with it.

A run that loses its database is not failed: its lease lapses and a worker resumes it from the
checkpoint once storage answers again (app/engine/driver.py). So this test must be precise. It goes
by the drivers' own error types, and accepts a bare OSError (a refused connect, a reset) only
when a database driver raised it: model and HTTP clients time out and lose connections too, and
a run resumed for one of those would be resumed without end.
"""

from __future__ import annotations

import sqlite3
import traceback

import asyncpg
import psycopg
from sqlalchemy import exc as sa_exc

# What the drivers raise when the server is gone, restarting, refusing connections or out of
# them, or the connection broke; SQLAlchemy's own pool timeout and disconnect; SQLite's busy or
# unopenable file. Not DataError, IntegrityError or ProgrammingError: those are statements the
# database refused, and refusing them again on resume helps nobody.
UNREACHABLE_ERRORS: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.TimeoutError,
    sa_exc.DisconnectionError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
    asyncpg.exceptions.InsufficientResourcesError,
    psycopg.OperationalError,
    sqlite3.OperationalError,
)
# Packages whose frames in a traceback mean an OSError came from talking to the database.
DRIVER_PACKAGES = ("asyncpg", "psycopg", "psycopg_pool", "sqlalchemy", "aiosqlite", "sqlite3")


def storage_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it was raised from) says the database could not be reached."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sa_exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, UNREACHABLE_ERRORS):
            return True
        if isinstance(current, OSError) and raised_by_driver(current):
            return True
        current = current.__cause__
    return False


def raised_by_driver(exc: BaseException) -> bool:
    """Whether a database driver is on the path from where ``exc`` was caught to where it was
    raised (SQLAlchemy lets a refused connect's ConnectionRefusedError through unwrapped)."""
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        module = str(frame.f_globals.get("__name__", ""))
        if module.partition(".")[0] in DRIVER_PACKAGES:
            return True
    return False
