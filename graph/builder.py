"""Wires the nodes into the content graph.

`build_graph(checkpointer, store)` is what the service and the CLI compile with their own saver
and store. The module-level `graph` is what langgraph.json names: compiled without either
(`langgraph dev` brings its own and rejects ours; without a store the draft node remembers nothing); its nodes build their dependencies from
the environment when the run's context carries none.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from langgraph.store.base import BaseStore
from langgraph.types import RetryPolicy

from graph.context import DraftloopContext
from graph.nodes.answer import answer, unsupported
from graph.nodes.approval import approval
from graph.nodes.critique import after_critique, critique
from graph.nodes.draft import draft
from graph.nodes.finalize import finalize
from graph.nodes.research import research
from graph.nodes.route_intent import after_intent, route_intent
from graph.state import InputState, State
from tools.errors import UpstreamError
from tools.llm.errors import ModelProviderError


def _retryable(exc: Exception) -> bool:
    """Model servers and networks blip; errors that need a person (a model not pulled, a bad
    setting) would only repeat, so they fail at once."""
    if getattr(exc, "transient", False):
        return True
    if isinstance(exc, ModelProviderError):
        return False
    return isinstance(exc, (UpstreamError, ConnectionError, TimeoutError))


MODEL_RETRY = RetryPolicy(max_attempts=3, initial_interval=0.5, backoff_factor=2.0, retry_on=_retryable)
# Research retries within each client and turns failures into warnings; approval only waits.
RETRY_POLICIES: dict[str, RetryPolicy] = {
    node: MODEL_RETRY for node in ("route_intent", "draft", "critique", "finalize", "answer")
}


def tries_before_failure(node: str | None, exc: BaseException) -> int:
    """How many times ``node`` ran before ``exc`` failed it for good: its retry policy's
    attempts when that policy retries such a failure, else once. A failed task's error says it."""
    policy = RETRY_POLICIES.get(node or "")
    if policy is None or not isinstance(exc, Exception) or not _retryable(exc):
        return 1
    return policy.max_attempts


# The compiled content graph: its state, its runtime context, what a caller sends, what it returns.
ContentGraph = CompiledStateGraph[State, DraftloopContext, InputState, State]


def build_graph(checkpointer: Any = None, store: BaseStore | None = None) -> ContentGraph:
    builder = StateGraph(State, context_schema=DraftloopContext, input_schema=InputState)
    builder.add_node("route_intent", route_intent, retry_policy=RETRY_POLICIES["route_intent"])
    builder.add_node("research", research)
    builder.add_node("draft", draft, retry_policy=RETRY_POLICIES["draft"])  # type: ignore[call-overload]
    builder.add_node("critique", critique, retry_policy=RETRY_POLICIES["critique"])
    # LangGraph's node protocols (langgraph/graph/_node.py) have no variant for a node taking both
    # `config` and `runtime`, though LangGraph passes both by name: these nodes need the run's config
    # (its task and thread ids) as well as its context.
    builder.add_node("approval", approval, destinations=("finalize", "draft"))  # type: ignore[call-overload]
    builder.add_node("finalize", finalize, retry_policy=RETRY_POLICIES["finalize"])  # type: ignore[call-overload]
    builder.add_node("answer", answer, retry_policy=RETRY_POLICIES["answer"])  # type: ignore[call-overload]
    builder.add_node("unsupported", unsupported)  # type: ignore[call-overload]

    builder.add_edge(START, "route_intent")
    builder.add_conditional_edges(
        "route_intent",
        after_intent,
        {"research": "research", "draft": "draft", "answer": "answer", "unsupported": "unsupported"},
    )
    builder.add_edge("research", "draft")
    builder.add_edge("draft", "critique")
    builder.add_conditional_edges(
        "critique", after_critique,
        {"draft": "draft", "research": "research", "approval": "approval", "finalize": "finalize"},
    )
    builder.add_edge("finalize", END)
    builder.add_edge("answer", END)
    builder.add_edge("unsupported", END)
    return builder.compile(checkpointer=checkpointer, store=store, name="draftloop")


graph = build_graph()
