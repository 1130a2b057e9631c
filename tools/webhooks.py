"""Outbound webhooks: the URL rules, the signature, and one POST.

The rules are the page reader's (tools/pages.py): https only (plain http only for the hosts an
operator allows, for tests), no credentials in the URL, and a host that resolves only to public
addresses (allowed hosts may resolve to loopback or private ones). They are checked when a run
asks for a webhook and again at every send, and the POST goes to the address that was checked
(pinned), so a DNS answer that changes between the check and the connect cannot redirect it. No
redirect is followed: a 3xx is an answer like any other non-2xx.

The signature is HMAC-SHA256 over ``<timestamp>.<body>`` with the signing key, sent as
``X-Draftloop-Signature: t=<timestamp>,v1=<hex>`` (docs/webhooks.md shows how to verify it).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Iterable

import httpx

from tools.checked_urls import check_https_url, normalise_hosts
from tools.errors import ToolError
from tools.pages import is_public_address

SIGNATURE_HEADER = "X-Draftloop-Signature"
DELIVERY_HEADER = "X-Draftloop-Delivery"
EVENT_HEADER = "X-Draftloop-Event"
MAX_URL_LENGTH = 2048
_USER_AGENT = "Draftloop-Webhooks/1"


class UnsafeWebhookURLError(ToolError, ValueError):
    """A webhook URL these rules refuse; the message says why (safe to show the client)."""


def signature(key: bytes, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``<timestamp>.<body>``."""
    return hmac.new(key, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def signature_header(key: bytes, timestamp: int, body: bytes) -> str:
    return f"t={timestamp},v1={signature(key, timestamp, body)}"


class WebhookURLPolicy:
    """Which webhook URLs may be called. ``allowed_hosts`` (tests, a trusted internal receiver)
    may use plain http and resolve to non-public addresses."""

    def __init__(self, allowed_hosts: Iterable[str] | None = None) -> None:
        self.allowed_hosts = normalise_hosts(allowed_hosts)

    def check(self, url: str) -> tuple[httpx.URL, str]:
        """The parsed URL and its host, or UnsafeWebhookURLError: without resolving."""
        if len(url) > MAX_URL_LENGTH:
            raise UnsafeWebhookURLError(f"webhook URL is longer than {MAX_URL_LENGTH} characters")
        parsed, host = check_https_url(url, what="webhook", refusal=UnsafeWebhookURLError,
                                       insecure_hosts=self.allowed_hosts)
        return parsed.copy_with(fragment=None), host

    async def resolve(self, url: str) -> tuple[httpx.URL, str, str]:
        """(the URL to connect to, with the host replaced by the checked address; the Host
        header's value; the host name), or UnsafeWebhookURLError when the host does not resolve or resolves to
        an address that is not public."""
        parsed, host = self.check(url)
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            literal = ipaddress.ip_address(host.strip("[]"))
            addresses = [literal]
        except ValueError:
            try:
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except OSError as exc:
                raise UnsafeWebhookURLError(f"webhook host {host!r} does not resolve: {exc}") from exc
            addresses = [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]
        if not addresses:
            raise UnsafeWebhookURLError(f"webhook host {host!r} resolves to no address")
        if host not in self.allowed_hosts:
            refused = next((a for a in addresses if not is_public_address(a)), None)
            if refused is not None:
                raise UnsafeWebhookURLError(
                    f"webhook host {host!r} resolves to a non-public address ({refused}); "
                    "only hosts listed in WEBHOOK_ALLOW_HOSTS may")
        pinned = min(addresses, key=lambda a: a.version)
        return parsed.copy_with(host=str(pinned)), parsed.netloc.decode("ascii"), host


async def post_signed(http: httpx.AsyncClient, policy: WebhookURLPolicy, url: str, body: bytes, *, key: bytes,
                      timestamp: int, delivery_id: str, event: str, timeout: float) -> int:
    """POST ``body`` (JSON) to ``url``, signed, within ``timeout`` seconds all told; the answer's
    status code. Raises UnsafeWebhookURLError (the URL is refused now), httpx.HTTPError or
    TimeoutError (a transport failure)."""
    async with asyncio.timeout(timeout):
        target, host_header, host = await policy.resolve(url)
        headers = {
            "Host": host_header, "Content-Type": "application/json", "User-Agent": _USER_AGENT,
            SIGNATURE_HEADER: signature_header(key, timestamp, body), DELIVERY_HEADER: delivery_id,
            EVENT_HEADER: event,
            # The connection is keyed by the pinned address: never reuse it for another host.
            "Connection": "close",
        }
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        response = await http.post(str(target), content=body, headers=headers, extensions=extensions,
                                   timeout=httpx.Timeout(timeout), follow_redirects=False)
        await response.aclose()
        return response.status_code
