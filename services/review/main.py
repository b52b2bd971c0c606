"""The review service: org directory, review tasks and the decision history."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from libs.common.events import topic_of
from libs.common.limits import MULTIPART_OVERHEAD
from libs.common.service import ServiceSpec, create_service_app
from libs.common.settings import Settings
from services.review.api import router
from services.review.directory_api import MAX_IMPORT_BYTES
from services.review.directory_api import router as directory_router
from services.review.handlers import events
from services.review.models import infra

SPEC = ServiceSpec(
    name="review",
    title="Review: orgs and two-stage review",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router, directory_router],
    events=events,
    subscribes=[topic_of("claims"), topic_of("registry")],  # registry: project filings
    # an org directory file may be 5 MiB
    body_limits={"POST /v1/orgs/import": MAX_IMPORT_BYTES + MULTIPART_OVERHEAD},
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
