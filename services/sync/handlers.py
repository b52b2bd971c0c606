"""Events the sync service consumes: persons (for ID numbers) and credited claims."""

from __future__ import annotations

from libs.common.events import (
    ClaimCredited,
    ClaimCreditRevoked,
    Envelope,
    PersonRegistered,
    PersonUpdated,
)
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.sync import service

events = EventRouter()


@events.on(PersonRegistered.TYPE)
@events.on(PersonUpdated.TYPE)
async def on_person(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.upsert_person(uow, PersonRegistered.model_validate(envelope.data))


@events.on(ClaimCredited.TYPE)
async def on_claim_credited(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.enqueue_credited_claim(uow, ClaimCredited.model_validate(envelope.data))


@events.on(ClaimCreditRevoked.TYPE)
async def on_credit_revoked(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.void_revoked_claim(uow, ClaimCreditRevoked.model_validate(envelope.data))
