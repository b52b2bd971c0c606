"""The registry's own state beside the shared ``ServiceState``: its settings (prefix
``CE_REGISTRY_``, read by the app factory), built by the app's lifespan (``ServiceSpec.extension``),
read through :func:`registry_of`. The public lookup's per-address limit is a route rate of the
service spec (``ServiceSpec.route_rates``), set from these settings."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.limits import RouteRate
from libs.common.service import ServiceState


class RegistrySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CE_REGISTRY_", env_file=".env", extra="ignore")

    # public certificate lookups allowed per client address and window
    verify_limit: int = 60
    verify_window_s: float = 60.0

    def verify_rate(self) -> RouteRate:
        """``verify_limit`` public lookups per ``verify_window_s`` per client address (a burst
        of ``verify_limit``, then refilled at that rate): the public lookup is cheap to guess
        at, so guessing is made slow."""
        return RouteRate(self.verify_limit, self.verify_window_s)


@dataclass
class RegistryState:
    public_base: str  # where the registry is reached from outside (``Settings.public_base_url``)

    def verification_url(self, code: str) -> str:
        """The public lookup of ``code``, printed on the certificate and in its QR code."""
        return f"{self.public_base}/v1/certificates/{code}"


def registry_state(
    own: RegistrySettings,
) -> Callable[[ServiceState], AbstractAsyncContextManager[RegistryState]]:
    """The spec's ``extension``: the registry's state from its settings ``own``."""

    @asynccontextmanager
    async def enter(state: ServiceState) -> AsyncIterator[RegistryState]:
        yield RegistryState(state.settings.public_base_url())

    return enter


def registry_of(state: ServiceState) -> RegistryState:
    return state.ext_as(RegistryState)
