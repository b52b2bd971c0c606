"""Events the sync service consumes: persons (for ID numbers), credited and revoked claims. Each
credited claim becomes one outbound record per subject, with an id derived from the claim and
revision, so a redelivered event can never make a second record."""

from __future__ import annotations

from sqlalchemy import select

from libs.common.db import utcnow
from libs.common.events import (
    ClaimCredited,
    ClaimCreditRevoked,
    PersonRegistered,
    PersonUpdated,
    SyncRecordVoided,
)
from libs.common.inbox import EventRouter
from libs.common.uow import UnitOfWork
from services.sync.models import OutboundRecord, PersonReplica


async def upsert_person(uow: UnitOfWork, event: PersonRegistered | PersonUpdated) -> None:
    person = await uow.session.get(PersonReplica, event.person_id)
    if person is None:
        uow.session.add(
            PersonReplica(person_id=event.person_id, id_number=event.id_number, name=event.name)
        )
    else:
        person.id_number, person.name = event.id_number, event.name
    # records that waited for this person can go now
    waiting = await uow.session.scalars(
        select(OutboundRecord).where(
            OutboundRecord.person_id == event.person_id, OutboundRecord.status == "waiting_person"
        )
    )
    for record in waiting:
        record.id_number, record.name, record.status = event.id_number, event.name, "pending"


async def enqueue_credited_claim(uow: UnitOfWork, event: ClaimCredited) -> None:
    person = await uow.session.get(PersonReplica, event.person_id)
    for credit in event.credits:
        record_id = f"claim-{event.claim_id}-r{event.revision}-{credit.subject}"
        if await uow.session.get(OutboundRecord, record_id) is not None:
            continue
        uow.session.add(
            OutboundRecord(
                id=record_id,
                source="claim",
                claim_id=event.claim_id,
                person_id=event.person_id,
                id_number=person.id_number if person else None,
                name=person.name if person else None,
                year=event.year,
                subject=credit.subject,
                hours=credit.hours,
                category=event.category,
                title=event.title,
                completed_at=utcnow(),
                status="pending" if person else "waiting_person",
            )
        )


async def void_revoked_claim(uow: UnitOfWork, event: ClaimCreditRevoked) -> None:
    """A revoked credit is voided on the province: queued, sent by the sender."""
    records = await uow.session.scalars(
        select(OutboundRecord).where(OutboundRecord.claim_id == event.claim_id)
    )
    for record in records:
        if record.status == "registered":
            record.status = "void_pending"
            record.next_attempt_at = None
        elif record.status in ("pending", "waiting_person"):
            record.status = "voided"  # never reached the province
            uow.emit(
                SyncRecordVoided(record_id=record.id, claim_id=record.claim_id),
                subject=event.claim_id,
            )


events = EventRouter()
events.route(PersonRegistered, upsert_person)
events.route(PersonUpdated, upsert_person)
events.route(ClaimCredited, enqueue_credited_claim)
events.route(ClaimCreditRevoked, void_revoked_claim)
