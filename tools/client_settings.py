"""Settings of the outbound clients (Serper, Pexels, the page reader), declared once and read
through tools/settings_reader.py; it builds the clients from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from tools import pages, pexels, serper
from tools.pages import PageReader
from tools.pexels import PexelsClient
from tools.serper import SerperClient
from tools.settings_reader import (
    Placement,
    Setting,
    declared,
    float_setting,
    int_setting,
    optional_str_setting,
    read_declared,
    str_setting,
)

_RESEARCH: Placement = {"section": "Research", "read_by": "ClientSettings"}
SERPER_API_KEY = optional_str_setting(
    serper.KEY_ENV_VAR, "Serper key for web, news and shopping search. If it is unset, search is skipped with a "
    "warning.", **_RESEARCH)
SERPER_BASE_URL = str_setting("SERPER_BASE_URL", serper.DEFAULT_BASE_URL, "Serper endpoint.", **_RESEARCH)
SERPER_TIMEOUT = float_setting("SERPER_TIMEOUT", 15.0, "Seconds per Serper request (a positive number).",
                               positive=True, **_RESEARCH)
PEXELS_API_KEY = optional_str_setting(
    pexels.KEY_ENV_VAR, "Pexels key for image search. If it is unset, image search is skipped with a warning.",
    **_RESEARCH)
PEXELS_BASE_URL = str_setting("PEXELS_BASE_URL", pexels.DEFAULT_BASE_URL, "Pexels endpoint.", **_RESEARCH)
PEXELS_TIMEOUT = float_setting("PEXELS_TIMEOUT", 15.0, "Seconds per Pexels request (a positive number).",
                               positive=True, **_RESEARCH)
PEXELS_MAX_IMAGE_BYTES = int_setting(
    "PEXELS_MAX_IMAGE_BYTES", 10 * 1024 * 1024, "Byte cap for `PexelsClient.download_image` (10 MiB). The graph "
    "does not download images in this version.", positive=True, **_RESEARCH)
PAGE_TIMEOUT = float_setting(
    "PAGE_TIMEOUT", pages.DEFAULT_TIMEOUT, "Seconds for reading one page the research found (resolution, "
    "redirects and body together).", positive=True, **_RESEARCH)
PAGE_MAX_BYTES = int_setting(
    "PAGE_MAX_BYTES", pages.DEFAULT_MAX_BYTES, "Bytes of a page read at most (512 KiB, decompressed); the rest is "
    "not downloaded.", positive=True, **_RESEARCH)
CLIENT_SETTINGS: tuple[Setting[Any], ...] = (
    SERPER_API_KEY, SERPER_BASE_URL, SERPER_TIMEOUT, PEXELS_API_KEY, PEXELS_BASE_URL, PEXELS_TIMEOUT,
    PEXELS_MAX_IMAGE_BYTES, PAGE_TIMEOUT, PAGE_MAX_BYTES)


@dataclass(frozen=True)
class ClientSettings:
    serper_api_key: str | None = declared(SERPER_API_KEY)
    serper_base_url: str = declared(SERPER_BASE_URL)
    serper_timeout: float = declared(SERPER_TIMEOUT)
    pexels_api_key: str | None = declared(PEXELS_API_KEY)
    pexels_base_url: str = declared(PEXELS_BASE_URL)
    pexels_timeout: float = declared(PEXELS_TIMEOUT)
    pexels_max_image_bytes: int = declared(PEXELS_MAX_IMAGE_BYTES)
    page_timeout: float = declared(PAGE_TIMEOUT)
    page_max_bytes: int = declared(PAGE_MAX_BYTES)

    def __repr__(self) -> str:
        # Settings may be logged, keys may not.
        return (f"ClientSettings(serper_configured={self.serper_api_key is not None}, "
                f"pexels_configured={self.pexels_api_key is not None})")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ClientSettings:
        return cls(**read_declared(cls, env))

    def serper_client(self, http: httpx.AsyncClient) -> SerperClient:
        """A Serper client; without a key it is there but not configured."""
        return SerperClient(http, self.serper_api_key, base_url=self.serper_base_url, timeout=self.serper_timeout)

    def pexels_client(self, http: httpx.AsyncClient) -> PexelsClient:
        return PexelsClient(http, self.pexels_api_key, base_url=self.pexels_base_url, timeout=self.pexels_timeout,
                            max_image_bytes=self.pexels_max_image_bytes)

    def page_reader(self, http: httpx.AsyncClient) -> PageReader:
        return PageReader(http, timeout=self.page_timeout, max_bytes=self.page_max_bytes)
