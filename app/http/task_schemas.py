"""Request and response bodies of the task API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import Row

from graph.state import MAX_ATTEMPT_NUMBER, MAX_KEYWORDS, MAX_WORDS, MIN_WORDS
from storage.models import Task
from tools.webhooks import MAX_URL_LENGTH as WEBHOOK_URL_LENGTH

# A task as an ORM object or as a plain row of its table (storage.tasks.fetch_task_row).
TaskLike = Task | Row[Any]

ContentTypeName = Literal["blog_post", "social_post", "newsletter", "email", "research_brief"]
PlatformName = Literal["x", "linkedin"]
ToneName = Literal["professional", "casual", "academic", "inspirational"]
StyleName = Literal["technical", "narrative", "listicle", "educational", "thought-leadership"]
StatusName = Literal["queued", "running", "awaiting_approval", "completed", "failed", "cancelled"]
Keyword = Annotated[str, Field(min_length=1, max_length=80)]


class TaskCreate(BaseModel):
    """A natural-language `request`, structured fields, or both."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    request: str | None = Field(default=None, max_length=20_000, description="What to write, in words")
    content_type: ContentTypeName | None = None
    platform: PlatformName | None = Field(default=None, description="For a social post: x or linkedin "
                                                                     "(linkedin when a social post names none)")
    topic: str | None = Field(default=None, min_length=1, max_length=500)
    audience: str | None = Field(default=None, max_length=300)
    tone: ToneName | None = None
    style: StyleName | None = None
    target_words: int | None = Field(default=None, ge=MIN_WORDS, le=MAX_WORDS)
    keywords: list[Keyword] | None = Field(default=None, max_length=MAX_KEYWORDS)
    images: bool | None = None
    research: bool | None = None
    # Unset: the require_approval setting decides (GET /api/settings/require_approval).
    require_approval: bool | None = None
    webhook: str | None = Field(default=None, min_length=1, max_length=WEBHOOK_URL_LENGTH,
                                description="POSTed, signed, when the task ends (docs/webhooks.md)")
    assistant_id: str | None = Field(default=None, max_length=255, description=(
        "A LangGraph API assistant (id, or the graph id for the built-in one): its latest version's "
        "defaults apply where this request sets nothing"))

    @model_validator(mode="after")
    def _needs_something_to_write(self) -> TaskCreate:
        if not (self.request or self.topic):
            raise ValueError("request: is empty; give a `request` (what to write, in words) or a `topic`")
        return self

    def platform_problem(self, defaults: dict[str, Any] | None = None) -> str | None:
        """Why `platform` cannot apply, or None, with an assistant's ``defaults`` under the fields
        sent. Well-formed but contradictory, so the controller answers 422 rather than the 400 of
        a malformed field."""
        params = self.params(defaults)
        platform, content_type = params.get("platform"), params.get("content_type")
        if platform and content_type not in (None, "social_post"):
            return f"a platform applies to a social_post only, not to a {content_type}"
        return None

    def params(self, defaults: dict[str, Any] | None = None) -> dict[str, Any]:
        """The fields sent, over an assistant's ``defaults`` (its id among them)."""
        return {**(defaults or {}), **self.model_dump(exclude_none=True, exclude={"request", "webhook"})}

    def request_text(self, defaults: dict[str, Any] | None = None) -> str:
        """Structured-only callers still get a sentence the graph (and the logs) can read."""
        if self.request:
            return self.request
        params = self.params(defaults)
        if params.get("platform"):
            return f"Write a {'LinkedIn' if params['platform'] == 'linkedin' else 'X'} post about {self.topic}"
        kind = str(params.get("content_type") or "blog_post").replace("_", " ")
        return f"Write a {kind} about {self.topic}"


