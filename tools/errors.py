"""Typed failures shared by the outbound clients (Serper, Pexels, the page reader).

Callers such as the research node turn these into warnings, so each one carries enough to say
what went wrong without a traceback — and none of them may ever carry an API key.
"""

from __future__ import annotations

from collections.abc import Iterable

REDACTED = "[redacted]"
# A run of this many characters of a secret anywhere in a text is redacted as if the whole
# secret were there: upstreams echo headers cut, masked or split across fields.
MIN_FRAGMENT = 6
# At either end of a text, which is where a cut falls, a shorter piece of a secret is redacted
# too: the end that could begin a secret, the start that could finish one.
MIN_EDGE_FRAGMENT = 3


def _fragment_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """Where runs of at least MIN_FRAGMENT characters of ``secret`` appear in ``text``."""
    pieces = {secret[i:i + MIN_FRAGMENT] for i in range(len(secret) - MIN_FRAGMENT + 1)}
    spans: list[tuple[int, int]] = []
    for start in range(len(text) - MIN_FRAGMENT + 1):
        if text[start:start + MIN_FRAGMENT] in pieces:
            spans.append((start, start + MIN_FRAGMENT))
    return spans


def _edge_spans(text: str, secret: str) -> list[tuple[int, int]]:
    """A secret's beginning at the end of ``text``, and its ending at the start."""
    spans = []
    for size in range(min(len(secret), len(text)), MIN_EDGE_FRAGMENT - 1, -1):
        if text.endswith(secret[:size]):
            spans.append((len(text) - size, len(text)))
            break
    for size in range(min(len(secret), len(text)), MIN_EDGE_FRAGMENT - 1, -1):
        if text.startswith(secret[-size:]):
            spans.append((0, size))
            break
    return spans


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` without any secret, whole or in part (see MIN_FRAGMENT, MIN_EDGE_FRAGMENT):
    for text from an upstream that may end up in logs, task warnings or errors."""
    keys = sorted({secret for secret in secrets if secret}, key=len, reverse=True)
    for key in keys:
        text = text.replace(key, REDACTED)
    spans: list[tuple[int, int]] = []
    for key in keys:
        if len(key) >= MIN_FRAGMENT:
            spans += _fragment_spans(text, key)
        if len(key) >= MIN_EDGE_FRAGMENT:
            spans += _edge_spans(text, key)
    merged: list[list[int]] = []
    for start, stop in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    parts, end = [], 0
    for start, stop in merged:
        parts += [text[end:start], REDACTED]
        end = stop
    parts.append(text[end:])
    return "".join(parts)


def summarise(text: str, secrets: Iterable[str | None], limit: int) -> str:
    """Upstream text for a message: redacted first, then cut to ``limit`` characters. Cutting
    first let the part of a key before the cut through, since only whole keys matched."""
    keys = [secret for secret in secrets if secret]
    # Only the head can be shown: a key that starts in it ends within the longest key's length.
    window = text[: limit + 2 * max((len(key) for key in keys), default=0)]
    cleaned = " ".join(redact(window, keys).split())
    if len(cleaned) <= limit and len(window) == len(text):
        return cleaned
    return cleaned[: limit - 1] + "…"



class ToolError(Exception):
    """Base for every failure an outbound client reports."""


class NotConfiguredError(ToolError):
    """The client has no API key, so it refuses before touching the network."""

    def __init__(self, service: str, env_var: str) -> None:
        super().__init__(f"{service} is not configured: set the {env_var} environment variable")
        self.service = service
        self.env_var = env_var


class RateLimitedError(ToolError):
    """The upstream kept answering 429 after every retry allowed."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamError(ToolError):
    """The upstream failed: a 5xx after retries, a rejected request, or a transport failure."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class UpstreamTimeoutError(UpstreamError):
    """The upstream did not answer within the per-call timeout."""


class BadResponseError(ToolError):
    """The upstream answered 2xx but with a body we cannot use (malformed JSON, wrong shape)."""


class UnsafeImageURLError(ToolError, ValueError):
    """An image URL (or a redirect hop) that is not https or not on an allowed image host.

    It is a ValueError too because it is a refusal of the caller's input, not an upstream fault.
    """


class ImageRejectedError(ToolError):
    """The image server answered, but with something we refuse to store."""


class ImageTooLargeError(ImageRejectedError):
    """The image exceeds the configured byte cap (declared or actually streamed)."""


class UnsupportedImageTypeError(ImageRejectedError):
    """The Content-Type is not one of the raster image types we store."""


class UnsafePageURLError(ToolError, ValueError):
    """A page URL (or a redirect hop) that is not https, carries credentials, or whose host
    resolves to an address that is not public (loopback, private, link-local, reserved...)."""


class PageRejectedError(ToolError):
    """The page server answered, but with something that is not readable text."""
