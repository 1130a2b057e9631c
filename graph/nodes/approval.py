"""approval: pause for a human when the request asks for it; a rejection drafts again."""

from __future__ import annotations

from typing import Any

from langgraph.types import Command, interrupt

from graph.state import State


def approval_payload(state: State) -> dict[str, Any]:
    """What a reviewer sees while the run waits."""
    draft = state.get("draft", {})
    verdict = state.get("critique", {})
    return {
        "type": "approval",
        "question": "Approve this draft? Resume with {\"approved\": true|false, \"feedback\": \"...\", \"publish\": true|false}",
        "title": draft.get("title", ""),
        "markdown": draft.get("markdown", ""),
        "word_count": draft.get("word_count", 0),
        "score": verdict.get("score"),
        "passed": verdict.get("passed"),
        "issues": verdict.get("issues", []),
    }


def parse_decision(value: Any) -> tuple[bool, str]:
    """Accepts {"approved": bool, "feedback": str}, a bare bool, or "approve"/"reject" words."""
    if isinstance(value, dict):
        return bool(value.get("approved")), str(value.get("feedback") or "")
    if isinstance(value, bool):
        return value, ""
    if isinstance(value, str):
        lowered = value.strip().lower()
        return lowered in {"approve", "approved", "yes", "y", "ok", "lgtm"}, "" if lowered in {"approve", "approved", "yes", "y", "ok", "lgtm"} else value
    return False, ""


async def approval(state: State) -> Command[str]:
    decision = interrupt(approval_payload(state))
    approved, feedback = parse_decision(decision)
    record: dict[str, Any] = {"approved": approved, "feedback": feedback}
    if approved and isinstance(decision, dict) and decision.get("publish") is True:
        # finalize's post for this draft goes out published (storage/posts.py reads the flag).
        record["publish"] = True
    if approved:
        return Command(goto="finalize", update={"approval": record})
    return Command(
        goto="draft",
        update={
            "approval": record,
            "feedback": feedback or "The reviewer rejected the draft; improve it.",
            "revision": int(state.get("revision") or 0) + 1,
        },
    )
