"""The registry service: training-project filings (附件2) and their approval (备案), rosters of
completions and the e-certificates they earn, exam-staff cards (学时登记卡)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI

from libs.common.events import topic_of
from libs.common.limits import MULTIPART_OVERHEAD
from libs.common.service import ServiceSpec, create_service_app
from libs.common.settings import Settings
from services.registry.api import MAX_FILE_BYTES, router
from services.registry.handlers import events
from services.registry.models import infra
from services.registry.state import RegistrySettings, registry_state

# the public certificate lookup: per client address (CE_REGISTRY_VERIFY_LIMIT per window)
VERIFY_ROUTE = "GET /v1/certificates/{code}"

SPEC = ServiceSpec(
    name="registry",
    title="Registry: training projects, certificates, exam cards",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router],
    events=events,
    subscribes=[topic_of("review"), topic_of("claims")],
    extension=registry_state(RegistrySettings.model_construct()),
    # a roster file may be 10 MiB (JSON rosters keep the default 1 MiB, checked by the route)
    body_limits={"POST /v1/projects/{project_id}/completions": MAX_FILE_BYTES + MULTIPART_OVERHEAD},
    route_rates={VERIFY_ROUTE: RegistrySettings.model_construct().verify_rate()},
)


def create_app(settings: Settings | None = None, own: RegistrySettings | None = None) -> FastAPI:
    """The registry app; ``own``: its settings (``CE_REGISTRY_*``), read from the environment
    unless given."""
    own = own or RegistrySettings()
    spec = replace(
        SPEC,
        extension=registry_state(own),
        route_rates={**SPEC.route_rates, VERIFY_ROUTE: own.verify_rate()},
    )
    return create_service_app(spec, settings)
