"""Typed failures shared by the outbound clients (Serper, Pexels, the page reader).

Callers such as the research node turn these into warnings, so each one carries enough to say
what went wrong without a traceback — and none of them may ever carry an API key.
"""

from __future__ import annotations


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
