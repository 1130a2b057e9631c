"""`draftloop eval`: run the frozen request set through the graph, judge it, write the report.

The writer is whatever LLM_PROVIDER says. The judge is EVAL_JUDGE_PROVIDER / EVAL_JUDGE_BASE_URL /
EVAL_JUDGE_MODEL at temperature 0; without them it is the writer's model, and the report's
first line says so. Research is replayed from evals/fixtures over loopback, so runs are
reproducible offline.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TextIO

import httpx
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.store.memory import InMemoryStore

from app.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from app.evaluation.dataset import DatasetError, EvalRequest, Fixture, load_fixture, load_images, load_requests
from app.evaluation.judge import Judge
from app.evaluation.metrics import compare
from app.evaluation.replay import ReplayServer
from app.evaluation.report import load_records, render_chart, render_report
from app.evaluation.runner import EvalEnvironment, evaluate_request
from graph.builder import build_graph
from graph.configuration import GraphSettings
from tools.llm.errors import ModelProviderError
from tools.llm.provider import ModelProvider, ProviderInfo
from tools.llm.settings import EVAL_JUDGE, LLMSettings, role_settings
from tools.settings_reader import load_dotenv

EXIT_REGRESSION = 3


@dataclass(frozen=True)
class EvalInputs:
    requests: list[EvalRequest]
    fixtures: dict[str, Fixture]
    photos: list[dict[str, Any]]
    requests_file: Path
    requests_sha256: str
    baseline: list[dict[str, Any]] | None
    commit: str


@dataclass(frozen=True)
class EvalSettings:
    """What `draftloop eval` runs with, read at its start: the graph's settings, the writer's
    model and the judge's."""

    graph: GraphSettings
    writer: LLMSettings
    judge: LLMSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EvalSettings:
        writer = LLMSettings.from_env(env)
        return cls(graph=GraphSettings.from_env(env), writer=writer, judge=judge_settings(env, writer))


def judge_settings(env: Mapping[str, str], writer: LLMSettings) -> LLMSettings:
    """EVAL_JUDGE_* on top of the writer's settings; without them, the writer's model. Always at
    temperature 0."""
    return role_settings(env, writer, EVAL_JUDGE) or writer.with_overrides(temperature=0.0)


def _git_commit() -> str:
    try:
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                              check=False)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return done.stdout.strip() or "unknown"


def load_inputs(args: argparse.Namespace) -> EvalInputs:
    """Everything from disk, read before the event loop starts."""
    evals_dir = Path(args.evals_dir)
    requests_file = Path(args.requests) if args.requests else evals_dir / "requests.jsonl"
    requests = load_requests(requests_file)
    if args.id:
        wanted = set(args.id)
        unknown = wanted - {r.id for r in requests}
        if unknown:
            raise DatasetError(f"--id names requests that are not in {requests_file}: {', '.join(sorted(unknown))}")
        requests = [r for r in requests if r.id in wanted]
    if args.only:
        requests = [r for r in requests if r.group in args.only]
    if args.limit:
        requests = requests[: args.limit]
    if not requests:
        raise DatasetError("no request is left to run after --only/--id/--limit")
    names = {r.fixture for r in requests if r.fixture}
    fixtures = {name: load_fixture(evals_dir / "fixtures" / "search", name) for name in names}
    baseline = load_records(Path(args.baseline)) if args.baseline else None
    return EvalInputs(
        requests=requests,
        fixtures=fixtures,
        photos=load_images(evals_dir / "fixtures" / "images.json"),
        requests_file=requests_file,
        requests_sha256=hashlib.sha256(requests_file.read_bytes()).hexdigest(),
        baseline=baseline,
        commit=_git_commit(),
    )


def result_stem(day: date, info: ProviderInfo) -> str:
    model = re.sub(r"[^a-z0-9.]+", "-", f"{info.provider}-{info.model}".lower()).strip("-")
    return f"{day.isoformat()}_{model}"


