"""Sync use cases: what must reach the province, and sending it there exactly once in effect.

Every credited claim becomes one outbound record per subject, with an id derived from the claim
and revision, so a redelivered event or a resend can never make a second record.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import func, or_, select

from libs.common.asciitext import AsciiId, fold_width
from libs.common.db import utcnow
from libs.common.errors import RuleViolation
from libs.common.events import (
    ClaimCredited,
    ClaimCreditRevoked,
    LearningRecorded,
    PersonRegistered,
    PersonUpdated,
    Subject,
    SyncRecordFailed,
    SyncRecordRegistered,
)
from libs.common.idnumber import mask_id_number, validate_id_number
from libs.common.service import ServiceState
from libs.common.tasks import LoopTask
from libs.common.uow import UnitOfWork
from services.sync.models import LearningRecord, OutboundRecord, PersonReplica
from services.sync.province import (
    ProvinceClient,
    ProvinceRecord,
    ProvinceRejected,
    ProvinceUnavailable,
)

log = logging.getLogger(__name__)
MAX_BACKOFF = timedelta(minutes=10)
UNKNOWN_NAME = "(city platform)"  # the province needs a name; the city platform sends none
MAX_RECORD_HOURS = 100  # a sanity bound on one city-platform record (a year needs 90 in all)


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


class ProvinceSender:
    """Background worker: sends due pending records in batches, books receipts and failures."""

    def __init__(self, state: ServiceState, client: ProvinceClient, *, poll_s: float = 0.5) -> None:
        self.state = state
        self.client = client
        self.poll_s = poll_s
        self._loop = LoopTask("province-sender")

    async def start(self) -> None:
        self._loop.spawn(self._run())

    async def stop(self) -> None:
        await self._loop.cancel()  # the client is the app's: its lifespan closes it

    async def _run(self) -> None:
        while True:
            try:
                sent = await self.send_due() + await self.void_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("province sender failed; will retry")
                sent = 0
            if not sent:
                await asyncio.sleep(self.poll_s)

    async def send_due(self, limit: int = 100) -> int:
        now = utcnow()
        async with self.state.uow() as uow:
            records = list(
                (
                    await uow.session.scalars(
                        select(OutboundRecord)
                        .where(
                            OutboundRecord.status == "pending",
                            or_(
                                OutboundRecord.next_attempt_at.is_(None),
                                OutboundRecord.next_attempt_at <= now,
                            ),
                        )
                        .order_by(OutboundRecord.created_at)
                        .limit(limit)
                    )
                ).all()
            )
            await uow.commit()
        if not records:
            return 0
        outcome, failures, error = await self._register(records)
        async with self.state.uow() as uow:
            for record in records:
                fresh = await uow.session.get(OutboundRecord, record.id)
                assert fresh is not None
                fresh.attempts += 1
                if record.id in outcome:
                    fresh.status, fresh.receipt, fresh.registered_at = (
                        "registered",
                        outcome[record.id],
                        utcnow(),
                    )
                    uow.emit(
                        SyncRecordRegistered(
                            record_id=fresh.id,
                            claim_id=fresh.claim_id,
                            province_receipt=outcome[record.id],
                        ),
                        subject=fresh.claim_id or fresh.id,
                    )
                elif record.id in failures:
                    fresh.status, fresh.last_error = "failed", failures[record.id]
                    uow.emit(
                        SyncRecordFailed(
                            record_id=fresh.id,
                            claim_id=fresh.claim_id,
                            reason=failures[record.id],
                        ),
                        subject=fresh.claim_id or fresh.id,
                    )
                else:
                    fresh.last_error = error
                    delay = min(timedelta(seconds=2 ** min(fresh.attempts, 10)), MAX_BACKOFF)
                    fresh.next_attempt_at = utcnow() + delay
            await uow.commit()
        return len(outcome)

    async def void_due(self, limit: int = 100) -> int:
        """Void on the province the records whose credit was revoked here."""
        async with self.state.uow() as uow:
            ids = list(
                (
                    await uow.session.scalars(
                        select(OutboundRecord.id)
                        .where(OutboundRecord.status == "void_pending")
                        .limit(limit)
                    )
                ).all()
            )
        done = 0
        for record_id in ids:
            try:
                await self.client.void(record_id, reason="credit revoked")
            except ProvinceUnavailable:
                break
            except ProvinceRejected as exc:
                if exc.status != 404:
                    raise
            async with self.state.uow() as uow:
                record = await uow.session.get(OutboundRecord, record_id)
                if record is not None:
                    record.status = "voided"
                await uow.commit()
            done += 1
        return done

    async def _register(
        self, records: list[OutboundRecord]
    ) -> tuple[dict[str, str], dict[str, str], str | None]:
        """Receipts by record id, permanent failures by record id, and a transient error.

        A record the province refuses fails its whole batch; the batch is then sent again one
        record at a time, so only the refused record is marked failed.
        """
        try:
            receipts = await self.client.register([_to_province(r) for r in records])
            return {r.record_id: r.receipt for r in receipts}, {}, None
        except ProvinceUnavailable as exc:
            got = {r.record_id: r.receipt for r in exc.receipts}
            return got, {}, str(exc) or "province unavailable"
        except ProvinceRejected as exc:
            if len(records) == 1:
                return {}, {records[0].id: f"{exc.code}: {exc}"}, None
        outcome: dict[str, str] = {}
        failures: dict[str, str] = {}
        error: str | None = None
        for record in records:
            got, failed, transient = await self._register([record])
            outcome.update(got)
            failures.update(failed)
            error = error or transient
        return outcome, failures, error


def _to_province(record: OutboundRecord) -> ProvinceRecord:
    return ProvinceRecord(
        record_id=record.id,
        id_number=record.id_number or "",
        name=record.name or "",
        year=record.year,
        subject=record.subject,  # type: ignore[arg-type]
        hours=record.hours,
        category=record.category,
        title=record.title,
        source=record.source,
        completed_at=record.completed_at,
    )


async def summary(uow: UnitOfWork) -> dict[str, Any]:
    rows = await uow.session.execute(
        select(OutboundRecord.status, func.count()).group_by(OutboundRecord.status)
    )
    return {"records": {status: count for status, count in rows.all()}}


# --- city-platform learning records --------------------------------------------------------


async def ingest_learning_records(uow: UnitOfWork, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accept a batch from the city platform: deduplicated by its record id, each accepted record
    announced as ``learning.recorded`` and queued for the province (no declaration needed)."""
    accepted, duplicates = 0, 0
    rejected: list[dict[str, str]] = []
    for raw in records:
        record_id = fold_width(str(raw.get("record_id") or ""))[:128]
        try:
            record = _valid_learning(raw)
        except ValueError as exc:
            rejected.append({"record_id": record_id, "reason": str(exc)})
            continue
        if await uow.session.scalar(
            select(LearningRecord.id).where(LearningRecord.record_id == record.record_id)
        ):
            duplicates += 1
            continue
        uow.session.add(
            LearningRecord(
                record_id=record.record_id,
                id_number=record.id_number,
                year=record.year,
                subject=record.subject,
                hours=record.hours,
                course=record.course,
                completed_at=record.completed_at,
            )
        )
        person = await uow.session.scalar(
            select(PersonReplica).where(PersonReplica.id_number == record.id_number)
        )
        uow.session.add(
            OutboundRecord(
                id=f"city-{record.record_id}",
                source="city_platform",
                person_id=person.person_id if person else None,
                id_number=record.id_number,
                name=person.name if person else UNKNOWN_NAME,
                year=record.year,
                subject=record.subject,
                hours=record.hours,
                category="city_platform",
                title=record.course,
                completed_at=record.completed_at,
                status="pending",
            )
        )
        uow.emit(record, subject=_person_key(record.id_number))
        accepted += 1
    await uow.session.flush()
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


