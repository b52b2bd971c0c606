"""The claims service: persons, evidence, claims, the hours ledger and transcripts."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from fastapi import FastAPI

from libs.common.db import utcnow
from libs.common.events import topic_of
from libs.common.service import ServiceSpec, ServiceState, create_service_app
from libs.common.settings import Settings
from services.claims import reminders
from services.claims.api import router
from services.claims.evidence import LocalEvidenceStore
from services.claims.handlers import build_events
from services.claims.models import infra


async def _extras(state: ServiceState) -> None:
    state.extras.setdefault(
        "evidence_store", LocalEvidenceStore(state.settings.data_dir / "evidence")
    )


SPEC = ServiceSpec(
    name="claims",
    title="Claims: persons, claims, transcripts",
    infra=infra,
    migrations_dir=Path(__file__).parent / "migrations",
    routers=[router, reminders.router],
    events=build_events(utcnow),
    subscribes=[topic_of("review"), topic_of("registry"), topic_of("sync")],
    workers=[reminders.reminder_worker],
    extra_state=_extras,
)


class _AppClock:
    """The app's service clock, for the event handlers built before the state exists."""

    def __init__(self) -> None:
        self.state: ServiceState | None = None

    async def bind(self, state: ServiceState) -> None:
        self.state = state
        await _extras(state)

    def now(self) -> datetime:
        return self.state.now() if self.state is not None else utcnow()


def create_app(settings: Settings | None = None) -> FastAPI:
    clock = _AppClock()
    spec = dataclasses.replace(SPEC, events=build_events(clock.now), extra_state=clock.bind)
    return create_service_app(spec, settings)