class EvalProgress:
    """A bar redrawn in place on a terminal; one line per request otherwise (logs, CI)."""

    def __init__(self, out: TextIO, total: int) -> None:
        self.out = out
        self.total = total
        self.done = 0
        self.started = time.monotonic()
        self.tty = out.isatty()

    def starting(self, request: EvalRequest) -> None:
        if self.tty:
            self._bar(f"running {request.id}")

    def finished(self, record: dict[str, Any]) -> None:
        self.done += 1
        shipped = record.get("shipped") or {}
        if record.get("error"):
            outcome = f"error: {record['error'][:80]}"
        elif shipped:
            verdict = "passed" if shipped.get("passed") else "did not pass"
            outcome = (f"{(record.get('checks') or {}).get('words')} words, score {shipped.get('score')}, "
                       f"{verdict} after {len(record.get('attempts') or [])} attempt(s)")
        else:
            outcome = f"routed {(record.get('routed') or {}).get('kind')}"
        line = f"[{self.done}/{self.total}] {record['id']}: {outcome} ({record.get('seconds')} s)"
        if self.tty:
            self.out.write("\r\033[K" + line + "\n")
            self._bar("")
        else:
            self.out.write(line + "\n")
        self.out.flush()

    def _bar(self, label: str) -> None:
        width = 30
        filled = round(width * self.done / self.total) if self.total else width
        elapsed = time.monotonic() - self.started
        self.out.write(f"\r\033[K[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                       f"{elapsed:.0f}s {label}")
        self.out.flush()


async def _append(path: Path, record: dict[str, Any]) -> None:
    def write() -> None:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")

    await asyncio.to_thread(write)


async def run_eval(args: argparse.Namespace, inputs: EvalInputs, out: TextIO, err: TextIO,
                   eval_settings: EvalSettings) -> int:
    settings = eval_settings.graph
    today = datetime.now(UTC).date()
    async with (ModelProvider(eval_settings.writer) as writer,
                ModelProvider(eval_settings.judge) as judge_models,
                httpx.AsyncClient() as http,
                ReplayServer(inputs.fixtures, inputs.photos) as replay):
        writer_info = await writer.describe()
        judge_info = await judge_models.describe()
        # Fail before forty requests do, with the provider's own advice.
        await writer.chat_model()
        await judge_models.chat_model()
        stem = args.name or result_stem(today, writer_info)
        out_dir = Path(args.out) if args.out else Path(args.evals_dir) / "results"
        await asyncio.to_thread(out_dir.mkdir, parents=True, exist_ok=True)
        jsonl = out_dir / f"{stem}.jsonl"
        await asyncio.to_thread(jsonl.write_text, "", "utf-8")
        header = {
            "type": "run", "date": today.isoformat(), "started_at": datetime.now(UTC).isoformat(),
            "writer": {"provider": writer_info.provider, "model": writer_info.model},
            "judge": {"provider": judge_info.provider, "model": judge_info.model},
            "judge_is_writer": (judge_info.provider, judge_info.model) == (writer_info.provider, writer_info.model),
            "requests_file": str(inputs.requests_file), "requests_sha256": inputs.requests_sha256,
            "commit": inputs.commit, "quality_threshold": settings.quality_threshold,
            "max_revisions": settings.max_revisions, "limit": args.limit, "only": args.only, "ids": args.id,
            "label": args.label, "load": round(os.getloadavg()[0], 2),
        }
        await _append(jsonl, header)
        # A fresh store per run: the set's requests run in order as one user, so a later piece on a
        # topic an earlier one covered is prompted for another angle, as in the service.
        env = EvalEnvironment(graph=build_graph(InMemorySaver(), InMemoryStore()), writer=writer, settings=settings, http=http,
                              replay=replay, judge=Judge(judge_models, settings, today),
                              request_timeout=args.request_timeout)
        progress = EvalProgress(err, len(inputs.requests))
        began = time.perf_counter()
        for request in inputs.requests:
            progress.starting(request)
            record = await evaluate_request(env, request)
            await _append(jsonl, record)
            progress.finished(record)
        judge_usage = env.judge.usage
        await _append(jsonl, {
            "type": "end", "finished_at": datetime.now(UTC).isoformat(),
            "seconds": round(time.perf_counter() - began, 1), "judge_unusable": env.judge.unusable,
            "judge_tokens": {"input": sum(u.get("input_tokens", 0) for u in judge_usage),
                             "output": sum(u.get("output_tokens", 0) for u in judge_usage),
                             "calls": len(judge_usage)},
        })
    return await write_report(jsonl, inputs.baseline, args.baseline or "", out)


async def write_report(jsonl: Path, baseline: list[dict[str, Any]] | None, baseline_name: str, out: TextIO) -> int:
    records = await asyncio.to_thread(load_records, jsonl)
    chart = jsonl.with_suffix(".svg")
    report = render_report(records, chart_name=chart.name, baseline=baseline, baseline_name=baseline_name)
    # Drawing reads fonts from disk and takes CPU: not on the event loop.
    await asyncio.to_thread(chart.write_text, await asyncio.to_thread(render_chart, records), "utf-8")
    await asyncio.to_thread(jsonl.with_suffix(".md").write_text, report, "utf-8")
    out.write(report)
    out.write(f"\nresults: {jsonl}\nreport:  {jsonl.with_suffix('.md')}\nchart:   {chart}\n")
    if baseline is not None:
        regressed = [row["metric"] for row in compare(records, baseline) if row["regressed"]]
        if regressed:
            out.write(f"regression against {baseline_name}: {', '.join(regressed)}\n")
            return EXIT_REGRESSION
    return EXIT_OK


def main(args: argparse.Namespace) -> int:
    load_dotenv()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.report:
        try:
            baseline = load_records(Path(args.baseline)) if args.baseline else None
            return asyncio.run(write_report(Path(args.report), baseline, args.baseline or "", sys.stdout))
        except (OSError, ValueError) as exc:
            sys.stderr.write(f"draftloop eval: cannot report on {args.report}: {exc}\n")
            return EXIT_USAGE
    try:
        inputs = load_inputs(args)
    except DatasetError as exc:
        sys.stderr.write(f"draftloop eval: {exc}\n")
        return EXIT_USAGE
    try:
        return asyncio.run(run_eval(args, inputs, sys.stdout, sys.stderr, EvalSettings.from_env(os.environ)))
    except ModelProviderError as exc:
        sys.stderr.write(f"draftloop eval: {exc}\n")
        return EXIT_FAILED
    except ValueError as exc:
        # Settings read from the environment raise ValueError naming the variable.
        sys.stderr.write(f"draftloop eval: {exc}\n")
        return EXIT_USAGE
    except KeyboardInterrupt:
        sys.stderr.write("draftloop eval: interrupted; the records written so far are in the results file\n")
        return 130
