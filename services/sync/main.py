"""The sync service: the outbound record queue to the province platform."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.common.events import topic_of
from libs.common.service import ServiceSpec, ServiceState, Worker, create_service_app
from libs.common.settings import Settings
from services.sync.api import LEARNING_RECORDS_BODY_LIMIT, router
from services.sync.handlers import events
from services.sync.metrics import refresh_gauges
from services.sync.models import infra
from services.sync.reconciliation import ScheduledReconciliation
from services.sync.sender import ProvinceSender
from services.sync.state import sync_of, sync_state


def _sender(state: ServiceState) -> Worker:
    return ProvinceSender(state, sync_of(state).province_client)


def _reconciliation(state: ServiceState) -> Worker:
    return ScheduledReconciliation(state, sync_of(state).province_client)


SPEC = ServiceSpec(
    name="sync",
    title="Sync: province platform and city-platform records",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router],
    events=events,
    subscribes=[topic_of("claims")],
    workers=[_sender, _reconciliation],
    extension=sync_state,
    metrics_refresh=refresh_gauges,  # the queue's gauges, as they are at the scrape
    body_limits={"POST /v1/learning-records": LEARNING_RECORDS_BODY_LIMIT},
)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings(service="sync")
    if settings.env == "production" and "province_url" not in settings.model_fields_set:
        # the default points at a local simulator: never what production means
        raise ValueError("production needs CE_PROVINCE_URL (the province platform)")
    return create_service_app(SPEC, settings)
