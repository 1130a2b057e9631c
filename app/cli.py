"""The `draftloop` command line: `run`, `serve`, `worker` and `create-user`.

Each command lives in a module of its own, imported once it is chosen: `create-user` needs
neither the graph nor the web stack, and importing them costs seconds of start-up.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from storage.models import Role

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The module whose ``main(args)`` runs each command.
COMMAND_MODULES = {"run": "app.cli_run", "serve": "app.cli_serve", "worker": "app.cli_serve",
                   "create-user": "app.cli_users"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="draftloop", description="Draftloop content pipeline")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one request through the content graph")
    run.add_argument("request", nargs="?", help="what to write or ask; omit with --thread to resume")
    run.add_argument("--thread", help="thread id: a new id starts a run on it, an existing one continues it")
    run.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    decision = run.add_mutually_exclusive_group()
    decision.add_argument("--approve", action="store_true", help="approve the draft the thread waits on")
    decision.add_argument("--reject", metavar="FEEDBACK", help="reject the draft with feedback; it is drafted again")
    run.add_argument("--require-approval", action="store_true", help="pause for a human before finalising")
    run.add_argument("--database-url", help="overrides DATABASE_URL")
    serve = commands.add_parser("serve", help="serve the HTTP API (task API, SSE, health, metrics)")
    serve.add_argument("--host", help="overrides HOST (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="overrides PORT (default 8000)")
    serve.add_argument("--workers", type=int, metavar="N",
                       help="overrides WORKERS: run graphs in N worker processes this server starts and "
                            "supervises, and only serve HTTP here (default 0: all in this process)")
    serve.add_argument("--role", choices=["all", "api"],
                       help="overrides DRAFTLOOP_ROLE: api serves HTTP only and leaves graph runs to "
                            "`draftloop worker` processes started separately on the same database")
    commands.add_parser("worker", help="run queued tasks without serving HTTP (beside a `serve --role api`)")
    user = commands.add_parser("create-user", help="create a user who can log in to the API")
    user.add_argument("name", help="the user name to log in with")
    user.add_argument("--role", choices=[r.value for r in Role], default=Role.VIEWER.value,
                      help="admin: everything; editor: tasks, approvals, runs and threads; viewer: read only")
    user.add_argument("--password-stdin", action="store_true",
                      help="read the password from the first line of stdin instead of prompting")
    user.add_argument("--database-url", help="overrides DATABASE_URL")
    args = parser.parse_args(argv)
    if args.command == "run" and not args.request and not args.thread:
        parser.error("give a request, or --thread ID to resume a thread")
    # Only `run` has these options: `serve` must not trip over them.
    deciding = args.command == "run" and (args.approve or args.reject is not None)
    if deciding and not args.thread:
        parser.error("--approve/--reject need --thread ID")
    if deciding and args.request:
        parser.error("--approve/--reject take no request")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = importlib.import_module(COMMAND_MODULES[args.command])
    return int(command.main(args))


if __name__ == "__main__":
    sys.exit(main())
