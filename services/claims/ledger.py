"""The hours ledger: credited hours per person and year, city-platform records, transcripts.

Every credit is a row (source, ref, subject); a revocation stamps it, never deletes it."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, delete, select

from libs.common.db import BulkInsert, new_id, utcnow
from libs.common.events import LearningRecorded, LearningRecordedBatch
from libs.common.uow import UnitOfWork
from services.claims import compliance, rules
from services.claims.models import (
    Claim,
    LedgerEntry,
    LedgerSource,
    PendingLearning,
    Person,
)
from services.claims.views import InterpretationView, Transcript, TranscriptEntry

# --- the ledger -----------------------------------------------------------------------------


async def ledger(
    uow: UnitOfWork, person_id: str, year: int, *, include_revoked: bool = False
) -> Sequence[LedgerEntry]:
    """A person's ledger entries of a year in booking order (live ones unless told otherwise)."""
    stmt = select(LedgerEntry).where(LedgerEntry.person_id == person_id, LedgerEntry.year == year)
    if not include_revoked:
        stmt = stmt.where(LedgerEntry.revoked_at.is_(None))
    return (await uow.session.scalars(stmt.order_by(LedgerEntry.created_at, LedgerEntry.id))).all()


# Built once: a statement made per call costs more CPU than running it (parameters are bound).
_CREDITED = (
    select(
        LedgerEntry.source,
        LedgerEntry.category,
        LedgerEntry.ref,
        LedgerEntry.subject,
        LedgerEntry.hours,
    )
    .where(
        LedgerEntry.person_id == bindparam("person_id"),
        LedgerEntry.year == bindparam("year"),
        LedgerEntry.revoked_at.is_(None),
    )
    .order_by(LedgerEntry.created_at, LedgerEntry.id)
)


async def credited_so_far(uow: UnitOfWork, person_id: str, year: int) -> rules.CreditedSoFar:
    """What the live ledger entries of the year credit, by approved claim and from elsewhere
    (the columns the rules need, no ORM objects: every submission and approval reads them)."""
    by_claim: dict[str, tuple[str, list[rules.Credit]]] = {}
    outside: dict[str, Decimal] = defaultdict(Decimal)
    entries = await uow.session.execute(_CREDITED, {"person_id": person_id, "year": year})
    for entry in entries:
        if entry.source == LedgerSource.CLAIM and entry.category:
            _, credits = by_claim.setdefault(entry.ref, (entry.category, []))
            credits.append(rules.Credit(entry.subject, Decimal(entry.hours)))
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
                interpretations=[
                    i.id
                    for i in ruleset.interpretations
                    if i.applies_to(entry.category, str(entry.source))
                ],
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
        interpretations=[
            InterpretationView(id=i.id, section=i.section, text=i.text)
            for i in ruleset.interpretations_for((e.category, e.source) for e in booked)
        ],
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
    await book_learning(uow, [event])


async def learning_recorded_batch(uow: UnitOfWork, event: LearningRecordedBatch) -> None:
    """A chunk of city-platform records, applied in this one transaction."""
    await book_learning(uow, event.records)


async def book_learning(uow: UnitOfWork, records: Sequence[LearningRecorded]) -> None:
    """Book each record on its person's ledger, or keep it pending until the person registers;
    set-based (one lookup, multi-row inserts: :class:`~libs.common.db.BulkInsert`) and
    deduplicated per record id."""
    if not records:
        return
    found = await uow.session.execute(
        select(Person.id_number, Person.id).where(
            Person.id_number.in_({r.id_number for r in records})
        )
    )
    persons = {row.id_number: row.id for row in found}
    now = utcnow()
    booked = [
        _ledger_row(
            persons[r.id_number],
            r.record_id,
            r.year,
            r.subject,
            r.hours,
            r.course,
            now,
            r.completed_at,
        )
        for r in records
        if r.id_number in persons
    ]
    await _book.execute(uow.session, booked)
    waiting = [
        {
            "record_id": r.record_id,
            "id_number": r.id_number,
            "year": r.year,
            "subject": r.subject,
            "hours": Decimal(str(r.hours)),
            "course": r.course,
            "completed_at": r.completed_at,
        }
        for r in records
        if r.id_number not in persons
    ]
    await _wait.execute(uow.session, waiting)


async def book_pending_learning(uow: UnitOfWork, person: Person) -> None:
    await book_pending_learning_of(uow, {person.id_number: person.id})


async def book_pending_learning_of(uow: UnitOfWork, persons: dict[str, str]) -> None:
    """Book the waiting city-platform records of newly registered persons (ID number -> id)."""
    if not persons:
        return
    pending = (
        await uow.session.scalars(
            select(PendingLearning).where(PendingLearning.id_number.in_(list(persons)))
        )
    ).all()
    if not pending:
        return
    now = utcnow()
    await _book.execute(
        uow.session,
        [
            _ledger_row(
                persons[p.id_number],
                p.record_id,
                p.year,
                p.subject,
                p.hours,
                p.course,
                now,
                p.completed_at,
            )
            for p in pending
        ],
    )
    await uow.session.execute(
        delete(PendingLearning).where(PendingLearning.record_id.in_([p.record_id for p in pending]))
    )


# city-platform records on the ledger (once per record and subject) and waiting for their person
_book = BulkInsert(
    LedgerEntry.__table__,
    [
        "id",
        "person_id",
        "year",
        "subject",
        "hours",
        "source",
        "ref",
        "title",
        "completed_at",
        "created_at",
        "updated_at",
    ],
    conflict=["source", "ref", "subject"],
)
_wait = BulkInsert(
    PendingLearning.__table__,
    ["record_id", "id_number", "year", "subject", "hours", "course", "completed_at"],
    conflict=["record_id"],
)


def _ledger_row(
    person_id: str,
    record_id: str,
    year: int,
    subject: str,
    hours: float | Decimal,
    course: str,
    now: datetime,
    completed_at: datetime,
) -> dict[str, Any]:
    return {
        "id": new_id(),
        "person_id": person_id,
        "year": year,
        "subject": subject,
        "hours": Decimal(str(hours)),
        "source": LedgerSource.CITY_PLATFORM,
        "ref": record_id,
        "title": course,
        "completed_at": completed_at,
        "created_at": now,
        "updated_at": now,
    }
