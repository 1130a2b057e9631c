"""approval: pause for a human, offering exactly the attempt that ships if approved.

The interrupt carries that attempt (its number, its own score, `passed` and issues), and the
same offer in LangChain's standard human-in-the-loop shape (`action_requests`/`review_configs`,
one `publish_draft` action) for chat UIs built on langgraph-sdk. After a rejection the redraft
is what is offered; when it scored below an attempt the reviewer rejected, the interrupt says
so and offers both by number (in the standard shape: the action's `attempt` argument, with the
other in `alternatives`), and the decision may name the one to ship. Approving ships exactly the
chosen attempt. An edit ships the reviewer's title and markdown once the critique's hard gates
pass on it; an edit they fail is refused with the failures in a new interrupt, never shipped.
Decisions are strict (graph/nodes/decisions.py); anything that is not one is asked again.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Command, interrupt

from graph import draft_text, gates
from graph import markdown as md
from graph.context import DraftloopContext, dependencies, effective_settings
from graph.nodes.decisions import ACTION_NAME, DECISION_TYPES, Decision, InvalidDecision, parse_decision
from graph.nodes.draft import failed_gates, turn_attempts
from graph.state import AttemptRecord, State

__all__ = ["InvalidDecision", "approval", "approval_payload", "parse_decision"]

QUESTION = ('Approve this draft? Resume with {"approved": true} to ship attempt {number}, '
            '{"approved": false, "feedback": "what to change"} to have it redrafted, and optionally '
            '"publish": true with an approval{choice}. Or answer {"decisions": [{"type": "approve"}]}, '
            '[{"type": "edit", "edited_action": {"name": "publish_draft", "args": {"title": "...", '
            '"markdown": "..."}}}] or [{"type": "reject", "message": "what to change"}].')
# The arguments a standard `edit` may change; the others describe the offer.
EDITABLE_ARGS = ("title", "markdown", "attempt")
_H1_LINE = re.compile(r"^#\s+.+$", re.MULTILINE)


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


def action_args(state: State) -> dict[str, Any]:
    """The `publish_draft` action's arguments: the offered attempt, the numbered sources its [n]
    markers refer to, and any attempt the decision may ship instead (by editing `attempt`)."""
    offered, better = offer(state)
    sources = (state.get("research") or {}).get("sources") or []
    args: dict[str, Any] = {
        "title": offered.get("title", ""), "markdown": offered.get("markdown", ""),
        "attempt": offered.get("number"), "score": offered.get("score"), "passed": bool(offered.get("passed")),
        "sources": [{"n": n, "title": s.get("title", ""), "url": s.get("url", "")} for n, s in enumerate(sources, 1)],
    }
    if better:
        args["alternatives"] = [{"attempt": a.get("number"), "score": a.get("score"), "passed": bool(a.get("passed")),
                                 "title": a.get("title", ""), "markdown": a.get("markdown", "")} for a in better]
    return args


def _description(payload: Mapping[str, Any]) -> str:
    """The standard action's description: the verdict, the choices, and why it asks again."""
    verdict = "passed the critique" if payload.get("passed") else "did not pass the critique"
    lines = [f"Publish attempt {payload.get('attempt')} (score {payload.get('score')}, {verdict})."]
    if payload.get("failed_checks"):
        lines.append(f"Failed checks: {', '.join(payload['failed_checks'])}.")
    for other in payload.get("alternatives") or []:
        lines.append(f"Attempt {other.get('attempt')}, which you rejected, scored higher ({other.get('score')}): "
                     f"edit with \"attempt\": {other.get('attempt')} to ship it instead.")
    lines.append("Approve to ship it as offered, edit the title or markdown to ship your version (the hard "
                 "checks run on it again), or reject with a message to have it redrafted.")
    if payload.get("error"):
        lines.insert(0, str(payload["error"]))
    return "\n".join(lines)


def approval_payload(state: State, problem: str = "") -> dict[str, Any]:
    """What a reviewer sees while the run waits: Draftloop's fields, then the same offer as
    LangChain's HITLRequest (one action, all three decisions allowed)."""
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
    payload["action_requests"] = [{"name": ACTION_NAME, "args": action_args(state), "description": _description(payload)}]
    payload["review_configs"] = [{"action_name": ACTION_NAME, "allowed_decisions": list(DECISION_TYPES)}]
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


def _retitled(markdown: str, old: str, new: str) -> str:
    """The text with its `# ` title line following a title-only edit, so the two agree."""
    if not old or md.title_of(markdown) != old:
        return markdown
    return _H1_LINE.sub(lambda _match: f"# {new}", markdown, count=1)


def _edited_text(state: State, decision: Decision, base: Mapping[str, Any]) -> tuple[str, str]:
    """(title, markdown) an edit ships: what the reviewer changed from the offer, the rest from
    the attempt it is based on."""
    offered = action_args(state)
    title = decision.title if decision.title is not None and decision.title != offered["title"] else None
    markdown = (decision.markdown if decision.markdown is not None and decision.markdown != offered["markdown"]
                else None)
    base_title, base_markdown = str(base.get("title") or ""), str(base.get("markdown") or "")
    shipped_title = title if title is not None else base_title
    if markdown is None:
        return shipped_title, _retitled(base_markdown, base_title, shipped_title)
    return shipped_title, markdown


