"""One JSON error shape for every failure: {"status", "error", "detail", "fields"?}.

Bad input gets a 4xx naming the field; anything unexpected is a 500 with no stack trace. A body
that cannot be read (empty where one is needed, not JSON) is a 400; a JSON body that breaks its
model's rules (a wrong type, a value out of bounds, a missing or unknown field) is a 422 whose
messages name each field and its rule (app/http/body_errors.py).
"""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response

# Private, but the one carrier of a body model's pydantic errors whole (type, input, bounds):
# the ValidationException Litestar raises keeps only their messages.
from litestar._signature.types import ExtendedMsgSpecValidationError
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from app.http.body_errors import body_model, field_errors
from storage.errors import storage_unreachable

log = logging.getLogger("draftloop.http")

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
          415: "unsupported_media_type", 422: "unprocessable", 429: "rate_limited", 503: "unavailable"}


class ConflictError(HTTPException):
    status_code = 409


class NotFoundError(HTTPException):
    status_code = 404


def error_body(status: int, detail: str, fields: list[dict[str, str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"status": status, "error": _CODES.get(status, "error"), "detail": detail}
    if fields:
        body["fields"] = fields
    return body


def _fields(extra: Any) -> list[dict[str, str]]:
    if not isinstance(extra, list):
        return []
    fields = []
    for item in extra:
        if isinstance(item, dict):
            fields.append({"field": str(item.get("key") or "body"), "message": str(item.get("message", ""))})
    return fields


def not_json_message(exc: SerializationException) -> str:
    reason = str(exc.detail or exc).removeprefix("JSON is malformed: ")
    return f"is not valid JSON: {reason[:1].lower()}{reason[1:]}"


def validation_error_body(request: Request[Any, Any, Any], exc: HTTPException) -> tuple[int, list[dict[str, str]]]:
    """The status and the fields of a refused request: a body that cannot be read is a 400 on
    ``body``; a JSON body that breaks its model's rules a 422 naming each field and its rule;
    anything else (query parameters, a handler's own refusal) as raised."""
    cause = exc.__cause__
    if isinstance(cause, SerializationException):
        return 400, [{"field": "body", "message": not_json_message(cause)}]
    if isinstance(cause, ExtendedMsgSpecValidationError):
        model = body_model(request.route_handler.parsed_data_field.annotation
                           if request.route_handler.parsed_data_field is not None else None)
        return 422, field_errors(model, cause.errors)
    fields = _fields(exc.extra)
    if any(field["field"] == "data" for field in fields):
        # Litestar's name for the whole body: a route that needs one got none, or JSON null.
        return 400, [{"field": "body", "message": "is empty; send a JSON object (the OpenAPI schema at /schema "
                                                  "describes it)"}]
    return exc.status_code, fields


def validation_response(request: Request[Any, Any, Any], exc: HTTPException,
                        status: int | None = None) -> Response[dict[str, Any]]:
    """The error response of a refused request; ``status`` overrides the one it would get."""
    own_status, fields = validation_error_body(request, exc)
    status = status or own_status
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) if fields else str(exc.detail)
    return Response(error_body(status, detail, fields), status_code=status)


def http_exception_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[dict[str, Any]]:
    status = exc.status_code
    if isinstance(exc, ValidationException) or isinstance(exc.__cause__, SerializationException):
        return validation_response(request, exc)
    return Response(error_body(status, str(exc.detail)), status_code=status, headers=exc.headers)


# Seconds a client should wait before retrying while the database is out of reach: a pool
# reconnects at the next checkout, so the first retry after the database is back succeeds.
DATABASE_RETRY_AFTER_SECONDS = 2
DATABASE_UNAVAILABLE = "the database is busy or unreachable; retry shortly"


def database_unavailable_response(request: Request[Any, Any, Any], exc: BaseException) -> Response[dict[str, Any]]:
    """A locked or unreachable database is the server's temporary state, not a bug: 503, retry.
    The driver's words (addresses, SQL) stay in the log."""
    log.warning("database unavailable on %s %s: %s: %s", request.method, request.url.path,
                type(exc).__name__, exc)
    return Response(error_body(503, DATABASE_UNAVAILABLE), status_code=503,
                    headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)})


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    # Litestar picks a handler by the exception's type, and an unreachable database shows up as
    # many types (the drivers' own, SQLAlchemy's, a bare OSError from a refused connect), so
    # the one classifier storage uses for runs decides here too.
    if storage_unreachable(exc):
        return database_unavailable_response(request, exc)
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return Response(error_body(500, "internal error"), status_code=HTTP_500_INTERNAL_SERVER_ERROR)


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    HTTPException: http_exception_handler,
    Exception: internal_error_handler,
}
