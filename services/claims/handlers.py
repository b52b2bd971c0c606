"""Events the claims service consumes, each routed to its use case in :mod:`service`.

The router is built per app (:func:`build_events`) around the service clock, so the times a
handler stamps (a claim's ``decided_at``) come from the injected clock like every other "now"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

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
from services.claims.models import SyncStatus


async def _registered(uow: UnitOfWork, event: SyncRecordRegistered) -> None:
    await service.sync_outcome(uow, event.claim_id, SyncStatus.REGISTERED)


async def _failed(uow: UnitOfWork, event: SyncRecordFailed) -> None:
    await service.sync_outcome(uow, event.claim_id, SyncStatus.FAILED)


def build_events(now: Callable[[], datetime]) -> EventRouter:
    """The claims service's event routes; ``now`` is the service clock."""

    async def _approved(uow: UnitOfWork, event: ClaimApproved) -> None:
        await service.approved(uow, event, now=now())

    async def _rejected(uow: UnitOfWork, event: ClaimRejected) -> None:
        await service.rejected(uow, event, now=now())

    async def _certificate_revoked(uow: UnitOfWork, event: CertificateRevoked) -> None:
        await replicas.certificate_revoked(uow, event, now=now())

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
    # the province
    events.route(SyncRecordRegistered, _registered)
    events.route(SyncRecordFailed, _failed)
    return events
