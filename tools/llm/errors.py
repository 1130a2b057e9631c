"""The chat models' failure types, and the URL scrubbing their messages rely on.

Two families on purpose: a ModelProviderError needs a human (start Ollama, pull a model, fix the
configuration) and retrying it only repeats the failure; a ModelCallError is one failed call that
may pass on retry, which the graph's retry policy decides from its `transient` flag.
"""

from __future__ import annotations


class ModelProviderError(RuntimeError):
    """A chat model cannot be used; the message says what to do about it."""


class UnknownProviderError(ModelProviderError):
    pass


class ProviderConfigError(ModelProviderError):
    pass


class OllamaUnreachableError(ModelProviderError):
    pass


class OllamaModelNotFoundError(ModelProviderError):
    pass


class EmbeddedModelMissingError(ModelProviderError):
    pass


class EmbeddedStartError(ModelProviderError):
    pass


class ModelCallError(RuntimeError):
    """One model call failed in a way that may pass on retry (`transient` says whether).

    Deliberately not a ModelProviderError: those need a human (start Ollama, pull a model,
    fix the configuration) and retrying them only repeats the failure. Deliberately not an
    OSError (TimeoutError, ConnectionError) either: code that resumes runs whose database went
    away must never mistake a model that does not answer for one, or it resumes such a run
    without end. The graph's retry policy reads `transient` instead.

    `summary` and `hint` are for the people who read a failed task: what happened and what to
    do, without the server's address or the transport's exception text (those go to the log).
    """

    transient = True
    # HTTP requests the client made for this call before giving up (its own retries included).
    client_tries = 1

    def __init__(self, message: str, *, summary: str, hint: str) -> None:
        super().__init__(message)
        self.summary = summary
        self.hint = hint


class ModelTimeoutError(ModelCallError):
    """The model server did not answer (connect or a read) within LLM_TIMEOUT."""

    def __init__(self, message: str, *, server: str, timeout: float | None) -> None:
        within = f"within {timeout:g} s (LLM_TIMEOUT)" if timeout else "within LLM_TIMEOUT"
        super().__init__(message, summary=f"the model did not answer {within}",
                         hint=f"check that {server} is running, or raise LLM_TIMEOUT if the model is just slow")
        self.timeout = timeout


class ModelTransportError(ModelCallError):
    """The connection broke mid-call (reset, truncated stream)."""

    def __init__(self, message: str, *, server: str) -> None:
        super().__init__(message, summary=f"the connection to {server} broke off mid-answer",
                         hint=f"check that {server} is running and reachable")


class ModelResponseError(ModelCallError):
    """The model server answered with an error status; 429 and 5xx are worth a retry."""

    def __init__(self, message: str, status_code: int, *, server: str = "the model server") -> None:
        if status_code == 429:
            hint = f"{server} is turning requests away: try again later, or run fewer tasks at once"
        elif status_code >= 500:
            hint = f"check {server}'s log for why it failed"
        else:
            hint = "check the model settings (provider, model name, key)"
        super().__init__(message, summary=f"{server} answered HTTP {status_code}", hint=hint)
        self.status_code = status_code
        self.transient = status_code == 429 or status_code >= 500


def without_credentials(url: str) -> str:
    """``url`` without a user name or password: messages that name a server reach logs, /ready
    and task errors, and an OLLAMA_BASE_URL may carry a proxy's credentials."""
    scheme, separator, rest = url.partition("://")
    if not separator:
        return url
    authority, slash, path = rest.partition("/")
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
