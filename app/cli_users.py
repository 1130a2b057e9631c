"""`draftloop create-user NAME`: a user who can log in to the API."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from sqlalchemy.exc import SQLAlchemyError

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from app.security import MIN_PASSWORD_LENGTH, hash_password
from app.settings import load_dotenv
from storage.engine import adatabase_url_from_env, create_engine, normalize_database_url, session_factory
from storage.migrate import upgrade_database
from storage.repositories import UserExists, UserRepository


def read_password(from_stdin: bool) -> str:
    """The new password: stdin's first line for scripts, else a hidden prompt asked twice."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    password = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != password:
        raise ValueError("the passwords differ")
    return password


async def create_user_command(args: argparse.Namespace, password: str) -> int:
    url = normalize_database_url(args.database_url) if args.database_url else await adatabase_url_from_env()
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
        return asyncio.run(create_user_command(args, password))
    except (ValueError, UserExists) as exc:
        sys.stderr.write(f"draftloop: {exc}\n")
        return EXIT_USAGE
    except SQLAlchemyError as exc:
        sys.stderr.write(f"draftloop: database error ({type(exc).__name__}): check DATABASE_URL\n")
        return EXIT_FAILED
