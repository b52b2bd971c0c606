"""Events the claims service consumes: review outcomes, the org tree, sync outcomes."""

from __future__ import annotations

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ClaimApproved,
    ClaimRejected,
    ClaimStagePassed,
    Envelope,
    ExamCardIssued,
    LearningRecorded,
    OrgUpserted,
    ProjectApproved,
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


@events.on(CertificateIssued.TYPE)
async def on_certificate_issued(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.certificate_issued(uow, CertificateIssued.model_validate(envelope.data))


@events.on(CertificateRevoked.TYPE)
async def on_certificate_revoked(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.certificate_revoked(uow, CertificateRevoked.model_validate(envelope.data))


@events.on(ExamCardIssued.TYPE)
async def on_exam_card(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.exam_card_issued(uow, ExamCardIssued.model_validate(envelope.data))


@events.on(ProjectApproved.TYPE)
async def on_project_approved(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.project_approved(uow, ProjectApproved.model_validate(envelope.data))


@events.on(LearningRecorded.TYPE)
async def on_learning(uow: UnitOfWork, envelope: Envelope) -> None:
    await service.learning_recorded(uow, LearningRecorded.model_validate(envelope.data))
