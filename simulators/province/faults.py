"""Faults the simulator injects on purpose: latency, 5xx, hangs, 429 above a rate limit and lost
responses, decided by a seedable ``random.Random``."""

from __future__ import annotations

import asyncio
import math
import os
import random
from dataclasses import dataclass, field

from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field

from libs.common.resilience import TokenBucket
from simulators.province.problems import ProvinceProblem

FAULTS_ENV = "CE_PROVINCE_FAULTS"


class Faults(BaseModel):
    """Faults to inject into every `/province/v1` request. Unset fields mean "no such fault"."""

    model_config = ConfigDict(extra="forbid")

    error_rate: float = Field(
        default=0.0, ge=0, le=1, description="Share of requests answered with 503."
    )
    timeout_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of requests that hang for `hang_s`, then answer 504.",
    )
    rate_limit_per_s: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second allowed; above it 429 with Retry-After.",
    )
    latency_ms: float = Field(
        default=0.0, ge=0, le=60_000, description="Extra latency on every request."
    )
    duplicate_receipt_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Share of registrations that are stored but whose response is lost "
        "(a 502 or a hang), so the client resends them.",
    )
    hang_s: float = Field(default=30.0, gt=0, le=600, description="How long a hung request hangs.")
    seed: int | None = Field(
        default=None, description="Reseeds the fault dice, for reproducible runs."
    )


class FaultStats(BaseModel):
    """What the simulator has seen and injected since it started."""

    requests: int = 0
    rate_limited: int = 0
    errors: int = 0
    timeouts: int = 0
    duplicate_receipts: int = 0
    records: int = Field(default=0, description="Records stored (voided ones included).")
    voided: int = 0


@dataclass
class FaultDecision:
    """The dice thrown for one request, all up front so a seed gives a reproducible sequence."""

    hang: bool = False
    error: bool = False
    duplicate_receipt: bool = False
    duplicate_hangs: bool = False


@dataclass
class FaultInjector:
    """Holds the current faults, the seeded dice, the server-side token bucket and the stats."""

    faults: Faults = field(default_factory=lambda: Faults())
    rng: random.Random = field(default_factory=random.Random)
    stats: FaultStats = field(default_factory=lambda: FaultStats())
    _bucket: TokenBucket | None = None

    def configure(self, faults: Faults) -> None:
        """Replace the faults (the unset ones are cleared)."""
        self.faults = faults
        if faults.seed is not None:
            self.rng.seed(faults.seed)
        rate = faults.rate_limit_per_s
        self._bucket = TokenBucket(rate) if rate is not None else None

    def _retry_after(self) -> float | None:
        """Take a token; when none is left, the seconds until one is."""
        if self._bucket is None:
            return None
        wait = self._bucket.wait_s()
        return wait if wait > 0 else None

    async def before(self, request: Request) -> FaultDecision:
        """Apply the faults that strike before the request is handled."""
        self.stats.requests += 1
        wait = self._retry_after()
        if wait is not None:
            self.stats.rate_limited += 1
            raise ProvinceProblem(
                429,
                "rate_limited",
                "Too many requests",
                f"over {self.faults.rate_limit_per_s}/s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        f, dice = self.faults, [self.rng.random() for _ in range(4)]
        decision = FaultDecision(
            hang=dice[0] < f.timeout_rate,
            error=dice[1] < f.error_rate,
            duplicate_receipt=dice[2] < f.duplicate_receipt_rate,
            duplicate_hangs=dice[3] < 0.5,
        )
        if f.latency_ms:
            await asyncio.sleep(f.latency_ms / 1000)
        if decision.hang:
            self.stats.timeouts += 1
            await self.hang(request)
        if decision.error:
            self.stats.errors += 1
            raise ProvinceProblem(503, "unavailable", "Service temporarily unavailable")
        return decision

    async def lose_response(self, request: Request, decision: FaultDecision) -> None:
        """The work is done and committed, but the client never gets to know."""
        self.stats.duplicate_receipts += 1
        if decision.duplicate_hangs:
            await self.hang(request)
        raise ProvinceProblem(502, "bad_gateway", "Bad gateway")

    async def hang(self, request: Request) -> None:
        """Hang for ``hang_s`` (or until the client gives up), then answer 504."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.faults.hang_s
        while loop.time() < deadline:
            if await request.is_disconnected():
                break
            await asyncio.sleep(0.02)
        raise ProvinceProblem(504, "gateway_timeout", "Gateway timeout")


def faults_from_env() -> Faults | None:
    """Faults from ``CE_PROVINCE_FAULTS`` (JSON), if set."""
    raw = os.environ.get(FAULTS_ENV)
    return Faults.model_validate_json(raw) if raw else None
