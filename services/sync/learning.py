"""Learning records pushed by the city e-learning platform: validated, deduplicated by their
record id, announced in chunks as ``learning.recorded_batch`` and queued for the province (no
review needed).

The ingest is set-based: the rows are validated in memory (no query per row), then
``INSERT ... ON CONFLICT (record_id) DO NOTHING RETURNING record_id`` of the whole chunk says
which records are new, one query fetches the names of the persons they belong to, and one more
insert queues the new ones for the province. The inserts are executemany calls of one cached
statement, which SQLAlchemy sends as multi-row ``VALUES`` batches ("insertmanyvalues"): a
statement built with ``.values(rows)`` would be compiled afresh for every chunk, and compiling
1,000 rows of bind parameters costs more than the insert."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from libs.common.asciitext import AsciiId, fold_width
from libs.common.db import insert_ignoring_duplicates, new_id, utcnow
from libs.common.errors import RuleViolation
from libs.common.events import LearningRecorded, LearningRecordedBatch, Subject
from libs.common.idnumber import validate_id_number
from libs.common.uow import UnitOfWork
from services.sync.models import LearningRecord, OutboundRecord, PersonReplica

UNKNOWN_NAME = "(city platform)"  # the province needs a name; the city platform sends none
MAX_RECORD_HOURS = 100  # a sanity bound on one city-platform record (a year needs 90 in all)
CHUNK = 500  # rows per statement and per batch event (well inside every parameter limit)
BEIJING = timezone(timedelta(hours=8))  # a completion time without an offset is Beijing time


async def ingest_learning_records(uow: UnitOfWork, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accept a batch from the city platform: deduplicated by its record id (within the batch
    and against every earlier one), the accepted records announced in chunks and queued for the
    province (no declaration needed). Per-record outcome, never all-or-nothing."""
    valid: dict[str, LearningRecorded] = {}
    duplicates = 0
    rejected: list[dict[str, str]] = []
    for raw in records:
        try:
            record = _valid_learning(raw)
        except ValueError as exc:
            record_id = fold_width(str(raw.get("record_id") or ""))[:128]
            rejected.append({"record_id": record_id, "reason": str(exc)})
            continue
        if record.record_id in valid:
            duplicates += 1
            continue
        valid[record.record_id] = record
    accepted = 0
    chunk = list(valid.values())
    for start in range(0, len(chunk), CHUNK):
        new = await _ingest_chunk(uow, chunk[start : start + CHUNK])
        accepted += len(new)
    duplicates += len(valid) - accepted
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


async def _ingest_chunk(uow: UnitOfWork, records: list[LearningRecorded]) -> list[LearningRecorded]:
    """Store the records whose id is new, queue them for the province, announce them."""
    dialect = uow.session.get_bind().dialect.name
    now = utcnow()
    stored = await uow.session.execute(
        insert_ignoring_duplicates(
            LearningRecord.__table__, dialect, index_elements=["record_id"]
        ).returning(LearningRecord.__table__.c.record_id),
        [
            {
                "id": new_id(),
                "record_id": r.record_id,
                "id_number": r.id_number,
                "year": r.year,
                "subject": r.subject,
                "hours": r.hours,
                "course": r.course,
                "completed_at": r.completed_at,
                "created_at": now,
                "updated_at": now,
            }
            for r in records
        ],
    )
    fresh = set(stored.scalars().all())
    new = [r for r in records if r.record_id in fresh]
    if not new:
        return []
    persons = {
        p.id_number: p
        for p in await uow.session.scalars(
            select(PersonReplica).where(PersonReplica.id_number.in_({r.id_number for r in new}))
        )
    }
    await uow.session.execute(
        insert_ignoring_duplicates(OutboundRecord.__table__, dialect, index_elements=["id"]),
        [_outbound(r, persons.get(r.id_number), now) for r in new],
    )
    uow.emit(LearningRecordedBatch(records=new), subject=_batch_key(new))
    return new


def _outbound(
    record: LearningRecorded, person: PersonReplica | None, now: datetime
) -> dict[str, Any]:
    return {
        "id": f"city-{record.record_id}",
        "source": "city_platform",
        "claim_id": None,
        "person_id": person.person_id if person else None,
        "id_number": record.id_number,
        "name": person.name if person else UNKNOWN_NAME,
        "year": record.year,
        "subject": record.subject,
        "hours": record.hours,
        "category": "city_platform",
        "title": record.course,
        "completed_at": record.completed_at,
        "status": "pending",
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
    }


def _person_key(id_number: str) -> str:
    """The log key of one person's records: orders them, and never exposes the raw ID number."""
    return "person-" + hashlib.sha256(id_number.encode()).hexdigest()[:16]


def _batch_key(records: list[LearningRecorded]) -> str:
    """The log key of a chunk: its first record's person (a chunk spans persons; the records of
    one chunk are independent additions, so no order across chunks is needed)."""
    return _person_key(records[0].id_number)


class LearningRecordIn(BaseModel):
    """One pushed record as the city platform must send it: bounded, ids ASCII after folding
    full-width forms (the ID number is checked by GB 11643 below)."""

    record_id: AsciiId
    id_number: str = Field(max_length=32)
    year: int = Field(ge=2000, le=2100)
    subject: Subject
    hours: float
    course: str = Field(min_length=1, max_length=300)
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
    if not record.record_id.strip() or len(record.record_id) > 100:
        raise ValueError("record_id must be 1 to 100 characters")
    if len(record.course) > 300:
        raise ValueError("course must be at most 300 characters")
    if record.completed_at.tzinfo is None:
        record.completed_at = record.completed_at.replace(tzinfo=BEIJING)
    record.completed_at = record.completed_at.astimezone(UTC)
    return record
