"""The registry service: training-project filings (附件2) and their approval (备案), rosters of
completions and the e-certificates they earn, exam-staff cards (学时登记卡)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from pydantic_settings import BaseSettings, SettingsConfigDict

from libs.common.events import topic_of
from libs.common.service import ServiceSpec, create_service_app
from libs.common.settings import Settings
from services.registry.api import SlidingWindowLimiter, router
from services.registry.handlers import events
from services.registry.models import infra


class RegistrySettings(BaseSettings):
    """The registry's own settings (prefix ``CE_REGISTRY_``)."""

    model_config = SettingsConfigDict(env_prefix="CE_REGISTRY_", env_file=".env", extra="ignore")

    # the address printed in certificates' QR codes; defaults to this process's own address
    public_url: str | None = None
    # public certificate lookups allowed per client address and window
    verify_limit: int = 60
    verify_window_s: float = 60.0


SPEC = ServiceSpec(
    name="registry",
    title="Registry: training projects, certificates, exam cards",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router],
    events=events,
    subscribes=[topic_of("review"), topic_of("claims")],
)


def create_app(
    settings: Settings | None = None, registry_settings: RegistrySettings | None = None
) -> FastAPI:
    settings = settings or Settings(service="registry")
    own = registry_settings or RegistrySettings()
    app = create_service_app(SPEC, settings)
    app.state.public_url = (
        own.public_url or f"http://{settings.host}:{settings.effective_port}"
    ).rstrip("/")
    app.state.verify_limiter = SlidingWindowLimiter(own.verify_limit, own.verify_window_s)
    return app
