"""The webhook URL rules, the signature and the refusal when no signing key is set, without a
server (the e2e tests in tests/e2e/test_webhooks.py drive them through the API)."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from litestar.exceptions import ValidationException

from app.engine.webhooks import bounded_values
from app.http.webhook_checks import check_run_webhook, check_webhook
from app.webhook_settings import WebhookSettings
from tools.webhooks import UnsafeWebhookURLError, WebhookURLPolicy, signature_header

SECRET = "whsec-unit-0123456789abcdef0123456789abcdef"


def test_the_signature_header_is_the_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"run_id": "r"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert signature_header(SECRET.encode(), 1700000000, body) == f"t=1700000000,v1={expected}"


@pytest.mark.parametrize("url", ["https://127.0.0.1/hook", "https://[::ffff:10.0.0.1]/hook", "https://100.64.0.1/x",
                                 "https://0.0.0.0/hook", "https://224.0.0.1/hook"])
async def test_a_host_at_a_non_public_address_is_refused_unless_allowed(url: str) -> None:
    with pytest.raises(UnsafeWebhookURLError, match="non-public address"):
        await WebhookURLPolicy().resolve(url)


async def test_an_allowed_host_may_use_http_and_a_loopback_address() -> None:
    target, host_header, host = await WebhookURLPolicy(["127.0.0.1"]).resolve("http://127.0.0.1:8123/hook#frag")
    assert (str(target), host_header, host) == ("http://127.0.0.1:8123/hook", "127.0.0.1:8123", "127.0.0.1")
    with pytest.raises(UnsafeWebhookURLError, match="must use https"):
        WebhookURLPolicy(["127.0.0.1"]).check("http://127.0.0.2/hook")


def test_a_url_past_the_length_limit_is_refused() -> None:
    with pytest.raises(UnsafeWebhookURLError, match="longer than"):
        WebhookURLPolicy().check("https://example.com/" + "a" * 3000)


async def test_a_webhook_is_refused_with_422_when_no_signing_key_is_set() -> None:
    with pytest.raises(ValidationException) as refused:
        await check_webhook(WebhookSettings(), "https://example.com/hook")
    assert refused.value.status_code == 422 and "WEBHOOK_SECRET" in str(refused.value.detail)
    assert await check_webhook(WebhookSettings(), None) is None


def test_retry_delays_double_up_to_the_cap() -> None:
    settings = WebhookSettings(secret=SECRET, backoff_seconds=2.0, backoff_max_seconds=10.0)
    assert [settings.retry_delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 10.0]


def test_a_short_webhook_secret_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="WEBHOOK_SECRET"):
        WebhookSettings.from_env({"WEBHOOK_SECRET": "short"})
    parsed = WebhookSettings.from_env({"WEBHOOK_SECRET": SECRET, "WEBHOOK_ALLOW_HOSTS": " 127.0.0.1, hooks.local "})
    assert parsed.key == SECRET.encode() and parsed.allow_hosts == ("127.0.0.1", "hooks.local")


async def test_a_run_without_a_webhook_of_its_own_is_refused_when_its_assistants_cannot_be_called() -> None:
    with pytest.raises(ValidationException) as refused:
        await check_run_webhook(WebhookSettings(), None, "https://example.com/hook")
    assert refused.value.status_code == 422
    assert "assistant's default webhook" in str(refused.value.detail) and "WEBHOOK_SECRET" in str(refused.value.detail)
    assert await check_run_webhook(WebhookSettings(), None, None) is None


def test_values_that_fit_the_bound_are_sent_whole() -> None:
    values = {"messages": ["hi"], "result": {"title": "T"}}
    bounded = bounded_values(values, len(json.dumps(values)))
    assert (bounded.values, bounded.omitted) == (values, [])
    assert bounded_values(None, 0).values is None


def test_values_past_the_bound_lose_their_largest_keys_first_and_name_them() -> None:
    values = {"attempts": "a" * 900, "research": "r" * 500, "draft": "d" * 300, "result": "x" * 100}
    bounded = bounded_values(values, 700)
    assert bounded.omitted == ["attempts", "research"]
    assert bounded.values == {"draft": "d" * 300, "result": "x" * 100}
    assert len(json.dumps(bounded.values)) <= 700
    nothing = bounded_values(values, 0)
    assert (nothing.values, nothing.omitted) == ({}, sorted(values))
