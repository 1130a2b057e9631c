"""`draftloop create-user NAME`: a user who can log in to the API."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from sqlalchemy.exc import SQLAlchemyError

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, database_source
from app.security import MIN_PASSWORD_LENGTH, hash_password
from storage.engine import create_engine, database_url_from_env, normalize_database_url, session_factory
from storage.migrate import upgrade_database
from storage.users import UserExists, UserRepository
from tools.settings_reader import load_dotenv

NO_TERMINAL = ("there is no terminal to ask for the password on: pass it on stdin with --password-stdin, "
               "e.g. printf '%s\\n' \"$PASSWORD\" | draftloop create-user NAME --password-stdin")


def read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line for scripts, else a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    # getpass would fall back to reading stdin with a warning, then fail on its end.
    if not sys.stdin.isatty():
        raise ValueError(NO_TERMINAL)
    try:
        password = getpass.getpass("Password: ")
        repeated = getpass.getpass("Repeat password: ")
    except EOFError:
        raise ValueError("no password given") from None
    if repeated != password:
        raise ValueError("the passwords differ")
    return password


async def create_user_command(args: argparse.Namespace, password: str, url: str) -> int:
    """``url``: the database, as --database-url or storage.engine.database_url_from_env gave it."""
    await upgrade_database(url)
    engine = create_engine(url)
    try:
        async with session_factory(engine).begin() as session:
            await UserRepository(session).create(args.name, await hash_password(password), args.role)
    finally:
        await engine.dispose()
    sys.stdout.write(f"created {args.role} {args.name!r}; log in with POST /api/auth/token\n")
    return EXIT_OK




def main(args: argparse.Namespace) -> int:
    load_dotenv()
    try:
        password = read_password(args.password_stdin)
        if len(password) < MIN_PASSWORD_LENGTH:
            raise ValueError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
        url = (normalize_database_url(args.database_url, "--database-url") if args.database_url
               else database_url_from_env(os.environ))
        return asyncio.run(create_user_command(args, password, url))
    except (ValueError, UserExists) as exc:
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("draftloop: interrupted; no user was created\n")
        return 130
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check {database_source(args)}\n")
        return EXIT_FAILED
