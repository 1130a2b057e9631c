"""LangGraph API store: the long-term memory items (storage/store.py) behind langgraph-api's
``/store`` routes, with its request and response shapes and status codes.

Authorisation is by role, as on every route: reads (GET, and the search and namespace listing
POSTs) need a viewer, puts and deletes an editor. Namespaces are not scoped per user, as in
langgraph-api without a custom auth handler: every signed-in user sees every namespace (the
graph keeps each user's memory under ``("draftloop", <user id>, ...)``, graph/memory.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal

from langgraph.store.base import BaseStore
from litestar import Controller, Request, Response, delete, get, post, put
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromQuery, JSONBody
from pydantic import AfterValidator, Field

from app.audit_log import audit_change
from app.graph_runtime import GraphRuntime
from app.http.lg_common import LANGGRAPH_EXCEPTION_HANDLERS, unprocessable
from app.http.lg_schemas import MAX_OFFSET, MAX_PAGE, LangGraphBody, SearchFilter

# The store's comparison operators (langgraph.store.base): a filter value that is an object
# must use only these; the stores raise on any other.
FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})
MAX_LABELS = 32
MAX_LABEL_LENGTH = 255
MAX_KEY_LENGTH = 1024
MAX_DEPTH = 100


def _labels(value: list[str] | None) -> list[str] | None:
    """langgraph-api's rule: each label a non-empty string without periods (GET joins them with '.')."""
    for label in value or []:
        if not label or "." in label:
            raise ValueError(f"label {label!r} must be a non-empty string without periods")
    return value


def _operators(value: dict[str, Any] | None) -> dict[str, Any] | None:
    for field, condition in (value or {}).items():
        if isinstance(condition, dict):
            unknown = sorted(set(condition) - FILTER_OPERATORS)
            if unknown or not condition:
                raise ValueError(f"{field}: an object is a comparison, with operators among "
                                 f"{', '.join(sorted(FILTER_OPERATORS))}; got {unknown or 'none'}")
    return value


Label = Annotated[str, Field(max_length=MAX_LABEL_LENGTH)]
Namespace = Annotated[list[Label], Field(max_length=MAX_LABELS), AfterValidator(_labels)]
Key = Annotated[str, Field(max_length=MAX_KEY_LENGTH)]


class StorePut(LangGraphBody):
    namespace: Annotated[Namespace, Field(min_length=1)]
    key: Key
    value: dict[str, Any]
    # This store keeps no vector index, so ``index`` changes nothing; accepted as langgraph-api does.
    index: Literal[False] | list[str] | None = None
    # Minutes; positive, and at most a year.
    ttl: Annotated[float, Field(gt=0, le=525_600)] | None = None


class StoreDelete(LangGraphBody):
    namespace: Namespace | None = None
    key: Key


class StoreSearch(LangGraphBody):
    namespace_prefix: Namespace | None = None
    filter: Annotated[SearchFilter, AfterValidator(_operators)] = None
    limit: int = Field(default=10, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)
    query: str | None = None
    refresh_ttl: bool | None = None


class StoreNamespaces(LangGraphBody):
    prefix: Namespace | None = None
    suffix: Namespace | None = None
    max_depth: int | None = Field(default=None, ge=1, le=MAX_DEPTH)
    limit: int = Field(default=100, ge=1, le=MAX_PAGE)
    offset: int = Field(default=0, ge=0, le=MAX_OFFSET)


def namespace_of_query(text: str) -> tuple[str, ...]:
    """A GET's ``namespace`` query parameter: the labels joined with '.'."""
    labels = text.split(".")
    if len(labels) > MAX_LABELS:
        raise unprocessable("namespace", f"at most {MAX_LABELS} labels")
    for label in labels:
        if not label:
            raise unprocessable("namespace", "labels joined with '.', each non-empty")
        if len(label) > MAX_LABEL_LENGTH:
            raise unprocessable("namespace", f"each label at most {MAX_LABEL_LENGTH} characters")
    return tuple(labels)


def item_id(namespace: Sequence[str], key: str) -> str:
    """The audit trail's name for an item."""
    return ".".join([*namespace, key])


class StoreController(Controller):
    path = "/store"
    tags = ["store"]
    exception_handlers = LANGGRAPH_EXCEPTION_HANDLERS

    @put("/items", status_code=204, opt={"audit_action": "store.put"}, summary="Store or replace an item")
    async def put_item(self, request: Request[Any, Any, Any], runtime: NamedDependency[GraphRuntime],
                       data: JSONBody[StorePut]) -> None:
        audit_change(request, resource_id=item_id(data.namespace, data.key))
        await runtime.store.aput(tuple(data.namespace), data.key, data.value,
                                 index=data.index, ttl=data.ttl)

    @get("/items", summary="An item by namespace and key (null when there is none)")
    async def get_item(self, runtime: NamedDependency[GraphRuntime], namespace: FromQuery[str] = "",
                       key: FromQuery[str | None] = None,
                       refresh_ttl: FromQuery[bool | None] = None) -> Response[dict[str, Any] | None]:
        labels = namespace_of_query(namespace)
        if not key:
            # langgraph-api's status for a missing key (its other refusals are 422s); not a
            # ValidationException, which these routes' handler turns into a 422.
            raise ClientException(detail="key: is required", status_code=400,
                                  extra=[{"key": "key", "message": "is required"}])
        if len(key) > MAX_KEY_LENGTH:
            raise unprocessable("key", f"at most {MAX_KEY_LENGTH} characters")
        item = await runtime.store.aget(labels, key, refresh_ttl=refresh_ttl)
        return Response(item.dict() if item is not None else None)

    @delete("/items", status_code=204, opt={"audit_action": "store.delete"}, summary="Delete an item")
    async def delete_item(self, request: Request[Any, Any, Any], runtime: NamedDependency[GraphRuntime],
                          data: JSONBody[StoreDelete]) -> None:
        namespace = tuple(data.namespace or ())
        if not namespace:
            raise unprocessable("namespace", "must name at least one label")
        audit_change(request, resource_id=item_id(namespace, data.key))
        await runtime.store.adelete(namespace, data.key)

    @post("/items/search", status_code=200, opt={"read_only": True},
          summary="Items under a namespace prefix, newest first, filtered by value")
    async def search_items(self, runtime: NamedDependency[GraphRuntime],
                           data: JSONBody[StoreSearch | None] = None) -> dict[str, Any]:
        body = data or StoreSearch()
        store: BaseStore = runtime.store
        items = await store.asearch(tuple(body.namespace_prefix or ()), query=body.query, filter=body.filter,
                                    limit=body.limit, offset=body.offset, refresh_ttl=body.refresh_ttl)
        return {"items": [item.dict() for item in items]}

    @post("/namespaces", status_code=200, opt={"read_only": True}, summary="The namespaces that hold items")
    async def list_namespaces(self, runtime: NamedDependency[GraphRuntime],
                              data: JSONBody[StoreNamespaces | None] = None) -> dict[str, Any]:
        body = data or StoreNamespaces()
        found = await runtime.store.alist_namespaces(
            prefix=tuple(body.prefix) if body.prefix else None, suffix=tuple(body.suffix) if body.suffix else None,
            max_depth=body.max_depth, limit=body.limit, offset=body.offset)
        return {"namespaces": [list(namespace) for namespace in found]}
