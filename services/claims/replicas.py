"""Local read models of other services' facts, fed by their events: the org tree (review),
e-certificates, exam cards and filed projects (registry). A revoked certificate revokes the credit
of the claim it backed."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ClaimCreditRevoked,
    ExamCardIssued,
    OrgUpserted,
    ProjectApproved,
)
from libs.common.uow import UnitOfWork
from services.claims.models import (
    CertificateReplica,
    Claim,
    ClaimReference,
    ClaimStatus,
    ExamCardReplica,
    LedgerEntry,
    LedgerSource,
    OrgReplica,
    ProjectReplica,
)
from services.claims.notifications import notify
from services.claims.service import normalise_code


async def upsert_org(uow: UnitOfWork, event: OrgUpserted) -> None:
    org = await uow.session.get(OrgReplica, event.org_id)
    if org is None:
        uow.session.add(
            OrgReplica(
                id=event.org_id,
                code=event.code,
                name=event.name,
                type=event.type,
                parent_id=event.parent_id,
                active=event.active,
                self_appraising=event.self_appraising,
            )
        )
    else:
        org.code, org.name, org.type, org.parent_id, org.active = (
            event.code,
            event.name,
            event.type,
            event.parent_id,
            event.active,
        )
        org.self_appraising = event.self_appraising


# --- replicas of the registry and the city platform -----------------------------------------


async def certificate_issued(uow: UnitOfWork, event: CertificateIssued) -> None:
    code = normalise_code(event.code)
    cert = await uow.session.get(CertificateReplica, code)
    if cert is None:
        uow.session.add(
            CertificateReplica(
                code=code,
                project_id=event.project_id,
                project_name=event.project_name,
                id_number=event.id_number,
                holder_name=event.holder_name,
                year=event.year,
                subject=event.subject,
                hours=Decimal(str(event.hours)),
                status="valid",
            )
        )


async def certificate_revoked(uow: UnitOfWork, event: CertificateRevoked, *, now: datetime) -> None:
    """A revoked certificate stops counting: the credit of the claim it backed is revoked."""
    cert = await uow.session.get(CertificateReplica, normalise_code(event.code))
    if cert is not None:
        cert.status, cert.revoked_reason = "revoked", event.reason
    claim_ids = (
        await uow.session.scalars(
            select(ClaimReference.claim_id).where(
                ClaimReference.kind == "certificate_code",
                ClaimReference.value == normalise_code(event.code),
            )
        )
    ).all()
    for claim_id in claim_ids:
        claim = await uow.session.get(Claim, claim_id)
        if claim is None or claim.status != ClaimStatus.APPROVED:
            continue  # a claim in review is refused at approval (see ``approved``)
        entries = await uow.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.source == LedgerSource.CLAIM,
                LedgerEntry.ref == claim.id,
                LedgerEntry.revoked_at.is_(None),
            )
        )
        for entry in entries:
            entry.revoked_at = now
            entry.note = f"revoked: certificate {event.code} was revoked ({event.reason})"
        claim.status = ClaimStatus.REVOKED
        claim.rejection_reason = f"certificate {event.code} revoked: {event.reason}"
        notify(
            uow,
            claim.person_id,
            "credit_revoked",
            f"The credit of 「{claim.title}」 was revoked: {claim.rejection_reason}",
            claim_id=claim.id,
            data={"reason": claim.rejection_reason},
        )
        uow.emit(
            ClaimCreditRevoked(
                claim_id=claim.id,
                revision=claim.revision,
                person_id=claim.person_id,
                year=claim.year,
                reason=claim.rejection_reason,
            ),
            subject=claim.id,
        )


async def exam_card_issued(uow: UnitOfWork, event: ExamCardIssued) -> None:
    card_no = normalise_code(event.card_no)
    if await uow.session.get(ExamCardReplica, card_no) is None:
        uow.session.add(
            ExamCardReplica(
                card_no=card_no,
                id_number=event.id_number,
                name=event.name,
                year=event.year,
                hours=Decimal(str(event.hours)),
            )
        )


async def project_approved(uow: UnitOfWork, event: ProjectApproved) -> None:
    project = await uow.session.get(ProjectReplica, event.project_id)
    if project is None:
        uow.session.add(
            ProjectReplica(
                id=event.project_id,
                name=event.name,
                year=event.year,
                status="approved",
                subject=event.subject,
            )
        )
    else:
        project.status, project.subject = "approved", event.subject
