"""The claims service: persons, evidence, claims, the hours ledger and transcripts."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI

from libs.common.events import topic_of
from libs.common.limits import MULTIPART_OVERHEAD
from libs.common.service import ServiceSpec, create_service_app
from libs.common.settings import Settings
from services.claims import notifications, reminders
from services.claims.api import MAX_EVIDENCE_BYTES, router
from services.claims.handlers import events
from services.claims.models import infra
from services.claims.rules import load_ruleset
from services.claims.state import claims_state


def claim_categories() -> list[str]:
    """Every claim category of the packaged rule sets (``rulesets/<year>.json``): the enum of
    ``category`` in the OpenAPI document."""
    years = [
        int(entry.name.removesuffix(".json"))
        for entry in files("services.claims.rulesets").iterdir()
        if entry.name.removesuffix(".json").isdigit()
    ]
    return sorted({name for year in years for name in load_ruleset(year).categories})


SPEC = ServiceSpec(
    name="claims",
    title="Claims: persons, claims, transcripts",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router, reminders.router, notifications.router],
    events=events,
    subscribes=[topic_of("review"), topic_of("registry"), topic_of("sync")],
    workers=[reminders.reminder_worker],
    extension=claims_state,
    # an evidence file may be 10 MiB (API.md); the multipart framing comes on top
    body_limits={"POST /v1/evidence": MAX_EVIDENCE_BYTES + MULTIPART_OVERHEAD},
    openapi_enums={"category": claim_categories()},
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)
