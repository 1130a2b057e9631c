"""URLs from outside checked before they are fetched, and redirects followed hop by hop.

The page reader and the Pexels image download fetch URLs that come from outside (search results,
API answers). Both refuse what is not https (plain http only for test hosts), has no host or
carries credentials, then add their own rules (public addresses only; allowed image hosts only).
Neither lets httpx follow a redirect, since a Location could point anywhere: each hop's URL goes
through the caller's check first, and the number of hops is bounded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TypeVar

import httpx

from tools.errors import ToolError, UpstreamError

T = TypeVar("T")


def normalise_hosts(hosts: Iterable[str] | None) -> frozenset[str]:
    """Host names as check_https_url reports them: lower case, no trailing dot."""
    return frozenset(h.strip().lower().rstrip(".") for h in hosts or () if h.strip())


def check_https_url(url: str, *, what: str, refusal: type[ToolError],
                    insecure_hosts: frozenset[str]) -> tuple[httpx.URL, str]:
    """The parsed URL and its host (lower case, no trailing dot), or ``refusal`` naming ``what``
    ("page", "image") when it is not a valid https URL with a host and without credentials."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise refusal(f"{what} URL is not a valid URL") from None
    scheme = parsed.scheme.lower()
    host = parsed.host.lower().rstrip(".")
    if not host:
        raise refusal(f"{what} URL has no host")
    if parsed.userinfo:
        raise refusal(f"{what} URL must not carry credentials")
    if scheme != "https" and not (scheme == "http" and host in insecure_hosts):
        raise refusal(f"{what} URL must use https, got {scheme or 'no'} scheme")
    return parsed, host


async def follow_checked_redirects(
    target: httpx.URL,
    *,
    send: Callable[[httpx.URL], Awaitable[httpx.Response]],
    check: Callable[[str], httpx.URL],
    handle: Callable[[httpx.Response, httpx.URL], Awaitable[T]],
    what: str,
    max_redirects: int,
) -> T:
    """``send`` a streamed request to ``target``; on a redirect, ``check`` the Location and go
    again; else ``handle`` the response. Every response is closed before the next hop."""
    for _hop in range(max_redirects + 1):
        response = await send(target)
        try:
            if response.is_redirect:
                location = response.headers.get("location")
                if not location:
                    raise UpstreamError(f"{what} redirect without a Location", response.status_code)
                # Relative to the URL that was asked for, not an address it was fetched from.
                target = check(str(target.join(location)))
                continue
            return await handle(response, target)
        finally:
            await response.aclose()
    raise UpstreamError(f"{what} exceeded {max_redirects} redirects")