def _edit_problem(state: State, decision: Decision, base: Mapping[str, Any]) -> str:
    """Why an edit cannot ship ("" when it can): an argument that is not editable, or a hard
    gate its text fails."""
    offered = action_args(state)
    for key, value in decision.other_args.items():
        if key not in offered:
            return f"decisions.0.edited_action.args.{key}: is not an argument of {ACTION_NAME}"
        if value != offered[key]:
            return f"decisions.0.edited_action.args.{key}: cannot be edited; edit {', '.join(EDITABLE_ARGS)}"
    _title, markdown = _edited_text(state, decision, base)
    if markdown == base.get("markdown"):
        return ""
    sources = (state.get("research") or {}).get("sources") or []
    failed = gates.failed(gates.run_gates(markdown, state.get("request", {}), sources))
    if not failed:
        return ""
    return ("the edited draft fails the hard checks (" + "; ".join(f"{g.name}: {g.detail}" for g in failed)
            + "); fix it, approve the draft as offered, or reject it with a message")


async def _decide(state: State, choices: list[Any], config: RunnableConfig,
                  runtime: Runtime[DraftloopContext]) -> tuple[Decision, Mapping[str, Any] | None]:
    """Ask until the answer is a decision; (decision, the attempt an approval ships or None).
    Each question is stored before it is asked, so the task API shows why it asks again."""
    problem = ""
    while True:
        payload = approval_payload(state, problem)
        await _save_pending(state, payload, config, runtime)
        value = interrupt(payload)
        try:
            decision = parse_decision(value)
        except InvalidDecision as exc:
            problem = str(exc)
            continue
        if decision.attempt is not None and decision.attempt not in choices:
            problem = f"attempt: {decision.attempt} is not on offer; choose one of {', '.join(map(str, choices))}"
            continue
        if not decision.approved:
            return decision, None
        offered = choices[0]
        base = _attempt(state, decision.attempt if decision.attempt is not None else offered) or offer(state)[0]
        if decision.edited:
            problem = _edit_problem(state, decision, base)
            if problem:
                continue
        return decision, base


def _shipped_verdict(state: State, decision: Decision, base: Mapping[str, Any],
                     threshold: float) -> tuple[str, str, dict[str, Any]]:
    """(title, markdown, critique) of what an approval ships: the attempt as it was, or an edit
    of it with the hard gates run again. The judge's score stays the attempt's (an edit is not
    judged again), so an edit passes only if the attempt's judge checks and score did."""
    verdict = {"score": base.get("score"), "passed": bool(base.get("passed")),
               "dimensions": base.get("dimensions") or {}, "checks": base.get("checks") or {},
               "issues": base.get("issues") or [], "number": base.get("number")}
    if not decision.edited:
        return str(base.get("title") or ""), str(base.get("markdown") or ""), verdict
    title, markdown = _edited_text(state, decision, base)
    if markdown == base.get("markdown"):
        return title, markdown, verdict
    sources = (state.get("research") or {}).get("sources") or []
    results = gates.run_gates(markdown, state.get("request", {}), sources)
    rechecked = {g.name for g in results}
    old_checks = dict(base.get("checks") or {})
    stale = {str(c.get("detail")) for name, c in old_checks.items() if name in rechecked and isinstance(c, dict)}
    checks = {**{k: v for k, v in old_checks.items() if k not in rechecked},
              **{g.name: {**g.as_dict(), "gate": True} for g in results}}
    passed = (all(isinstance(c, dict) and c.get("ok") for c in checks.values())
              and float(base.get("score") or 0) >= threshold)
    issues = [*(g.detail for g in results if not g.ok), *(i for i in base.get("issues") or [] if i not in stale)]
    return title, markdown, {**verdict, "checks": checks, "issues": issues, "passed": passed}


async def approval(state: State, config: RunnableConfig, runtime: Runtime[DraftloopContext]) -> Command[str]:
    offered, better = offer(state)
    choices = [offered.get("number"), *(a.get("number") for a in better)]
    decision, base = await _decide(state, choices, config, runtime)
    previous = state.get("approval") or {}
    rejected = list(previous.get("rejected") or [])
    if base is None:
        return Command(goto="draft", update={
            "approval": {"approved": False, "feedback": decision.feedback, "attempt": offered.get("number"),
                         "rejected": [*rejected, offered.get("number")]},
            "feedback": decision.feedback or "The reviewer rejected the draft; improve it.",
            "revision": int(state.get("revision") or 0) + 1,
        })
    settings = effective_settings(runtime, await dependencies(runtime))
    title, markdown, verdict = _shipped_verdict(state, decision, base, settings.quality_threshold)
    record: dict[str, Any] = {"approved": True, "feedback": decision.feedback, "attempt": base.get("number")}
    edited = (title, markdown) != (base.get("title", ""), base.get("markdown", ""))
    if edited:
        # The text shipped is the reviewer's: the attempt record keeps what the model wrote.
        record["edited"] = True
    if rejected:
        record["rejected"] = rejected
    if decision.publish:
        # finalize's post for this draft goes out published (storage/posts.py reads the flag).
        record["publish"] = True
    return Command(goto="finalize", update={
        "approval": record,
        # Exactly the attempt approved ships (as the reviewer edited it), with its own verdict.
        "draft": {**(state.get("draft") or {}), "title": title, "markdown": markdown,
                  "word_count": (draft_text.count_words(markdown, str(state.get("request", {}).get("content_type")
                                                                      or "blog_post"))
                                 if edited else base.get("word_count", 0)),
                  "excerpt": md.excerpt_of(markdown), "number": base.get("number")},
        "critique": {**(state.get("critique") or {}), **verdict},
    })
