"""`draftloop create-api-key USER`: a long-lived key for programs (SDK clients, chat UIs).

The key goes to stdout alone, once, so that a script can capture it
(``KEY=$(draftloop create-api-key alice)``); what was made goes to stderr. The creation is
written to the audit trail in the same transaction, as the HTTP route's would be.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from app.api_keys import MAX_EXPIRES_DAYS, MAX_NAME_LENGTH, issue_key, key_role
from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, database_source
from storage.audit import AuditRecord, AuditRepository
from storage.engine import create_engine, database_url_from_env, normalize_database_url, session_factory
from storage.migrate import upgrade_database
from storage.models import Role, utcnow
from storage.users import UserRepository
from tools.settings_reader import load_dotenv


def check_args(args: argparse.Namespace) -> None:
    name = args.name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise ValueError(f"--name must be 1 to {MAX_NAME_LENGTH} characters")
    args.name = name
    if args.expires is not None and not 1 <= args.expires <= MAX_EXPIRES_DAYS:
        raise ValueError(f"--expires must be a number of days from 1 to {MAX_EXPIRES_DAYS}")


async def create_api_key_command(args: argparse.Namespace, url: str) -> int:
    """``url``: the database, as --database-url or storage.engine.database_url_from_env gave it."""
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            user = await UserRepository(session).by_name(args.user)
            if user is None:
                raise ValueError(f"no user named {args.user!r} (create one with `draftloop create-user`)")
            role = key_role(args.role, Role(user.role), user.name)
            row, key = await issue_key(session, user, name=args.name, role=role, expires_days=args.expires)
            # As the HTTP route's summary reads; never the key.
            expires_at = row.expires_at.isoformat() if row.expires_at else None
            summary = {"after": {"name": row.name, "role": row.role, "prefix": row.prefix, "user": user.name,
                                 "expires_at": expires_at, "revoked_at": None}, "via": "cli"}
            await AuditRepository(session).add_many([AuditRecord(
                occurred_at=utcnow(), action="api_key.create", resource="api_key", resource_id=row.id,
                method="CLI", path="draftloop create-api-key", status=201, summary=summary)])
    finally:
        await engine.dispose()
    expiry = f"expires {row.expires_at:%Y-%m-%d %H:%M} UTC" if row.expires_at else "does not expire"
    sys.stderr.write(f"created {role.value} API key {row.prefix} ({row.name!r}) for {user.name!r}, id {row.id}; "
                     f"it {expiry}. It is shown once; send it as X-Api-Key:\n")
    sys.stdout.write(key + "\n")
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    load_dotenv()
    try:
        check_args(args)
        url = (normalize_database_url(args.database_url, "--database-url") if args.database_url
               else database_url_from_env(os.environ))
        return asyncio.run(create_api_key_command(args, url))
    except ValueError as exc:  # KeyRoleTooHigh too
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("draftloop: interrupted; no key was created\n")
        return 130
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check {database_source(args)}\n")
        return EXIT_FAILED

