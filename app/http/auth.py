"""Authentication and authorisation for every route.

An ASGI middleware reads the credential once per request and leaves the outcome in the scope: a
bearer JWT (signature, expiry, issuer, then the user's current role and the token's revocation:
one database round trip, cached for two seconds per token) or an API key (``X-Api-Key``, or a
bearer credential starting ``dl_``: one indexed lookup, never cached, app/api_keys.py). An
``Authorization`` header wins over ``X-Api-Key``: the SDKs fill ``X-Api-Key`` from
LANGSMITH_API_KEY on their own, and a client that also sends a token means the token.

One app-level guard then decides each route: public routes are marked ``opt={"public": True}``,
reads (GET, or ``opt={"read_only": True}`` for POSTs that only query) need a viewer, everything
else an editor, and ``opt={"role": "admin"}`` raises the bar. Being app-level, a route added
later is closed by default instead of open by omission.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from litestar import Controller, Request, Response, post
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.enums import ScopeType
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    SerializationException,
    TooManyRequestsException,
    ValidationException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.serialization import decode_json
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.api_keys import KeyUseRecorder, check_key, looks_like_key
from app.audit_log import AuditActor, audit_change
from app.http.errors import not_json_message
from app.security import InvalidToken, LoginRateLimited, LoginRateLimiter, TokenService, verify_password
from app.service_settings import ServiceSettings
from storage.models import Role
from storage.users import TokenOwner, UserRepository

log = logging.getLogger("draftloop.auth")

SCOPE_KEY = "draftloop_auth"
READ_METHODS = frozenset({"GET", "HEAD"})
# The OpenAPI schema and its docs pages are public (path set in create_app).
SCHEMA_PATH = "/schema"
# The docs page where langgraph-api serves it (app/http/schema_docs.py): it runs Swagger UI too.
DOCS_ALIAS = "/docs"
_CHALLENGE = 'Bearer realm="draftloop"'


@dataclass(frozen=True)
class Principal:
    user_id: str
    name: str
    role: Role
    jti: str
    # None for an API key that does not expire.
    expires_at: datetime | None
    # Set when the request came with an API key (then jti is empty).
    api_key_id: str | None = None


@dataclass(frozen=True)
class AuthOutcome:
    """No header: both None. A valid token: principal. A bad one: error (safe to show)."""

    principal: Principal | None = None
    error: str | None = None


def _scope_entries(scope: Scope) -> dict[str, Any]:
    """The scope as the plain dict it is at runtime: ASGI lets middleware add keys to it, but
    Litestar's scope TypedDicts name only Litestar's own."""
    return cast("dict[str, Any]", scope)


def auth_outcome(scope: Scope) -> AuthOutcome:
    """What authentication_middleware found for this request: anonymous when it did not run."""
    outcome: AuthOutcome | None = _scope_entries(scope).get(SCOPE_KEY)
    return outcome or AuthOutcome()


def _credential(scope: Scope) -> tuple[str, str] | None:
    """(kind, value) of the request's credential: ``bearer`` (value empty when the scheme is
    another) or ``key``; None when it sends none."""
    api_key = None
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return ("bearer", token.strip() if scheme.lower() == "bearer" else "")
        if name == b"x-api-key" and api_key is None:
            api_key = value.decode("latin-1").strip()
    return None if api_key is None else ("key", api_key)


class TokenOwnerCache:
    """What each token resolved to, for ``ttl_seconds``: without it every authenticated request
    costs a pool checkout and a query, which under load queue behind the runs' writes
    (bench/RESULTS.md). A logout here drops its entry at once; a logout, role change or deleted
    user in another server process takes effect within ``ttl_seconds``."""

    def __init__(self, ttl_seconds: float = 2.0, max_entries: int = 10_000) -> None:
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, TokenOwner | None]] = {}

    def get(self, user_id: str, jti: str) -> tuple[bool, TokenOwner | None]:
        """(found, owner): found is False when the database must be asked."""
        entry = self._entries.get((user_id, jti))
        if entry is None or time.monotonic() - entry[0] > self.ttl_seconds:
            return False, None
        return True, entry[1]

    def put(self, user_id: str, jti: str, owner: TokenOwner | None) -> None:
        if len(self._entries) >= self.max_entries:
            now = time.monotonic()
            self._entries = {k: v for k, v in self._entries.items() if now - v[0] <= self.ttl_seconds}
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
        self._entries[(user_id, jti)] = (time.monotonic(), owner)

    def forget(self, user_id: str, jti: str) -> None:
        self._entries.pop((user_id, jti), None)


async def authenticate(token: str, tokens: TokenService, sessions: async_sessionmaker[AsyncSession],
                       cache: TokenOwnerCache | None = None) -> AuthOutcome:
    try:
        claims = tokens.decode(token)
    except InvalidToken as exc:
        return AuthOutcome(error=str(exc))
    found, owner = cache.get(claims.sub, claims.jti) if cache is not None else (False, None)
    if not found:
        async with sessions() as session:
            owner = await UserRepository(session).token_owner(claims.sub, claims.jti)
        if cache is not None:
            cache.put(claims.sub, claims.jti, owner)
    if owner is None:
        return AuthOutcome(error="unknown user")
    if owner.revoked:
        return AuthOutcome(error="token revoked")
    return AuthOutcome(principal=Principal(owner.user_id, owner.name, Role(owner.role), claims.jti, claims.expires_at))


async def authenticate_key(key: str, sessions: async_sessionmaker[AsyncSession],
                           uses: KeyUseRecorder | None = None) -> AuthOutcome:
    if not looks_like_key(key):
        # Often a LangSmith key the SDK picked up from the environment: say what is expected.
        return AuthOutcome(error="invalid API key: Draftloop API keys start with dl_")
    checked = await check_key(key, sessions, uses)
    if checked.owner is None or checked.role is None:
        return AuthOutcome(error=checked.error)
    owner = checked.owner
    return AuthOutcome(principal=Principal(owner.user_id, owner.user_name, checked.role, "", owner.expires_at,
                                           api_key_id=owner.key_id))


def authentication_middleware(tokens: TokenService, cache: TokenOwnerCache | None = None,
                              key_uses: KeyUseRecorder | None = None) -> Any:
    def factory(app: ASGIApp) -> ASGIApp:
        async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] in ("http", "websocket"):
                credential = _credential(scope)
                if credential is None:
                    outcome = AuthOutcome()
                elif not credential[1]:
                    outcome = AuthOutcome(error="expected an Authorization: Bearer token" if credential[0] == "bearer"
                                          else "the X-Api-Key header is empty")
                else:
                    sessions = scope["app"].state["runtime"].sessions
                    kind, value = credential
                    outcome = (await authenticate_key(value, sessions, key_uses)
                               if kind == "key" or looks_like_key(value)
                               else await authenticate(value, tokens, sessions, cache))
                _scope_entries(scope)[SCOPE_KEY] = outcome
            await app(scope, receive, send)

        return middleware

    return factory


def required_role(handler: BaseRouteHandler, method: str, path_template: str, public_metrics: bool) -> Role | None:
    """The least role a request needs; None for a public route. ``path_template`` is the matched
    route's template (never the raw path), so only the schema routes themselves count as schema."""
    opt = handler.opt
    if opt.get("public") is True or (opt.get("public") == "metrics" and public_metrics):
        return None
    if path_template == SCHEMA_PATH or path_template.startswith(SCHEMA_PATH + "/"):
        return None
    # CORS preflights and Allow discovery carry no credentials by design and run no handler code.
    if method == "OPTIONS":
        return None
    if "role" in opt:
        return Role(opt["role"])
    return Role.VIEWER if method in READ_METHODS or opt.get("read_only") else Role.EDITOR


