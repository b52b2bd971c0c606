"""Guards for calls to an external system: a circuit breaker and a client-side token bucket.

Both read time from an injectable monotonic ``clock`` (seconds), so tests can move time by hand
instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Literal

log = logging.getLogger(__name__)

BreakerState = Literal["closed", "open", "half_open"]
MonotonicClock = Callable[[], float]


class CircuitOpen(Exception):
    """The breaker refused the call without trying it; ``retry_after`` (seconds) is a hint."""

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; after ``reset_s`` lets one trial call through
    (half-open), which closes it on success or reopens it on failure. While open it fails fast.

    ``name`` names the guarded system in messages and logs."""

    def __init__(
        self,
        threshold: int,
        reset_s: float,
        *,
        name: str = "circuit",
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if threshold < 1:
            raise ValueError("threshold must be at least 1")
        self.threshold = threshold
        self.reset_s = reset_s
        self.name = name
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False

    @property
    def state(self) -> BreakerState:
        """``closed``, ``open``, or ``half_open`` (the reset time has passed)."""
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at < self.reset_s:
            return "open"
        return "half_open"

    def before_call(self) -> None:
        """Admit a call or raise :class:`CircuitOpen` at once."""
        state = self.state
        if state == "closed":
            return
        assert self._opened_at is not None
        if state == "open":
            remaining = self._opened_at + self.reset_s - self._clock()
            raise CircuitOpen(f"{self.name} circuit open", retry_after=remaining)
        if self._trial_in_flight:
            raise CircuitOpen(f"{self.name} circuit half-open, trial in flight", retry_after=0.1)
        self._trial_in_flight = True

    def record_success(self) -> None:
        """The system answered (not with a failure): close the circuit."""
        if self._opened_at is not None:
            log.info("%s circuit closed", self.name)
        self._failures = 0
        self._opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        """A failure (5xx, timeout, connection error): count it, and open at the threshold."""
        self._failures += 1
        was_trial, self._trial_in_flight = self._trial_in_flight, False
        if was_trial or self._failures >= self.threshold:
            if self._opened_at is None or was_trial:
                log.warning(
                    "%s circuit open after %d consecutive failures; retry in %.1fs",
                    self.name,
                    self._failures,
                    self.reset_s,
                )
            self._opened_at = self._clock()

    def release(self) -> None:
        """A call ended with neither verdict (e.g. it was cancelled): free the trial slot."""
        self._trial_in_flight = False


class TokenBucket:
    """Client-side rate limiter: ``rate`` tokens a second, bursts up to ``capacity``."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = asyncio.Lock()

    def wait_s(self) -> float:
        """Take a token if one is available (0.0), else the seconds until one is."""
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is available and take it (first come, first served)."""
        async with self._lock:
            while True:
                wait = self.wait_s()
                if wait <= 0:
                    return
                await asyncio.sleep(wait)
