"""The registry's own state beside the shared ``ServiceState``: its settings (prefix
``CE_REGISTRY_``) and the per-address limiter of the public certificate lookup, built by the app's
lifespan (``ServiceSpec.extension``), read through :func:`registry_of`."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.service import ServiceState


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CE_REGISTRY_", env_file=".env", extra="ignore")

    # the address printed in certificates' QR codes; unset, the address the request came to
    public_url: str | None = None
    # public certificate lookups allowed per client address and window
    verify_limit: int = 60
    verify_window_s: float = 60.0


class SlidingWindowLimiter:
    """At most ``limit`` requests per ``window_s`` seconds per client address (in memory, per
    process): the public lookup is cheap to guess at, so guessing is made slow."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self._hits: dict[str, deque[float]] = {}

    def check(self, client: str) -> int | None:
        """None if the request may go on, else the seconds until it may (``Retry-After``)."""
        now = time.monotonic()
        hits = self._hits.setdefault(client, deque())
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return max(1, math.ceil(hits[0] + self.window_s - now))
        hits.append(now)
        if len(self._hits) > 10_000:  # forget idle clients, bounded memory
            for key in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window_s]:
                del self._hits[key]
        return None


@dataclass
class RegistryState:
    public_url: str | None  # where the public verification is reached (no trailing slash)
    verify_limiter: SlidingWindowLimiter

    def verification_url(self, base_url: str, code: str) -> str:
        """The public lookup of ``code``, at ``public_url`` or else at ``base_url`` (the
        address the caller reached this service at)."""
        return f"{(self.public_url or base_url).rstrip('/')}/v1/certificates/{code}"


@asynccontextmanager
async def registry_state(state: ServiceState) -> AsyncIterator[RegistryState]:
    own = RegistrySettings()
    yield RegistryState(
        own.public_url.rstrip("/") if own.public_url else None,
        SlidingWindowLimiter(own.verify_limit, own.verify_window_s),
    )


def registry_of(state: ServiceState) -> RegistryState:
    return state.ext_as(RegistryState)
