"""A reviewer's answer to the approval interrupt, in either of the two shapes it may take.

Draftloop's own: `{"approved": bool, "feedback": str, "publish": bool, "attempt": int}` or a
bare JSON boolean. LangChain's standard human-in-the-loop shape (HumanInTheLoopMiddleware's
HITLResponse, what chat UIs built on langgraph-sdk send): `{"decisions": [decision]}` with one
decision for the one `publish_draft` action the interrupt offers: `{"type": "approve"}`,
`{"type": "edit", "edited_action": {"name": "publish_draft", "args": {...}}}` or
`{"type": "reject", "message": "..."}`.

Both become one `Decision`. Parsing is strict and stateless, so the LangGraph API can refuse a
bad answer with a 422 before a run starts; what needs the thread's state (an attempt not on
offer, an argument that is not editable, an edit the hard gates fail) the approval node checks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from graph.state import MAX_ATTEMPT_NUMBER

ACTION_NAME = "publish_draft"
DECISION_TYPES = ("approve", "edit", "reject")
MAX_FEEDBACK = 5_000
MAX_TITLE = 300
# Far above the longest piece a request may ask for (5,000 words), and a bound the API can state.
MAX_MARKDOWN = 100_000
_RULES = {"bool_type": "must be a JSON boolean (true or false)", "missing": "is required",
          "extra_forbidden": "is not a field of a decision", "int_type": "must be an attempt number",
          "string_type": "must be a string", "dict_type": "must be an object",
          "literal_error": "must be " + ACTION_NAME}


class ApprovalDecision(BaseModel):
    """Draftloop's own answer. Strict: "false" is not false, 1 is not true."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approved: bool
    feedback: str = Field(default="", max_length=MAX_FEEDBACK)
    publish: bool = False
    attempt: int | None = Field(default=None, ge=1, le=MAX_ATTEMPT_NUMBER,
                                description="with an approval: the offered attempt to ship")


class _Approve(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["approve"]


class _EditedArgs(BaseModel):
    # Other arguments of the offer may come back as they were (a UI sends the whole action back);
    # the approval node checks them against the offer.
    model_config = ConfigDict(extra="allow", strict=True)
    title: str | None = Field(default=None, max_length=MAX_TITLE)
    markdown: str | None = Field(default=None, max_length=MAX_MARKDOWN)
    attempt: int | None = Field(default=None, ge=1, le=MAX_ATTEMPT_NUMBER)


class _EditedAction(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: Literal["publish_draft"]
    args: _EditedArgs


class _Edit(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["edit"]
    edited_action: _EditedAction


class _Reject(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    type: Literal["reject"]
    message: str = Field(default="", max_length=MAX_FEEDBACK)


_SHAPES: dict[str, type[_Approve | _Edit | _Reject]] = {"approve": _Approve, "edit": _Edit, "reject": _Reject}


class InvalidDecision(ValueError):
    """A resume value that is not a decision; the message names the field and the rule."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Decision:
    """A decision in either shape. `edited` marks a standard `edit`: an approval of the text
    in `title`/`markdown` (None: as offered), which the approval node re-checks."""

    approved: bool
    feedback: str = ""
    publish: bool = False
    attempt: int | None = None
    edited: bool = False
    title: str | None = None
    markdown: str | None = None
    # An edit's other arguments, which must equal the offer's (they are not editable).
    other_args: Mapping[str, Any] = field(default_factory=dict)


def _invalid(exc: ValidationError, prefix: str) -> InvalidDecision:
    error = exc.errors()[0]
    path = ".".join(str(part) for part in error["loc"])
    field_name = ".".join(part for part in (prefix, path) if part) or "resume"
    return InvalidDecision(field_name, _RULES.get(error["type"], error["msg"]))


def _parse_standard(value: Mapping[str, Any]) -> Decision:
    """LangChain's HITLResponse with exactly one decision (the interrupt offers one action)."""
    extra = sorted(set(value) - {"decisions"})
    if extra:
        raise InvalidDecision(extra[0], 'is not a field of a decisions answer ({"decisions": [...]})')
    decisions = value["decisions"]
    if not isinstance(decisions, list) or len(decisions) != 1:
        raise InvalidDecision("decisions", f"must be a list of exactly one decision, for the one {ACTION_NAME} "
                                           "action on offer")
    raw = decisions[0]
    kind = raw.get("type") if isinstance(raw, dict) else None
    shape = _SHAPES.get(kind) if isinstance(kind, str) else None
    if shape is None:
        raise InvalidDecision("decisions.0.type", f"must be one of {', '.join(DECISION_TYPES)}")
    try:
        parsed = shape.model_validate(raw)
    except ValidationError as exc:
        raise _invalid(exc, "decisions.0") from None
    if isinstance(parsed, _Reject):
        return Decision(approved=False, feedback=parsed.message)
    if isinstance(parsed, _Approve):
        return Decision(approved=True)
    args = parsed.edited_action.args
    return Decision(approved=True, edited=True, title=args.title, markdown=args.markdown, attempt=args.attempt,
                    other_args=dict(args.model_extra or {}))


def parse_decision(value: Any) -> Decision:
    """Either shape (see the module's docstring); raises InvalidDecision for anything else."""
    if isinstance(value, bool):
        return Decision(approved=value)
    if not isinstance(value, dict):
        raise InvalidDecision("resume", 'must be {"decisions": [...]}, {"approved": true|false, ...} or a JSON '
                                        f"boolean, got {type(value).__name__}")
    if "decisions" in value:
        return _parse_standard(value)
    try:
        own = ApprovalDecision.model_validate(value)
    except ValidationError as exc:
        raise _invalid(exc, "") from None
    if own.publish and not own.approved:
        raise InvalidDecision("publish", "a rejected draft cannot be published; send approved: true")
    return Decision(approved=own.approved, feedback=own.feedback, publish=own.publish, attempt=own.attempt)
