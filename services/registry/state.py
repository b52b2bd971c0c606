"""The registry's own state beside the shared ``ServiceState``: its settings (prefix
``CE_REGISTRY_``) and the per-address limiter of the public certificate lookup, built by the app's
lifespan (``ServiceSpec.extension``), read through :func:`registry_of`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.limits import RateBuckets
from libs.common.service import ServiceState


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CE_REGISTRY_", env_file=".env", extra="ignore")

    # the address printed in certificates' QR codes; unset, the address the request came to
    public_url: str | None = None
    # public certificate lookups allowed per client address and window
    verify_limit: int = 60
    verify_window_s: float = 60.0


def verify_buckets(limit: int, window_s: float) -> RateBuckets:
    """``limit`` public lookups per ``window_s`` per client address (a burst of ``limit``, then
    refilled at that rate): the public lookup is cheap to guess at, so guessing is made slow."""
    return RateBuckets(rate=limit / window_s, burst=limit)


@dataclass
class RegistryState:
    public_url: str | None  # where the public verification is reached (no trailing slash)
    verify_limiter: RateBuckets

    def verification_url(self, base_url: str, code: str) -> str:
        """The public lookup of ``code``, at ``public_url`` or else at ``base_url`` (the
        address the caller reached this service at)."""
        return f"{(self.public_url or base_url).rstrip('/')}/v1/certificates/{code}"


@asynccontextmanager
async def registry_state(state: ServiceState) -> AsyncIterator[RegistryState]:
    own = RegistrySettings()
    yield RegistryState(
        own.public_url.rstrip("/") if own.public_url else None,
        verify_buckets(own.verify_limit, own.verify_window_s),
    )


def registry_of(state: ServiceState) -> RegistryState:
    return state.ext_as(RegistryState)
