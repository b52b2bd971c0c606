"""The sync service: the outbound record queue to the province platform."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.common.events import topic_of
from libs.common.service import ServiceSpec, ServiceState, Worker, create_service_app
from libs.common.settings import Settings
from services.sync.api import router
from services.sync.handlers import events
from services.sync.models import infra
from services.sync.province import ProvinceClient
from services.sync.sender import ProvinceSender


async def _province_client(state: ServiceState) -> None:
    """One client per process: the breaker and the rate limit cover every call to the province."""
    state.extras.setdefault("province_client", ProvinceClient.from_settings(state.settings))


def _sender(state: ServiceState) -> Worker:
    return ProvinceSender(state, state.extras["province_client"])


SPEC = ServiceSpec(
    name="sync",
    title="Sync: province platform and city-platform records",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router],
    events=events,
    subscribes=[topic_of("claims")],
    workers=[_sender],
    extra_state=_province_client,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
