"""One bounded-retry send helper shared by the outbound clients.

The caller owns the `httpx.AsyncClient` (connection pooling, lifetime); this module only decides
when a failure is worth another attempt, how long to wait, and which typed error to raise when the
budget is spent. Every call passes an explicit timeout because a research step that hangs forever
is worse than one that fails.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timezone
from typing import Any

import httpx

from tools.errors import BadResponseError, RateLimitedError, UpstreamError, UpstreamTimeoutError, redact, summarise

SleepFn = Callable[[float], Awaitable[None]]

# Failures where the request may not have been processed, so trying again can help. Other
# transport errors (unsupported scheme, local protocol misuse) would fail identically every time.
_RETRYABLE_TRANSPORT_ERRORS = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

_DETAIL_CHARS = 200


@dataclass(frozen=True)
class RetryPolicy:
    """How many extra attempts to make and how long to wait between them."""

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 10.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if self.base_delay < 0 or self.max_delay < 0 or self.jitter < 0:
            raise ValueError("base_delay, max_delay and jitter must be >= 0")

    def backoff(self, retry_index: int) -> float:
        """Exponential delay for the n-th retry (0-based), jittered so clients do not stampede."""
        delay = min(self.max_delay, self.base_delay * (2**retry_index))
        return min(self.max_delay, delay * (1 + random.uniform(0, self.jitter)))

    def wait_for(self, retry_index: int, retry_after: float | None) -> float:
        """The server's Retry-After wins when given, but never beyond max_delay."""
        if retry_after is not None:
            return min(retry_after, self.max_delay)
        return self.backoff(retry_index)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date); None if unusable."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _detail(response: httpx.Response, streamed: bool, secrets: Sequence[str]) -> str:
    # A streamed body may be huge (an image); only already-read bodies are quoted.
    if streamed:
        return ""
    snippet = summarise(response.text, secrets, _DETAIL_CHARS)
    return f": {snippet}" if snippet else ""


async def send_with_retry(
    http: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    service: str,
    timeout: httpx.Timeout,
    policy: RetryPolicy,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str | int] | None = None,
    json: Any = None,
    extensions: Mapping[str, Any] | None = None,
    stream: bool = False,
    follow_redirects: bool = False,
    sleep: SleepFn = asyncio.sleep,
    secrets: Sequence[str] = (),
    key_env_var: str | None = None,
) -> httpx.Response:
    """Send a request, retrying 429/5xx/transient transport failures; return any status < 400.

    With stream=True the caller must close the returned response. Responses that are retried or
    turned into errors are always closed here.
    """
    label = f"{service} {method.upper()} {httpx.URL(url).path}"
    retry_index = 0
    while True:
        request = http.build_request(method, url, headers=headers, params=params, json=json, timeout=timeout,
                                     extensions=dict(extensions) if extensions else None)
        retry_after: float | None = None
        try:
            response = await http.send(request, stream=stream, follow_redirects=follow_redirects)
        except httpx.TimeoutException as exc:
            failure: Exception = UpstreamTimeoutError(
                redact(f"{label} timed out ({type(exc).__name__})", secrets)
            )
        except _RETRYABLE_TRANSPORT_ERRORS as exc:
            failure = UpstreamError(redact(f"{label} failed: {type(exc).__name__}: {exc}", secrets))
        except httpx.HTTPError as exc:
            raise UpstreamError(redact(f"{label} failed: {type(exc).__name__}: {exc}", secrets)) from exc
        else:
            status = response.status_code
            if status < 400:
                return response
            detail = _detail(response, stream, secrets)
            await response.aclose()
            if status == 429:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                failure = RateLimitedError(f"{label} was rate limited (HTTP 429){detail}", retry_after)
            elif status >= 500:
                retry_after = parse_retry_after(response.headers.get("retry-after"))
                failure = UpstreamError(f"{label} failed with HTTP {status}{detail}", status)
            elif status in (401, 403):
                hint = f"; check {key_env_var}" if key_env_var else ""
                raise UpstreamError(f"{service} rejected the API key (HTTP {status}){hint}", status)
            else:
                raise UpstreamError(f"{label} was refused with HTTP {status}{detail}", status)

        if retry_index >= policy.max_retries:
            attempts = retry_index + 1
            suffix = f" (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
            failure.args = (f"{failure.args[0]}{suffix}",)
            raise failure
        await sleep(policy.wait_for(retry_index, retry_after))
        retry_index += 1


def read_json(response: httpx.Response, label: str) -> Any:
    """Decode a successful JSON body, or raise a typed error naming the endpoint."""
    if not response.is_success:
        raise UpstreamError(f"{label} answered with unexpected HTTP {response.status_code}", response.status_code)
    try:
        return response.json()
    except ValueError as exc:
        # JSONDecodeError and UnicodeDecodeError are both ValueErrors.
        raise BadResponseError(f"{label} returned a body that is not valid JSON") from exc
