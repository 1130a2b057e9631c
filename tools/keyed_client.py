"""What the outbound clients with an API key (Serper, Pexels) share about that key: whether one
is set, what to redact from text about their calls, a repr that never shows it, and the keyed
call itself (refused before any I/O when no key is set, retried, the key redacted from errors)."""

from __future__ import annotations

from typing import Any

import httpx

from tools.errors import NotConfiguredError
from tools.http_retry import RetryPolicy, SleepFn, send_with_retry


class KeyedClient:
    """Base of a client that holds ``_api_key`` (None when not configured), ``_base_url`` and the
    retrying transport's parts; subclasses name their service, key variable and key header."""

    _api_key: str | None
    _base_url: str
    _http: httpx.AsyncClient
    _timeout: httpx.Timeout
    _policy: RetryPolicy
    _sleep: SleepFn
    SERVICE: str
    KEY_ENV_VAR: str
    KEY_HEADER: str

    def __repr__(self) -> str:
        # Never show the key, even in a debugger or a log of the runtime context.
        return f"{type(self).__name__}(base_url={self._base_url!r}, configured={self.configured})"

    @property
    def configured(self) -> bool:
        return self._api_key is not None

    @property
    def secrets(self) -> tuple[str, ...]:
        """What to redact from any text about this client's calls (tools.errors.redact)."""
        return (self._api_key,) if self._api_key else ()

    async def _send_keyed(self, method: str, path: str, **request: Any) -> httpx.Response:
        """``method`` on ``path`` under the base URL with the key in its header (``request``:
        json or params for send_with_retry)."""
        if self._api_key is None:
            raise NotConfiguredError(self.SERVICE, self.KEY_ENV_VAR)
        return await send_with_retry(
            self._http, method, self._base_url + path, service=self.SERVICE, timeout=self._timeout,
            policy=self._policy, headers={self.KEY_HEADER: self._api_key, "Accept": "application/json"},
            sleep=self._sleep, secrets=(self._api_key,), key_env_var=self.KEY_ENV_VAR, **request)
