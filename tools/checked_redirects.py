"""Redirects followed hop by hop, each new URL checked before it is fetched.

The page reader and the Pexels image download fetch URLs that come from outside (search results,
API answers), so neither lets httpx follow a redirect: a Location could point anywhere. Each hop's
URL goes through the caller's own check first (public hosts only; allowed image hosts only), and
the number of hops is bounded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

from tools.errors import UpstreamError

T = TypeVar("T")


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
