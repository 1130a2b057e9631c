"""The login rate limiter on its own (app/security.py): what it counts, per address and per user
name, what a success clears, and how attempts still being checked take their slots. Times are
passed in, so nothing here waits."""

from __future__ import annotations

import pytest

from app.security import LoginAttempt, LoginRateLimited, LoginRateLimiter

T0 = 1000.0


def fail(limiter: LoginRateLimiter, client: str, name: str, now: float = T0) -> None:
    limiter.failed(limiter.begin(client, name, now=now), now=now)


def succeed(limiter: LoginRateLimiter, client: str, name: str, now: float = T0) -> None:
    limiter.succeeded(limiter.begin(client, name, now=now))


def refused_for(limiter: LoginRateLimiter, client: str, name: str, now: float = T0) -> int:
    """The Retry-After of a login that must be refused."""
    with pytest.raises(LoginRateLimited) as refused:
        limiter.begin(client, name, now=now)
    return refused.value.retry_after


def test_another_users_success_from_the_same_address_does_not_reset_its_failures() -> None:
    limiter = LoginRateLimiter(max_failures=5, window=60)
    for _ in range(5):
        succeed(limiter, "10.0.0.1", "attacker")
        fail(limiter, "10.0.0.1", "victim")
    assert refused_for(limiter, "10.0.0.1", "victim") == 60
    # The address is limited whatever name it tries, its own included.
    refused_for(limiter, "10.0.0.1", "attacker")


def test_a_success_clears_only_that_names_failures_from_that_address() -> None:
    limiter = LoginRateLimiter(max_failures=5, window=60)
    fail(limiter, "10.0.0.1", "alice")
    fail(limiter, "10.0.0.1", "alice")
    fail(limiter, "10.0.0.1", "bob")
    fail(limiter, "10.0.0.2", "alice")
    fail(limiter, "10.0.0.3", "alice")
    succeed(limiter, "10.0.0.1", "alice")
    # The address keeps bob's failure: four more fit, not five.
    for _ in range(4):
        fail(limiter, "10.0.0.1", "carol")
    refused_for(limiter, "10.0.0.1", "dave")
    # alice keeps the failures from the other addresses: three more fit, not five.
    for address in ("10.0.0.4", "10.0.0.5", "10.0.0.6"):
        fail(limiter, address, "alice")
    refused_for(limiter, "10.0.0.7", "alice")


def test_a_name_is_limited_across_addresses_and_other_names_are_not() -> None:
    limiter = LoginRateLimiter(max_failures=5, window=60)
    for index in range(5):
        fail(limiter, f"10.0.1.{index}", "admin", now=T0 + index)
    assert refused_for(limiter, "10.0.1.99", "admin", now=T0 + 10) == 50
    succeed(limiter, "10.0.1.99", "editor", now=T0 + 10)
    # The oldest failure leaves the window, and one more attempt fits.
    fail(limiter, "10.0.1.99", "admin", now=T0 + 60)
    refused_for(limiter, "10.0.1.98", "admin", now=T0 + 60)


def test_attempts_in_flight_take_slots_so_concurrent_ones_beyond_the_limit_are_refused() -> None:
    limiter = LoginRateLimiter(max_failures=5, window=60)
    in_flight = [limiter.begin("10.0.0.1", f"user{i}", now=T0) for i in range(5)]
    # Nothing has failed yet, but the five being checked fill the address's limit; they end
    # within a hash's time, so the wait asked for is one second.
    assert refused_for(limiter, "10.0.0.1", "user9") == 1
    limiter.release(in_flight.pop())
    limiter.begin("10.0.0.1", "user9", now=T0)
    # The same holds per name, from other addresses.
    named = [limiter.begin(f"10.0.2.{i}", "admin", now=T0) for i in range(5)]
    assert refused_for(limiter, "10.0.2.99", "admin") == 1
    for attempt in named:
        limiter.failed(attempt, now=T0)
    assert refused_for(limiter, "10.0.2.99", "admin") == 60


def test_an_attempt_is_settled_once_so_a_release_after_its_outcome_frees_nothing_more() -> None:
    limiter = LoginRateLimiter(max_failures=2, window=60)
    first: LoginAttempt = limiter.begin("10.0.0.1", "a", now=T0)
    limiter.failed(first, now=T0)
    limiter.release(first)
    limiter.failed(first, now=T0)
    second = limiter.begin("10.0.0.1", "b", now=T0)
    limiter.release(second)
    limiter.release(second)
    # One failure and nothing in flight: one more attempt fits, a second in flight does not.
    limiter.begin("10.0.0.1", "c", now=T0)
    refused_for(limiter, "10.0.0.1", "d")


def test_retry_after_of_an_address_alone_ignores_names() -> None:
    limiter = LoginRateLimiter(max_failures=1, window=30)
    fail(limiter, "10.0.0.1", "admin")
    assert limiter.retry_after("10.0.0.2", now=T0) == 0
    assert limiter.retry_after("10.0.0.2", "admin", now=T0) == 30
    assert limiter.retry_after("10.0.0.1", now=T0 + 29.5) == 1
    assert limiter.retry_after("10.0.0.1", now=T0 + 30) == 0


def test_memory_stays_bounded_under_a_spray_of_names() -> None:
    limiter = LoginRateLimiter(max_failures=5, window=60, max_clients=100)
    for index in range(1000):
        fail(limiter, "10.0.0.1", f"name-{index}" * 1000, now=T0 + index * 61)
    assert len(limiter._failures) <= 100