class Decision(BaseModel):
    # Strict, like every body (app/http/app.py): a reviewer's "false" or 0 is refused with a
    # 422 naming the field, never read as a boolean that might approve.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, strict=True)

    approved: bool | None = Field(default=None, description="true ships, false drafts again; required "
                                                             "unless `decisions` answers")
    feedback: str = Field(default="", max_length=5_000)
    publish: bool = Field(default=False, description="with an approval: publish the post this task makes")
    attempt: int | None = Field(default=None, ge=1, le=MAX_ATTEMPT_NUMBER,
                                description="with an approval: which offered attempt ships "
                                            "(pending_approval.attempt or an alternative's)")
    # Checked by graph/nodes/decisions.py in the controller, which names the offending field.
    decisions: list[Any] | None = Field(default=None, description=(
        'instead of the fields above, LangChain\'s standard answer: exactly one of {"type": "approve"}, '
        '{"type": "edit", "edited_action": {"name": "publish_draft", "args": {...}}} or '
        '{"type": "reject", "message": "..."} (pending_approval.action_requests)'))

    @model_validator(mode="after")
    def _one_shape(self) -> Decision:
        if self.decisions is not None:
            if self.approved is not None or self.feedback or self.publish or self.attempt is not None:
                raise ValueError("decisions: goes alone; answer with decisions or with approved (and feedback, "
                                 "publish, attempt)")
            return self
        if self.approved is None:
            raise ValueError("approved: is required")
        if self.publish and not self.approved:
            raise ValueError("publish: a rejected draft cannot be published; send approved: true")
        return self


class TaskAccepted(BaseModel):
    id: str
    thread_id: str
    status: StatusName
    links: dict[str, str]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _ms(start: datetime | None, end: datetime | None) -> int | None:
    return int((end - start).total_seconds() * 1000) if start and end else None


def task_links(task_id: str) -> dict[str, str]:
    base = f"/api/tasks/{task_id}"
    return {"self": base, "events": f"{base}/events", "attempts": f"{base}/attempts",
            "cancel": f"{base}/cancel", "approve": f"{base}/approve"}


def task_summary(task: TaskLike) -> dict[str, Any]:
    result = task.result or {}
    return summary_fields(task, result.get("title"), result.get("score"), result.get("passed"))


def listed_task_summary(row: Row[Any]) -> dict[str, Any]:
    """task_summary of a row of storage.tasks.SUMMARY_COLUMNS."""
    return summary_fields(row, row.title, row.score, row.passed)


def summary_fields(task: TaskLike, title: Any, score: Any, passed: Any) -> dict[str, Any]:
    return {
        "id": task.id,
        "thread_id": task.thread_id,
        "status": task.status,
        "request": task.request,
        "title": title,
        "score": score,
        "passed": passed,
        "created_at": _iso(task.created_at),
        "updated_at": _iso(task.updated_at),
        "finished_at": _iso(task.finished_at),
    }


def task_detail(task: TaskLike) -> dict[str, Any]:
    result = task.result or {}
    return {
        **task_summary(task),
        "params": task.params or {},
        "intent": task.intent,
        "result": {
            "kind": result.get("kind"),
            "title": result.get("title"),
            "markdown": result.get("markdown"),
            "answer": result.get("answer"),
            "excerpt": result.get("excerpt"),
            "word_count": result.get("word_count"),
            "reading_minutes": result.get("reading_minutes"),
            "seo": result.get("seo"),
            "featured_image": result.get("featured_image"),
            "sources": result.get("sources") or [],
            "images": result.get("images") or [],
            "score": result.get("score"),
            "dimensions": result.get("dimensions") or {},
            "passed": result.get("passed"),
            "attempts": result.get("attempts"),
            "attempt": result.get("attempt"),
            "approval": result.get("approval"),
        } if result else None,
        "model": {"provider": task.provider, "name": task.model},
        "usage": {"input_tokens": task.input_tokens, "output_tokens": task.output_tokens,
                  "cost_usd": float(task.cost_usd or 0)},
        "timings": {
            "started_at": _iso(task.started_at),
            "queued_ms": _ms(task.created_at, task.started_at),
            "run_ms": _ms(task.started_at, task.finished_at),
            "total_ms": _ms(task.created_at, task.finished_at),
        },
        # The interrupt a reviewer answers: the attempt on offer, its score and issues.
        "pending_approval": task.pending_approval if task.status == "awaiting_approval" else None,
        "warnings": task.warnings or [],
        "error": task.error,
        "links": task_links(task.id),
    }
