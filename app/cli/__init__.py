"""The `draftloop` command line: `run`, `serve`, `worker`, `create-user`, `create-api-key`, `eval` and `schedule`.

Each command lives in a module of its own in this package (run.py, serve.py, create_user.py,
create_api_key.py, eval.py), imported once it is chosen: `create-user` needs neither the graph nor the web stack,
and importing them costs seconds of start-up. So this module imports none of them at the top, and
they import their exit codes from here. `python -m app.cli` runs __main__.py.
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from storage.models import Role

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
# The module whose ``main(args)`` runs each command.
COMMAND_MODULES = {"run": "app.cli.run", "serve": "app.cli.serve", "worker": "app.cli.serve",
                   "create-user": "app.cli.create_user", "create-api-key": "app.cli.create_api_key",
                   "eval": "app.cli.eval", "schedule": "app.cli.schedule"}
EVAL_GROUPS = ("blog_post", "social_post", "email", "newsletter", "research_brief", "answer", "unsupported")


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
    run.add_argument("--attempt", type=int, metavar="N",
                     help="with --approve: ship attempt N when the approval offers more than one")
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
    key = commands.add_parser("create-api-key", help="create an API key for a user (printed once, on stdout)")
    key.add_argument("user", help="the name of the user the key acts as")
    key.add_argument("--name", default="api key", help="what the key is for, shown in listings (default: api key)")
    key.add_argument("--role", choices=[r.value for r in Role],
                     help="the key's role: the user's (default) or a lower one")
    key.add_argument("--expires", type=int, metavar="DAYS", help="days until the key stops working (default: never)")
    key.add_argument("--database-url", help="overrides DATABASE_URL")
    evaluate = commands.add_parser(
        "eval", help="run the frozen request set through the graph, judge it, and write a report",
        description="Writer: LLM_PROVIDER. Judge: EVAL_JUDGE_PROVIDER, EVAL_JUDGE_BASE_URL, EVAL_JUDGE_MODEL "
                    "(default: the writer's model, which the report then says in its first line).")
    evaluate.add_argument("--evals-dir", default="evals", help="the eval data directory (default: evals)")
    evaluate.add_argument("--requests", help="the request set (default: EVALS_DIR/requests.jsonl)")
    evaluate.add_argument("--out", help="where results go (default: EVALS_DIR/results)")
    evaluate.add_argument("--name", help="the results' file stem (default: DATE_PROVIDER-MODEL)")
    evaluate.add_argument("--limit", type=int, metavar="K", help="run only the first K requests")
    evaluate.add_argument("--only", action="append", choices=EVAL_GROUPS, metavar="TYPE",
                          help=f"run only this content type or kind (repeatable): {', '.join(EVAL_GROUPS)}")
    evaluate.add_argument("--id", action="append", metavar="ID", help="run only this request (repeatable)")
    evaluate.add_argument("--baseline", metavar="FILE",
                          help="an earlier results .jsonl: compare, and exit 3 on a regression beyond tolerance")
    evaluate.add_argument("--report", metavar="FILE",
                          help="write the report and chart of an existing results .jsonl instead of running")
    evaluate.add_argument("--request-timeout", type=float, default=1800.0, metavar="SECONDS",
                          help="give up on one request after this long (default 1800)")
    evaluate.add_argument("--label", help="a note printed at the top of the report (e.g. 'plumbing only')")
    add_schedule_parser(commands)
    args = parser.parse_args(argv)
    if args.command == "eval" and args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if args.command == "run":
        check_run_args(run, args)
    return args


def add_schedule_parser(commands: Any) -> None:
    schedule = commands.add_parser("schedule", help="scheduled runs: add, list or delete them")
    actions = schedule.add_subparsers(dest="action", required=True)
    add = actions.add_parser("add", help="run a request on a cron schedule")
    add.add_argument("cron", help="a cron expression: 5 fields, or 6 with seconds last, e.g. '0 9 * * 1'")
    add.add_argument("request", help="what to write each time")
    add.add_argument("--thread", help="run on this thread each time (default: a new thread each time)")
    add.add_argument("--timezone", help="IANA time zone the schedule is read in (default UTC)")
    add.add_argument("--end-time", help="ISO 8601 time after which it stops")
    add.add_argument("--keep-threads", action="store_true",
                     help="keep each run's new thread (default: delete it once its run ended)")
    listing = actions.add_parser("list", help="list the scheduled runs")
    remove = actions.add_parser("delete", help="delete a scheduled run (runs it queued stay)")
    remove.add_argument("cron_id")
    for action in (add, listing, remove):
        action.add_argument("--json", action="store_true", help="print JSON, one object a line")
        action.add_argument("--database-url", help="overrides DATABASE_URL")


def check_run_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Usage errors of `run`, each naming the flag the user typed."""
    decision = "--approve" if args.approve else "--reject" if args.reject is not None else None
    if decision and not args.thread:
        parser.error(f"{decision} needs --thread ID (the thread that waits for approval)")
    if decision and args.request is not None:
        parser.error(f"{decision} takes no request")
    if args.request is not None and not args.request.strip():
        parser.error("the request is empty: say what to write, or give only --thread ID to resume a thread")
    if not args.request and not args.thread:
        parser.error("give a request, or --thread ID to resume a thread")
    if args.attempt is not None and not args.approve:
        parser.error("--attempt goes with --approve")


def database_source(args: argparse.Namespace) -> str:
    """Where a command's database URL comes from, for its messages: the flag or the variable."""
    return "--database-url" if args.database_url else "DATABASE_URL"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    command = importlib.import_module(COMMAND_MODULES[args.command])
    return int(command.main(args))

