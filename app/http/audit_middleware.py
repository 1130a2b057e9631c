"""Records every mutation attempt that reaches a route, whatever its outcome.

App-level and generic, so that a route added later is audited without anyone remembering to:
every request other than GET/HEAD/OPTIONS (and POSTs marked ``read_only``, which only query) is
recorded when its response starts, with the caller from the auth scope, the resource and id
read off the route's path template, the status, and any enrichment the handler left with
``app.audit_log.audit_change``. A route may name its action (``opt={"audit_action": "run.create"}``)
where the path alone would not say it. Denied (401/403) and invalid (4xx) attempts are recorded
too, with their status, so that probing shows up. Requests matching no route (404/405 from the
router) never reach a route's middleware and are not recorded.
"""

from __future__ import annotations

import logging
import re
from typing import Any, cast

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.audit_log import AUDIT_SCOPE_KEY, AuditActor, AuditLog
from app.http.auth import auth_outcome
from storage.audit import AuditRecord
from storage.models import utcnow

log = logging.getLogger("draftloop.audit")

UNAUDITED_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_METHOD_VERBS = {"POST": "create", "PUT": "put", "PATCH": "update", "DELETE": "delete"}
_PARAM = re.compile(r"^\{([^}:]+)(?::[^}]*)?\}$")
_CONVERTER = re.compile(r"\{([^}:]+):[^}]*\}")


def _clip(value: str | None, limit: int) -> str | None:
    return None if value is None else value.replace("\x00", "")[:limit]


def _is_collection(segment: str) -> bool:
    return segment.endswith("s") and not segment.endswith(("ss", "us", "is"))


def _singular(segment: str) -> str:
    if segment.endswith("ies"):
        return segment[:-3] + "y"
    return segment[:-1] if _is_collection(segment) else segment


def describe_route(template: str, method: str, params: dict[str, Any]) -> tuple[str, str | None, str]:
    """(resource, resource id, action) for a request to the route ``template``.

    A literal followed by a parameter names the resource and its id (``/api/tasks/{task_id}``);
    a plural literal after an id names a sub-collection (``/threads/{id}/runs``); literals after
    the last id are the verb (``.../cancel``), else the method says it (POST creates, PATCH
    updates, PUT puts, DELETE deletes).
    """
    segments = [s for s in template.split("/") if s]
    if segments[:1] == ["api"]:
        segments = segments[1:]
    resource: str | None = None
    resource_id: str | None = None
    verb: list[str] = []
    for index, segment in enumerate(segments):
        param = _PARAM.match(segment)
        if param is not None:
            value = params.get(param.group(1))
            resource_id, verb = (None if value is None else str(value)), []
            continue
        following = segments[index + 1] if index + 1 < len(segments) else ""
        if _PARAM.match(following):
            resource = _singular(segment)
        elif resource is None or (not verb and resource_id is not None and _is_collection(segment)):
            resource, resource_id = _singular(segment), None
        else:
            verb.append(segment)
    action = "_".join(verb) or _METHOD_VERBS.get(method, method.lower())
    return resource or "root", resource_id, f"{resource or 'root'}.{action}"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def audit_record(scope: Scope, status: int) -> AuditRecord:
    """The entry for a finished (or failed) request, from its scope."""
    template = scope.get("path_template") or scope.get("path", "")
    # Only HTTP requests are audited (_audited); a WebSocket scope has no method.
    method = scope["method"] if scope["type"] == ScopeType.HTTP else ""
    resource, resource_id, action = describe_route(template, method, scope.get("path_params") or {})
    # ASGI lets middleware add keys to the scope; Litestar's scope TypedDicts name only its own.
    note: dict[str, Any] = cast("dict[str, Any]", scope).get(AUDIT_SCOPE_KEY) or {}
    handler = scope.get("route_handler")
    # A handler's own word wins, then its route's declared action, then the path's.
    action = note.get("action") or (handler.opt.get("audit_action") if handler is not None else None) or action
    outcome = auth_outcome(scope)
    principal = outcome.principal
    actor: AuditActor | None = note.get("actor") or (
        AuditActor(principal.user_id, principal.name, principal.role.value) if principal else None)
    client = scope.get("client")
    return AuditRecord(
        occurred_at=utcnow(),
        action=action[:64],
        resource=resource[:64],
        resource_id=_clip(note.get("resource_id") or resource_id, 255),
        actor_id=actor.user_id if actor else None,
        actor_name=actor.name if actor else None,
        actor_role=actor.role if actor else None,
        summary=note.get("summary") or None,
        client=_clip(client[0], 64) if client else None,
        method=method[:8],
        path=_clip(_CONVERTER.sub(r"{\1}", template), 255) or "",
        status=status,
        request_id=_clip(_header(scope, b"x-request-id"), 64),
    )


def _audited(scope: Scope) -> bool:
    if scope["type"] != ScopeType.HTTP or scope["method"] in UNAUDITED_METHODS:
        return False
    handler = scope.get("route_handler")
    return handler is None or not handler.opt.get("read_only")


def audit_middleware() -> Any:
    """Hands each mutation's entry to the app's AuditLog (``app.state.audit``) as its response
    starts: SSE responses can last minutes, and the change happened before the first byte."""

    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            audit: AuditLog | None = scope["app"].state.get("audit") if _audited(scope) else None
            if audit is None:
                await app(scope, receive, send)
                return
            recorded = False

            def record(status: int) -> None:
                nonlocal recorded
                if recorded:
                    return
                recorded = True
                try:
                    audit.record(audit_record(scope, status))
                except Exception:  # a bug in recording must not cost the caller its response
                    log.exception("could not record the audit entry for %s %s", scope.get("method"), scope.get("path"))

            async def capture(message: Message) -> None:
                if message["type"] == "http.response.start":
                    record(message["status"])
                await send(message)

            try:
                await app(scope, receive, capture)
            finally:
                # No response started: the request failed past every exception handler.
                record(500)

        return middleware

    return factory
