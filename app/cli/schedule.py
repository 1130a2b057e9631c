"""`draftloop schedule add|list|delete`: scheduled runs (crons) on the service's database.

The same rows as the API's /runs/crons (app/http/crons.py makes them from the same checked
request), so a `draftloop serve` or `draftloop worker` on that database queues their runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from litestar.exceptions import HTTPException
from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, database_source
from app.engine.api_runs import ASSISTANT_ID
from app.http.cron_schemas import CronCreate, ThreadCronCreate
from app.http.crons import cron_columns, cron_dict
from storage.crons import CronRepository
from storage.engine import create_engine, database_url_from_env, normalize_database_url, session_factory
from storage.migrate import upgrade_database
from storage.threads import ThreadRepository
from tools.settings_reader import load_dotenv


class UsageError(ValueError):
    """A request the command refuses; the message says why."""


def _request(args: argparse.Namespace) -> ThreadCronCreate:
    fields: dict[str, Any] = {"assistant_id": ASSISTANT_ID, "schedule": args.cron,
                              "input": {"messages": [{"role": "human", "content": args.request}]}}
    if args.timezone:
        fields["timezone"] = args.timezone
    if args.end_time:
        fields["end_time"] = args.end_time
    if args.thread is None:
        fields["on_run_completed"] = "keep" if args.keep_threads else "delete"
    try:
        return (ThreadCronCreate if args.thread else CronCreate).model_validate(fields)
    except ValidationError as exc:
        raise UsageError(exc.errors()[0]["msg"]) from exc


def _line(cron: dict[str, Any]) -> str:
    where = f"thread {cron['thread_id']}" if cron["thread_id"] else "a new thread each time"
    zone = f" ({cron['timezone']})" if cron["timezone"] else ""
    request = cron["payload"].get("input", {}).get("messages", [{}])[0].get("content", "")
    return (f"{cron['cron_id']}  {cron['schedule']!r}{zone} on {where}; next {cron['next_run_date'] or 'never'}"
            f"{'' if cron['enabled'] else ' (disabled)'}: {request}")


async def schedule_command(args: argparse.Namespace, url: str) -> int:
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            crons = CronRepository(session)
            if args.action == "add":
                if args.thread and await ThreadRepository(session).get(args.thread) is None:
                    raise UsageError(f"no thread {args.thread}")
                try:
                    columns = await cron_columns(_request(args), args.thread, None, set())
                except HTTPException as exc:
                    raise UsageError(exc.detail) from exc
                shown = [cron_dict(await crons.create(**columns))]
            elif args.action == "list":
                shown = [cron_dict(cron) for cron in await crons.search(limit=1000, sort_by="created_at")]
            else:
                if not await crons.delete(args.cron_id):
                    raise UsageError(f"no scheduled run {args.cron_id}")
                sys.stdout.write(f"deleted {args.cron_id}\n")
                return EXIT_OK
    finally:
        await engine.dispose()
    for cron in shown:
        sys.stdout.write((json.dumps(cron) if args.json else _line(cron)) + "\n")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    load_dotenv()
    try:
        url = (normalize_database_url(args.database_url, "--database-url") if args.database_url
               else database_url_from_env(os.environ))
        return asyncio.run(schedule_command(args, url))
    except ValueError as exc:
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check {database_source(args)}\n")
        return EXIT_FAILED
