"""`draftloop schedule add|list|delete` as a user runs it, on SQLite and Postgres: the rows it
writes are the API's crons (the scheduler's tick queues their runs), and a bad schedule or an
unknown id exits 2 saying what is wrong."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from app.cli import EXIT_USAGE, parse_args
from app.cli.schedule import UsageError, schedule_command
from storage.engine import create_engine
from storage.models import Cron

DRAFTLOOP = Path(sys.executable).with_name("draftloop")
TIMEOUT = 60.0


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


async def schedule(database_url: str, *args: str) -> Result:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    process = await asyncio.create_subprocess_exec(
        str(DRAFTLOOP), "schedule", *args, "--database-url", database_url, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), TIMEOUT)
    assert process.returncode is not None
    return Result(process.returncode, stdout.decode(), stderr.decode())


async def stored(database_url: str) -> list[Any]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            return list((await connection.execute(select(Cron))).all())
    finally:
        await engine.dispose()


async def in_process(database_url: str, capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    """The command in this process (its start-up, seconds of imports, is the subprocess test's):
    what it prints and its exit code, or the usage error it raises."""
    # argparse reads the terminal's size: off the event loop.
    parsed = await asyncio.to_thread(parse_args, ["schedule", *args, "--database-url", database_url])
    try:
        code = await schedule_command(parsed, database_url)
    except UsageError as exc:
        code, message = EXIT_USAGE, str(exc)
    else:
        message = ""
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err + message)


async def test_add_list_and_delete_a_scheduled_run(database_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    added = await in_process(database_url, capsys, "add", "0 9 * * 1", "A weekly post about green tea",
                             "--timezone", "Europe/Paris", "--json")
    assert added.returncode == 0, added.stderr
    cron = json.loads(added.stdout)
    assert cron["schedule"] == "0 9 * * 1" and cron["timezone"] == "Europe/Paris" and cron["thread_id"] is None
    assert cron["payload"]["input"]["messages"][0]["content"] == "A weekly post about green tea"
    next_run = datetime.fromisoformat(cron["next_run_date"])
    assert next_run.weekday() == 0 and datetime.now(UTC) < next_run < datetime.now(UTC) + timedelta(days=8)

    listed = await in_process(database_url, capsys, "list")
    assert listed.returncode == 0 and listed.stdout.startswith(cron["cron_id"]), listed
    assert "'0 9 * * 1' (Europe/Paris) on a new thread each time" in listed.stdout
    [row] = await stored(database_url)
    assert row.run["assistant_id"] == cron["assistant_id"] and row.run["input"] == cron["payload"]["input"]

    deleted = await in_process(database_url, capsys, "delete", cron["cron_id"])
    assert deleted.returncode == 0 and deleted.stdout == f"deleted {cron['cron_id']}\n"
    assert await stored(database_url) == []


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_a_missing_thread_or_an_unknown_id_is_a_usage_error_saying_so(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    missing_thread = await in_process(database_url, capsys, "add", "0 9 * * *", "a post", "--thread", "nowhere")
    unknown = await in_process(database_url, capsys, "delete", "no-such-cron")

    assert (missing_thread.returncode, unknown.returncode) == (2, 2)
    assert "no thread nowhere" in missing_thread.stderr
    assert "no scheduled run no-such-cron" in unknown.stderr


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_draftloop_schedule_add_with_a_bad_schedule_exits_2_naming_it_and_stores_nothing(
    database_url: str
) -> None:
    bad = await schedule(database_url, "add", "every day", "a post")

    assert bad.returncode == 2, bad
    assert bad.stderr == ("draftloop: schedule: 'every day' is not a cron expression: five fields (minute hour day "
                          "month weekday), or six with seconds last, e.g. '*/5 * * * *'\n")
    assert await stored(database_url) == []
