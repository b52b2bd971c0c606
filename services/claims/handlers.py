"""Events the claims service consumes: review outcomes, the org tree, sync outcomes."""

from __future__ import annotations

from libs.common.events import (
    ClaimApproved,
    ClaimRejected,
    ClaimStagePassed,
    Envelope,
    OrgUpserted,
    SyncRecordFailed,
    SyncRecordRegistered,
)
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.claims import service

events = EventRouter()


@events.on(ClaimStagePassed.TYPE)
async def on_stage_passed(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.stage_passed(uow, ClaimStagePassed.model_validate(envelope.data))


@events.on(ClaimApproved.TYPE)
async def on_approved(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.approved(uow, ClaimApproved.model_validate(envelope.data))


@events.on(ClaimRejected.TYPE)
async def on_rejected(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.rejected(uow, ClaimRejected.model_validate(envelope.data))


@events.on(OrgUpserted.TYPE)
async def on_org(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.upsert_org(uow, OrgUpserted.model_validate(envelope.data))


@events.on(SyncRecordRegistered.TYPE)
async def on_registered(uow: UnitOfWork, envelope: Envelope) -> None:
    event = SyncRecordRegistered.model_validate(envelope.data)
    await service.sync_outcome(uow, event.claim_id, "registered")


@events.on(SyncRecordFailed.TYPE)
async def on_failed(uow: UnitOfWork, envelope: Envelope) -> None:
    event = SyncRecordFailed.model_validate(envelope.data)
    await service.sync_outcome(uow, event.claim_id, "failed")
