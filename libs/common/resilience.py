"""Resilience mechanics shared by clients and servers: a token bucket (the province client's
outgoing rate limit, the API's incoming rate limits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """``rate`` tokens a second, bursts up to ``capacity``.

    :meth:`acquire` waits for a token (a client pacing itself); :meth:`try_take` never waits and
    says how long until a token would be there (a server refusing with ``Retry-After``)."""

    def __init__(
        self,
        rate: float,
        capacity: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.capacity = capacity if capacity is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.capacity
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> float:
        """Take a token if there is one (→ 0.0), else the seconds until there will be one."""
        self._refill()
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is available and take it (first come, first served)."""
        async with self._lock:
            while True:
                wait = self.try_take()
                if wait == 0:
                    return
                await asyncio.sleep(wait)
