"""Events the review service consumes: claims to route, withdrawals."""

from __future__ import annotations

from libs.common.events import ClaimSubmitted, ClaimWithdrawn, Envelope
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.review import service

events = EventRouter()


@events.on(ClaimSubmitted.TYPE)
async def on_claim_submitted(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.open_task(uow, ClaimSubmitted.model_validate(envelope.data))


@events.on(ClaimWithdrawn.TYPE)
async def on_claim_withdrawn(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.withdraw(uow, ClaimWithdrawn.model_validate(envelope.data))
