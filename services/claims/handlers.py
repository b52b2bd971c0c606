"""Events the claims service consumes, each routed to its use case in :mod:`service`."""

from __future__ import annotations

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ClaimApproved,
    ClaimRejected,
    ClaimStagePassed,
    ExamCardIssued,
    LearningRecorded,
    OrgUpserted,
    ProjectApproved,
    SyncRecordFailed,
    SyncRecordRegistered,
)
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.claims import ledger, replicas, service


async def _registered(uow: UnitOfWork, event: SyncRecordRegistered) -> None:
    await service.sync_outcome(uow, event.claim_id, "registered")


async def _failed(uow: UnitOfWork, event: SyncRecordFailed) -> None:
    await service.sync_outcome(uow, event.claim_id, "failed")


events = EventRouter()
# review outcomes
events.route(ClaimStagePassed, service.stage_passed)
events.route(ClaimApproved, service.approved)
events.route(ClaimRejected, service.rejected)
# replicas: the org tree, the registry, the city platform
events.route(OrgUpserted, replicas.upsert_org)
events.route(CertificateIssued, replicas.certificate_issued)
events.route(CertificateRevoked, replicas.certificate_revoked)
events.route(ExamCardIssued, replicas.exam_card_issued)
events.route(ProjectApproved, replicas.project_approved)
events.route(LearningRecorded, ledger.learning_recorded)
# the province
events.route(SyncRecordRegistered, _registered)
events.route(SyncRecordFailed, _failed)
