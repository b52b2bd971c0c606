"""Events the claims service consumes, each routed to its use case in :mod:`service`.

The times a handler stamps (a claim's ``decided_at``) come from ``uow.now()``, the service clock
that the unit of work carries, like every other "now"."""

from __future__ import annotations

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ClaimApproved,
    ClaimRejected,
    ClaimStagePassed,
    ExamCardIssued,
    LearningRecorded,
    LearningRecordedBatch,
    OrgUpserted,
    ProjectApproved,
    SyncRecordFailed,
    SyncRecordRegistered,
    SyncRecordVoided,
    SyncRecordVoidFailed,
)
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.claims import ledger, replicas, service
from services.claims.models import SyncStatus


async def _registered(uow: UnitOfWork, event: SyncRecordRegistered) -> None:
    await service.sync_outcome(uow, event.claim_id, SyncStatus.REGISTERED)


async def _failed(uow: UnitOfWork, event: SyncRecordFailed) -> None:
    await service.sync_outcome(uow, event.claim_id, SyncStatus.FAILED)


async def _voided(uow: UnitOfWork, event: SyncRecordVoided) -> None:
    await service.void_outcome(uow, event.claim_id, SyncStatus.VOIDED)


async def _void_failed(uow: UnitOfWork, event: SyncRecordVoidFailed) -> None:
    await service.void_outcome(uow, event.claim_id, SyncStatus.VOID_FAILED)


async def _approved(uow: UnitOfWork, event: ClaimApproved) -> None:
    await service.approved(uow, event, now=uow.now())


async def _rejected(uow: UnitOfWork, event: ClaimRejected) -> None:
    await service.rejected(uow, event, now=uow.now())


async def _certificate_revoked(uow: UnitOfWork, event: CertificateRevoked) -> None:
    await replicas.certificate_revoked(uow, event, now=uow.now())


events = EventRouter()
# review outcomes
events.route(ClaimStagePassed, service.stage_passed)
events.route(ClaimApproved, _approved)
events.route(ClaimRejected, _rejected)
# replicas: the org tree, the registry, the city platform
events.route(OrgUpserted, replicas.upsert_org)
events.route(CertificateIssued, replicas.certificate_issued)
events.route(CertificateRevoked, _certificate_revoked)
events.route(ExamCardIssued, replicas.exam_card_issued)
events.route(ProjectApproved, replicas.project_approved)
events.route(LearningRecorded, ledger.learning_recorded)
events.route(LearningRecordedBatch, ledger.learning_recorded_batch)
# the province
events.route(SyncRecordRegistered, _registered)
events.route(SyncRecordFailed, _failed)
events.route(SyncRecordVoided, _voided)
events.route(SyncRecordVoidFailed, _void_failed)