def access_guard(public_metrics: bool) -> Any:
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
        scope = connection.scope
        # A WebSocket scope has no method; its handshake is a GET.
        method = scope["method"] if scope["type"] == ScopeType.HTTP else "GET"
        needed = required_role(handler, method, scope.get("path_template", ""), public_metrics)
        if needed is None:
            return
        outcome = auth_outcome(connection.scope)
        if outcome.principal is None:
            if outcome.error is None:
                raise NotAuthorizedException(
                    detail="authentication required: send Authorization: Bearer <token> or X-Api-Key: <key>",
                    headers={"WWW-Authenticate": _CHALLENGE})
            raise NotAuthorizedException(
                detail=outcome.error,
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})
        if outcome.principal.role.rank < needed.rank:
            raise PermissionDeniedException(detail=f"needs the {needed.value} role; you are {outcome.principal.role.value}")

    return guard


def principal_of(request: Request[Any, Any, Any]) -> Principal:
    outcome = auth_outcome(request.scope)
    if outcome.principal is None:  # the guard lets no such request through; belt and braces
        raise NotAuthorizedException(detail="authentication required", headers={"WWW-Authenticate": _CHALLENGE})
    return outcome.principal


def optional_principal(request: Request[Any, Any, Any]) -> Principal | None:
    """On a public route: the caller, or None for an anonymous one. A token that was sent but
    is bad still gets a 401, so a client with an expired token learns it instead of silently
    seeing the anonymous view."""
    outcome = auth_outcome(request.scope)
    if outcome.error is not None:
        raise NotAuthorizedException(detail=outcome.error,
                                     headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_token"'})
    return outcome.principal


def _bad_login(status: int, field: str, message: str) -> ValidationException:
    return ValidationException(detail=f"{field}: {message}", status_code=status,
                               extra=[{"key": field, "message": message}])


def _json_kind(value: Any) -> str:
    """A value's JSON type, never the value: a credential sent in the wrong field stays unseen."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string" if value else "an empty string"
    return "a list" if isinstance(value, list) else "an object"


async def _credentials(request: Request[Any, Any, Any]) -> tuple[str, str]:
    """The user name and password of a login, from form fields or a JSON object. A body that
    cannot be read is a 400 and a field that is missing or not a text a 422, as on every other
    route; only wrong credentials are a 401."""
    raw = await request.body()
    if not raw.strip():
        raise _bad_login(400, "body", "is empty; send username and password as form fields or as a JSON object")
    content_type = request.content_type[0]
    if content_type == "application/json" or content_type.endswith("+json"):
        try:
            data = decode_json(raw)
        except SerializationException as exc:
            raise _bad_login(400, "body", not_json_message(exc)) from None
        if not isinstance(data, dict):
            raise _bad_login(422, "body", f"must be a JSON object with username and password, got {_json_kind(data)}")
    else:
        data = dict(await request.form())
    values = []
    for name in ("username", "password"):
        value = data.get(name)
        if value is None and name not in data:
            raise _bad_login(422, name, "is required")
        if not isinstance(value, str) or not value:
            raise _bad_login(422, name, f"must be a non-empty string, got {_json_kind(value)}")
        values.append(value)
    return values[0], values[1]


def _too_many_logins(wait: int) -> TooManyRequestsException:
    return TooManyRequestsException(detail=f"too many failed logins; retry in {wait}s", headers={"Retry-After": str(wait)})


class AuthController(Controller):
    path = "/api/auth"
    tags = ["auth"]

    @post("/token", status_code=200, opt={"public": True},
          summary="Log in (OAuth2 password flow: form or JSON username/password); a bearer token")
    async def token(self, request: Request[Any, Any, Any], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                    tokens: NamedDependency[TokenService],
                    login_limiter: NamedDependency[LoginRateLimiter]) -> Response[dict[str, Any]]:
        client = request.client.host if request.client else "unknown"
        # Whatever stops this request short of a token (rate limit, missing fields, wrong password)
        # is a failed login in the audit trail.
        audit_change(request, action="auth.login_failed")
        # An address already over its limit is refused before its body is even read.
        if wait := login_limiter.retry_after(client):
            raise _too_many_logins(wait)
        username, password = await _credentials(request)
        try:
            attempt = login_limiter.begin(client, username)
        except LoginRateLimited as exc:
            raise _too_many_logins(exc.retry_after) from None
        try:
            async with sessions() as session:
                user = await UserRepository(session).by_name(username)
            if not await verify_password(user.password_hash if user else None, password) or user is None:
                login_limiter.failed(attempt)
                # Never the password, and an unknown name is not logged either: it is often a
                # password typed into the wrong field. The client sees the same answer for both.
                log.warning("failed login for %s from %s", repr(user.name) if user else "an unknown user name", client)
                if user is not None:
                    audit_change(request, resource_id=user.id, user=user.name)
                raise NotAuthorizedException(detail="wrong user name or password",
                                             headers={"WWW-Authenticate": _CHALLENGE})
            login_limiter.succeeded(attempt)
        finally:
            # A lookup that failed or a cancelled request has no outcome: its slot is freed, not
            # counted (a no-op once failed or succeeded settled it).
            login_limiter.release(attempt)
        token, claims = tokens.issue(user.id, user.role)
        log.info("login: %s (%s) from %s", user.name, user.role, client)
        audit_change(request, action="auth.login", resource_id=user.id, actor=AuditActor(user.id, user.name, user.role),
                     after={"expires_at": claims.expires_at})
        return Response({"access_token": token, "token_type": "bearer", "expires_in": tokens.ttl_seconds,
                         "role": user.role},
                        headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    @post("/logout", status_code=200, opt={"role": Role.VIEWER.value}, summary="Revoke the token sent with this request")
    async def logout(self, request: Request[Any, Any, Any], sessions: NamedDependency[async_sessionmaker[AsyncSession]],
                     token_owners: NamedDependency[TokenOwnerCache]) -> dict[str, str]:
        principal = principal_of(request)
        if principal.api_key_id is not None or principal.expires_at is None:
            raise ValidationException(detail=f"this request came with an API key, not a token: revoke the key with "
                                             f"DELETE /api/keys/{principal.api_key_id}", status_code=400)
        async with sessions.begin() as session:
            await UserRepository(session).revoke(principal.jti, principal.user_id, principal.expires_at)
        token_owners.forget(principal.user_id, principal.jti)
        audit_change(request, resource_id=principal.user_id, after={"revoked_until": principal.expires_at})
        return {"status": "logged out"}


def security_headers(settings: ServiceSettings) -> Any:
    """A before-send hook: the usual hardening headers on every response, error pages included."""
    common = [(b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
              (b"referrer-policy", b"no-referrer")]
    if settings.hsts_seconds:
        common.append((b"strict-transport-security", f"max-age={settings.hsts_seconds}; includeSubDomains".encode()))
    # JSON and SSE need no script, style or frame. The schema docs pages run Swagger UI from this
    # origin only (app/http/schema_docs.py): its page starts it with an inline script, and it
    # draws with inline styles and data: images.
    api_csp = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
    docs_csp = (b"content-security-policy",
                b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
                b"img-src 'self' data:; frame-ancestors 'none'")

    async def hook(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start":
            return
        headers = [*message.get("headers", []), *common]
        path = scope.get("path", "")
        docs = path in (SCHEMA_PATH, DOCS_ALIAS) or path.startswith(SCHEMA_PATH + "/")
        headers.append(docs_csp if docs else api_csp)
        message["headers"] = headers

    return hook
