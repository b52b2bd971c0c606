"""The circuit breaker and the token bucket of libs.common.resilience, on a clock the test moves
by hand (no sleeping)."""

from __future__ import annotations

import asyncio

import pytest

from libs.common.resilience import CircuitBreaker, CircuitOpen, TokenBucket


class ManualClock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def test_the_breaker_opens_at_the_threshold_of_consecutive_failures() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(3, 10, name="province", clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    breaker.before_call()
    breaker.record_success()  # a success in between resets the count
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    clock.advance(4)
    with pytest.raises(CircuitOpen, match="province circuit open") as refused:
        breaker.before_call()
    assert refused.value.retry_after == 6


def test_half_open_lets_one_trial_through_which_closes_or_reopens() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker(1, 10, clock=clock)
    breaker.record_failure()
    clock.advance(10)
    assert breaker.state == "half_open"
    breaker.before_call()  # the trial
    with pytest.raises(CircuitOpen, match="trial in flight"):
        breaker.before_call()
    breaker.record_failure()  # the trial failed: open again for a full period
    assert breaker.state == "open"
    clock.advance(9.9)
    assert breaker.state == "open"
    clock.advance(0.1)
    breaker.before_call()
    breaker.release()  # cancelled: no verdict, the slot is free again
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()


def test_the_breaker_needs_a_positive_threshold() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(0, 1)


def test_the_bucket_allows_a_burst_then_one_token_per_interval() -> None:
    clock = ManualClock()
    bucket = TokenBucket(4, clock=clock)
    assert [bucket.wait_s() for _ in range(4)] == [0.0] * 4
    assert bucket.wait_s() == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.wait_s() == 0.0
    clock.advance(10)  # refills up to the capacity, no further
    assert [bucket.wait_s() for _ in range(4)] == [0.0] * 4
    assert bucket.wait_s() > 0


async def test_acquire_waits_for_the_next_token() -> None:
    clock = ManualClock()
    bucket = TokenBucket(4, capacity=1, clock=clock)
    await asyncio.wait_for(bucket.acquire(), 1)
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0.01)
    assert not waiter.done()  # no token until the clock moves
    clock.advance(0.25)
    await asyncio.wait_for(waiter, 1)
    assert bucket.wait_s() == 0.25


def test_the_bucket_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0)
