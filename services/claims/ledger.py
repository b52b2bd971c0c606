"""The hours ledger: credited hours per person and year, city-platform records, transcripts.

Every credit is a row (source, ref, subject); a revocation stamps it, never deletes it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select

from libs.common.events import (
    LearningRecorded,
)
from libs.common.uow import UnitOfWork
from services.claims import compliance, rules
from services.claims.models import (
    Claim,
    LedgerEntry,
    LedgerSource,
    PendingLearning,
    Person,
)
from services.claims.views import Transcript, TranscriptEntry

# --- the ledger -----------------------------------------------------------------------------


async def ledger(
    uow: UnitOfWork, person_id: str, year: int, *, include_revoked: bool = False
) -> Sequence[LedgerEntry]:
    """A person's ledger entries of a year in booking order (live ones unless told otherwise)."""
    stmt = select(LedgerEntry).where(LedgerEntry.person_id == person_id, LedgerEntry.year == year)
    if not include_revoked:
        stmt = stmt.where(LedgerEntry.revoked_at.is_(None))
    return (await uow.session.scalars(stmt.order_by(LedgerEntry.created_at, LedgerEntry.id))).all()


async def credited_so_far(uow: UnitOfWork, person_id: str, year: int) -> rules.CreditedSoFar:
    by_claim: dict[str, tuple[str, list[rules.Credit]]] = {}
    outside: dict[str, Decimal] = defaultdict(Decimal)
    for entry in await ledger(uow, person_id, year):
        if entry.source == LedgerSource.CLAIM and entry.category:
            _, credits = by_claim.setdefault(entry.ref, (entry.category, []))
            credits.append(rules.Credit(entry.subject, Decimal(entry.hours)))  # type: ignore[arg-type]
        else:
            outside[entry.subject] += Decimal(entry.hours)
    return rules.CreditedSoFar.from_approved(by_claim.values(), outside)


# --- transcript -----------------------------------------------------------------------------


async def transcript(uow: UnitOfWork, person: Person, year: int) -> Transcript:
    """Every ledger entry of the year (revoked ones marked), the sums and the standing."""
    ruleset = rules.load_ruleset(year)
    credited: dict[str, Decimal] = defaultdict(Decimal)
    entries = []
    booked = await ledger(uow, person.id, year, include_revoked=True)
    leave_kinds = await _leave_kinds(uow, [e.ref for e in booked if e.source == LedgerSource.CLAIM])
    for entry in booked:
        if entry.revoked_at is None:
            credited[entry.subject] += Decimal(entry.hours)
        entries.append(
            TranscriptEntry(
                source=LedgerSource(entry.source),
                ref=entry.ref,
                category=entry.category,
                title=entry.title,
                subject=entry.subject,
                hours=float(entry.hours),
                counts=entry.revoked_at is None,
                note=entry.note,
                at=entry.created_at.isoformat(),
                revoked_at=entry.revoked_at.isoformat() if entry.revoked_at else None,
                leave_kind=leave_kinds.get(entry.ref)
                if entry.source == LedgerSource.CLAIM
                else None,
            )
        )
    pending = await compliance.pending_sums(uow.session, [person.id], year)
    standing = compliance.Standing.of(
        ruleset.requirement, credited, compliance.by_subject(pending, person.id)
    )
    return Transcript(
        person_id=person.id,
        year=year,
        required=compliance.required_view(ruleset.requirement),
        credited=standing.credited_view(),
        pending=standing.pending_view(),
        gaps=standing.gaps_view(),
        compliant=standing.compliant,
        entries=entries,
    )


async def _leave_kinds(uow: UnitOfWork, claim_ids: list[str]) -> dict[str, str]:
    """claim id → the leave_kind its special-leave claim named (shown on the transcript)."""
    if not claim_ids:
        return {}
    rows = await uow.session.execute(
        select(Claim.id, Claim.body).where(
            Claim.id.in_(set(claim_ids)), Claim.category == "special_leave"
        )
    )
    return {claim_id: body["leave_kind"] for claim_id, body in rows if body.get("leave_kind")}


async def learning_recorded(uow: UnitOfWork, event: LearningRecorded) -> None:
    """City-platform hours count without any declaration (and outside every claim cap)."""
    person = await uow.session.scalar(select(Person).where(Person.id_number == event.id_number))
    if person is None:
        if await uow.session.get(PendingLearning, event.record_id) is None:
            uow.session.add(
                PendingLearning(
                    record_id=event.record_id,
                    id_number=event.id_number,
                    year=event.year,
                    subject=event.subject,
                    hours=Decimal(str(event.hours)),
                    course=event.course,
                    completed_at=event.completed_at,
                )
            )
        return
    await _book_learning(
        uow,
        person,
        event.record_id,
        event.year,
        event.subject,
        Decimal(str(event.hours)),
        event.course,
        event.completed_at,
    )


async def book_pending_learning(uow: UnitOfWork, person: Person) -> None:
    pending = (
        await uow.session.scalars(
            select(PendingLearning).where(PendingLearning.id_number == person.id_number)
        )
    ).all()
    for record in pending:
        await _book_learning(
            uow,
            person,
            record.record_id,
            record.year,
            record.subject,
            record.hours,
            record.course,
            record.completed_at,
        )
        await uow.session.delete(record)


async def _book_learning(
    uow: UnitOfWork,
    person: Person,
    record_id: str,
    year: int,
    subject: str,
    hours: Decimal,
    course: str,
    completed_at: datetime,
) -> None:
    exists = await uow.session.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.source == LedgerSource.CITY_PLATFORM, LedgerEntry.ref == record_id
        )
    )
    if exists is None:
        uow.session.add(
            LedgerEntry(
                person_id=person.id,
                year=year,
                subject=subject,
                hours=hours,
                source=LedgerSource.CITY_PLATFORM,
                ref=record_id,
                title=course,
                completed_at=completed_at,
            )
        )
