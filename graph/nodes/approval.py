"""approval: pause for a human, offering exactly the attempt that ships if approved.

The interrupt carries that attempt (its number, its own score, `passed` and issues). After a
rejection the redraft is what is offered; when it scored below an attempt the reviewer
rejected, the interrupt says so and offers both by number, and the decision may name the one
to ship. Approving ships exactly the chosen attempt. Decisions are strict: `approved` must be a
JSON boolean (a bare boolean is accepted as the whole answer); anything else is asked again.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph import markdown as md
from graph.context import DraftloopContext, dependencies
from graph.nodes.draft import failed_gates, turn_attempts
from graph.state import MAX_ATTEMPT_NUMBER, AttemptRecord, State

QUESTION = ('Approve this draft? Resume with {"approved": true} to ship attempt {number}, '
            '{"approved": false, "feedback": "what to change"} to have it redrafted, and optionally '
            '"publish": true with an approval{choice}.')


class ApprovalDecision(BaseModel):
    """A reviewer's answer. Strict: "false" is not false, 1 is not true."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approved: bool
    feedback: str = Field(default="", max_length=5_000)
    publish: bool = False
    attempt: int | None = Field(default=None, ge=1, le=MAX_ATTEMPT_NUMBER,
                                description="with an approval: the offered attempt to ship")


class InvalidDecision(ValueError):
    """A resume value that is not a decision; the message names the field and the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_decision(value: Any) -> ApprovalDecision:
    """{"approved": bool, "feedback": str, "publish": bool, "attempt": int}, or a bare JSON
    boolean; raises InvalidDecision for anything else."""
    if isinstance(value, bool):
        return ApprovalDecision(approved=value)
    if not isinstance(value, dict):
        raise InvalidDecision("resume", 'must be {"approved": true|false, ...} or a JSON boolean, got '
                                        f"{type(value).__name__}")
    try:
        decision = ApprovalDecision.model_validate(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or "resume"
        rules = {"bool_type": "must be a JSON boolean (true or false)", "missing": "is required",
                 "extra_forbidden": "is not a field of a decision", "int_type": "must be an attempt number",
                 "string_type": "must be a string"}
        raise InvalidDecision(field, rules.get(error["type"], error["msg"])) from None
    if decision.publish and not decision.approved:
        raise InvalidDecision("publish", "a rejected draft cannot be published; send approved: true")
    return decision


def _attempt(state: State, number: Any) -> AttemptRecord | None:
    return next((a for a in state.get("attempts") or [] if a.get("number") == number), None)


def _summary(attempt: Mapping[str, Any]) -> dict[str, Any]:
    return {"attempt": attempt.get("number"), "title": attempt.get("title", ""),
            "markdown": attempt.get("markdown", ""), "word_count": attempt.get("word_count", 0),
            "score": attempt.get("score"), "passed": bool(attempt.get("passed")),
            "issues": list(attempt.get("issues") or []), "failed_checks": failed_gates(attempt)}


def offer(state: State) -> tuple[Mapping[str, Any], list[AttemptRecord]]:
    """(the attempt that ships if approved, rejected attempts that scored above it)."""
    draft = state.get("draft") or {}
    offered: Mapping[str, Any] = (_attempt(state, draft.get("number"))
                                  or {**draft, "score": (state.get("critique") or {}).get("score")})
    rejected = set((state.get("approval") or {}).get("rejected") or [])
    better = [a for a in turn_attempts(state) if a.get("number") in rejected
              and float(a.get("score") or 0) > float(offered.get("score") or 0)]
    return offered, sorted(better, key=lambda a: -float(a.get("score") or 0))[:1]


def approval_payload(state: State, problem: str = "") -> dict[str, Any]:
    """What a reviewer sees while the run waits."""
    offered, better = offer(state)
    number = offered.get("number")
    payload: dict[str, Any] = {"type": "approval", **_summary(offered)}
    if better:
        other = better[0]
        payload["alternatives"] = [_summary(other)]
        payload["note"] = (f"The redraft (attempt {number}) scored {offered.get('score')}, below attempt "
                           f"{other.get('number')} ({other.get('score')}), which you rejected. Approve with "
                           f'"attempt": {other.get("number")} to ship that one instead.')
    choice = f', or "attempt": {better[0].get("number")} to ship the attempt you rejected' if better else ""
    payload["question"] = QUESTION.replace("{number}", str(number)).replace("{choice}", choice)
    if problem:
        payload["error"] = f"The last answer was not a decision: {problem}."
    return payload


async def _save_pending(state: State, payload: dict[str, Any], config: RunnableConfig,
                        runtime: Runtime[DraftloopContext]) -> None:
    """Put the draft on offer and the attempts so far where the task API can show them."""
    deps = await dependencies(runtime)
    if deps.save_pending is None:
        return
    configurable = config.get("configurable") or {}
    task_id = configurable.get("task_id")
    await deps.save_pending({
        "thread_id": str(configurable.get("thread_id") or ""),
        **({"task_id": str(task_id)} if task_id else {}),
        "pending": payload,
        "attempts": state.get("attempts") or [],
        "usage": state.get("usage") or [],
    })


def _decide(state: State, choices: list[Any]) -> tuple[ApprovalDecision, int | None]:
    """Ask until the answer is a decision; (decision, attempt number it names or None)."""
    problem = ""
    while True:
        value = interrupt(approval_payload(state, problem))
        try:
            decision = parse_decision(value)
        except InvalidDecision as exc:
            problem = str(exc)
            continue
        if decision.attempt is not None and decision.attempt not in choices:
            problem = f"attempt: {decision.attempt} is not on offer; choose one of {', '.join(map(str, choices))}"
            continue
        return decision, decision.attempt


async def approval(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> Command[str]:
    offered, better = offer(state)
    choices = [offered.get("number"), *(a.get("number") for a in better)]
    await _save_pending(state, approval_payload(state), config, runtime)
    decision, chosen_number = _decide(state, choices)
    previous = state.get("approval") or {}
    rejected = list(previous.get("rejected") or [])
    if not decision.approved:
        return Command(goto="draft", update={
            "approval": {"approved": False, "feedback": decision.feedback, "attempt": offered.get("number"),
                         "rejected": [*rejected, offered.get("number")]},
            "feedback": decision.feedback or "The reviewer rejected the draft; improve it.",
            "revision": int(state.get("revision") or 0) + 1,
        })
    picked = _attempt(state, chosen_number) if chosen_number is not None else None
    chosen = picked or _attempt(state, offered.get("number")) or offered
    record: dict[str, Any] = {"approved": True, "feedback": decision.feedback, "attempt": chosen.get("number")}
    if rejected:
        record["rejected"] = rejected
    if decision.publish:
        # finalize's post for this draft goes out published (storage/posts.py reads the flag).
        record["publish"] = True
    markdown = str(chosen.get("markdown") or "")
    return Command(goto="finalize", update={
        "approval": record,
        # Exactly the attempt approved ships, with its own verdict.
        "draft": {**(state.get("draft") or {}), "title": chosen.get("title", ""), "markdown": markdown,
                  "word_count": chosen.get("word_count", 0), "excerpt": md.excerpt_of(markdown),
                  "number": chosen.get("number")},
        "critique": {**(state.get("critique") or {}), "score": chosen.get("score"),
                     "passed": bool(chosen.get("passed")), "dimensions": chosen.get("dimensions") or {},
                     "checks": chosen.get("checks") or {}, "issues": chosen.get("issues") or [],
                     "number": chosen.get("number")},
    })
