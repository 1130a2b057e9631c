"""A LangGraph API run request, read and checked before a run is queued: the fields this server
honours, the nodes named, a resume value that answers an approval, and the request's length
against the model's context. Each refusal is a 422 naming the field."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.graph import END as GRAPH_END

from app.engine.api_runs import API_STREAM_MODES, DEFAULT_STREAM_MODES
from app.engine.run_settings import RunSettings
from app.graph_runtime import GraphRuntime
from app.http.lg_common import checkpoint_id_of, unprocessable
from app.http.lg_schemas import RunCreate, SendTarget
from app.http.threads import thread_config
from graph.message_text import is_human, message_text
from graph.nodes.approval import InvalidDecision, parse_decision

# Accepted by name but not implemented: any non-null value is refused.
UNSUPPORTED_FIELDS = ("feedback_keys", "after_seconds", "langsmith_tracer")


def _node_names(value: str | list[str] | None, field: str, nodes: set[str]) -> list[str] | str | None:
    if value is None or value == "*":
        return value
    unknown = [v for v in value if v not in nodes]
    if unknown:
        raise unprocessable(field, f"no node {unknown[0]!r} in the graph")
    return value


def _goto_nodes(goto: str | SendTarget | list[str | SendTarget] | None) -> list[str]:
    targets = goto if isinstance(goto, list) else [] if goto is None else [goto]
    return [target.node if isinstance(target, SendTarget) else target for target in targets]


def run_request(data: RunCreate | None) -> RunCreate:
    """The body, which an empty request lacks: like {}, it lacks the assistant first."""
    if data is None:
        raise unprocessable("assistant_id", "required")
    return data


def parse_run(body: RunCreate, nodes: set[str], *, stateless: bool = False) -> dict[str, Any]:
    """The run columns for a validated request body; a 422 naming the first field this server
    cannot honour."""
    for field in UNSUPPORTED_FIELDS:
        if getattr(body, field) is not None:
            raise unprocessable(field, "not supported by this server")
    if body.strict_resume:
        raise unprocessable("strict_resume", "not supported by this server")
    if body.checkpoint_during is not None:
        raise unprocessable("checkpoint_during", "deprecated; use durability")
    if body.input is not None and body.command is not None:
        raise unprocessable("command", "send either input or command, not both")
    command = None
    if body.command is not None:
        # Only the keys sent: a resume value of null is still a resume.
        command = body.command.model_dump(exclude_unset=True)
        if not command:
            raise unprocessable("command", "must be an object with resume, update and/or goto")
        unknown = [node for node in _goto_nodes(body.command.goto) if node not in nodes | {GRAPH_END}]
        if unknown:
            raise unprocessable("command.goto", f"no node {unknown[0]!r} in the graph")
    modes = body.stream_mode or DEFAULT_STREAM_MODES
    for mode in modes:
        if mode not in API_STREAM_MODES:
            raise unprocessable("stream_mode", f"{mode!r} is not supported; use {', '.join(API_STREAM_MODES)}")
    strategy = body.multitask_strategy or "enqueue"
    if strategy not in ("reject", "enqueue"):
        raise unprocessable("multitask_strategy", f"{strategy!r} is not supported; use reject or enqueue")
    if body.on_completion is not None and not stateless:
        raise unprocessable("on_completion", "only applies to stateless runs")
    return {
        # As sent: app/http/runs.py finds the assistant and applies its defaults.
        "assistant_id": body.assistant_id,
        "input": body.input,
        "command": command,
        "stream_modes": modes,
        # As sent (configurable keeps the client's own keys); only the shapes were checked.
        "config": body.config.model_dump(exclude_unset=True) if body.config else {},
        "context": body.context.model_dump(exclude_unset=True) if body.context else {},
        "run_metadata": body.metadata or {},
        "interrupt_before": _node_names(body.interrupt_before, "interrupt_before", nodes),
        "interrupt_after": _node_names(body.interrupt_after, "interrupt_after", nodes),
        "checkpoint_id": checkpoint_id_of(body.checkpoint) or body.checkpoint_id,
        "multitask_strategy": strategy,
        "durability": body.durability,
        # The run's own: app/http/runs.py falls back on its assistant's (run_webhook_url) and checks
        # it (it needs the network) before the run is queued; a cron stores it for its ticks.
        "webhook": body.webhook,
    }


async def check_resume(runtime: GraphRuntime, thread_id: str, resume: Any) -> None:
    """A resume that answers the content graph's approval must be a decision: a 422 naming the
    field, instead of a run that would only ask again."""
    snapshot = await runtime.graph.aget_state(thread_config(thread_id))
    approvals = {item.id: item for item in snapshot.interrupts
                 if isinstance(item.value, dict) and item.value.get("type") == "approval"}
    if not approvals:
        return
    # A map of interrupt ids to answers, or one answer for the interrupt that waits.
    answers = ([value for key, value in resume.items() if key in approvals]
               if isinstance(resume, dict) and resume and set(resume) <= set(approvals) else [resume])
    for answer in answers:
        try:
            parse_decision(answer)
        except InvalidDecision as exc:
            field = "command.resume" if exc.field == "resume" else f"command.resume.{exc.field}"
            raise unprocessable(field, exc.message) from exc


def human_texts(run_input: Any) -> list[tuple[str, str]]:
    """(field, text) of each human message in a run's input, in the shapes the graph accepts
    (graph/message_text.py); other shapes are the graph's to refuse."""
    messages = run_input.get("messages") if isinstance(run_input, Mapping) else None
    if not isinstance(messages, list):
        return []
    return [(f"input.messages.{index}.content", message_text(raw))
            for index, raw in enumerate(messages) if is_human(raw)]


async def check_request_length(run_settings: RunSettings, run_input: Any) -> None:
    """A human message longer than the model's context takes is a 422 naming it, now, instead
    of a run that fails later with the provider's error."""
    texts = human_texts(run_input)
    if not texts:
        return
    limit = await run_settings.request_limit()
    for field, text in texts:
        if problem := limit.problem(text):
            raise unprocessable(field, problem)
