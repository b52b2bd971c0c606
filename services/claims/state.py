"""The claims service's own state beside the shared ``ServiceState``: built and closed by the
app's lifespan (``ServiceSpec.extension``), read through :func:`claims_of`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from libs.common.service import ServiceState
from services.claims.evidence import EvidenceStore, evidence_store_from

if TYPE_CHECKING:
    from services.claims.reminders import ReminderWorker

DEFAULT_REMINDER_INTERVAL_S = 60.0


@dataclass
class ClaimsState:
    evidence_store: EvidenceStore
    reminder_interval_s: float = DEFAULT_REMINDER_INTERVAL_S
    reminder_worker: ReminderWorker | None = None


@asynccontextmanager
async def claims_state(state: ServiceState) -> AsyncIterator[ClaimsState]:
    store = evidence_store_from(state.settings)
    try:
        yield ClaimsState(store)
    finally:
        store.close()


def claims_of(state: ServiceState) -> ClaimsState:
    return state.ext_as(ClaimsState)
