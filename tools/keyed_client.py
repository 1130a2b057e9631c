"""What the outbound clients with an API key (Serper, Pexels) share about that key: whether one
is set, what to redact from text about their calls, and a repr that never shows it."""

from __future__ import annotations


class KeyedClient:
    """Base of a client that holds ``_api_key`` (None when not configured) and ``_base_url``."""

    _api_key: str | None
    _base_url: str

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