def _person_key(id_number: str) -> str:
    """The log key of one person's records: orders them, and never exposes the raw ID number."""
    return "person-" + hashlib.sha256(id_number.encode()).hexdigest()[:16]


class LearningRecordIn(BaseModel):
    """One pushed record as the city platform must send it: bounded, ids ASCII after folding
    full-width forms (the ID number is checked by GB 11643 below)."""

    record_id: AsciiId
    id_number: str = Field(max_length=32)
    year: int = Field(ge=2000, le=2100)
    subject: Subject
    hours: float
    course: str = Field(min_length=1, max_length=200)
    completed_at: datetime


def _valid_learning(raw: dict[str, Any]) -> LearningRecorded:
    try:
        record = LearningRecorded.model_validate(LearningRecordIn.model_validate(raw).model_dump())
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from exc
    try:
        record.id_number = validate_id_number(record.id_number)
    except RuleViolation as exc:
        raise ValueError(exc.detail) from exc
    if not 0 < record.hours <= MAX_RECORD_HOURS or round(record.hours, 1) != record.hours:
        raise ValueError(
            f"hours must be more than 0 and at most {MAX_RECORD_HOURS} a record, with one decimal"
        )
    return record


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


# --- reconciliation -------------------------------------------------------------------------


async def reconcile(uow: UnitOfWork, client: ProvinceClient, year: int) -> dict[str, Any]:
    """Compare, per person, the hours we registered for ``year`` with what the province holds.

    Ours counts records in status ``registered``; a record waiting to be voided still counts at
    the province and so shows as a mismatch until the sender has voided it."""
    rows = await uow.session.execute(
        select(
            OutboundRecord.id_number,
            OutboundRecord.subject,
            func.sum(OutboundRecord.hours),
            func.max(OutboundRecord.person_id),
        )
        .where(OutboundRecord.year == year, OutboundRecord.status == "registered")
        .group_by(OutboundRecord.id_number, OutboundRecord.subject)
    )
    ours: dict[str, dict[str, float]] = {}
    person_of: dict[str, str | None] = {}
    for id_number, subject, hours, person_id in rows.all():
        key = str(id_number)  # registered records always carry the ID number
        ours.setdefault(key, {"public": 0.0, "professional": 0.0})[subject] = round(float(hours), 1)
        person_of[key] = person_of.get(key) or person_id
    theirs: dict[str, dict[str, float]] = {}
    async for total in client.iter_totals(year):
        theirs[total.id_number] = {
            "public": round(total.public, 1),
            "professional": round(total.professional, 1),
        }
    zero = {"public": 0.0, "professional": 0.0}
    mismatched = [
        {
            "person_id": person_of.get(id_number),
            "id_number_masked": mask_id_number(id_number),
            "ours": ours.get(id_number, zero),
            "province": theirs.get(id_number, zero),
        }
        for id_number in sorted(ours.keys() | theirs.keys())
        if ours.get(id_number, zero) != theirs.get(id_number, zero)
    ]
    checked = len(ours.keys() | theirs.keys())
    return {
        "year": year,
        "checked": checked,
        "matched": checked - len(mismatched),
        "mismatched": mismatched,
    }
