"""The registry service: training-project filings, e-certificates, exam-staff cards.

The walk-through of the platform foundation needs none of it yet; this is the running shell
(database, outbox, health, metrics) that the registry issue fills in.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.common.service import ServiceSpec, create_service_app
from libs.common.settings import Settings
from services.registry.models import infra

SPEC = ServiceSpec(
    name="registry",
    title="Registry: training projects, certificates, exam cards",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[],
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
