"""Learning records pushed by the city e-learning platform: validated, deduplicated by their
record id, announced in chunks as ``learning.recorded_batch`` and queued for the province (no
review needed).

The ingest is set-based: a push is validated in one pydantic call (the ID number check cached
per number: a person has many records), then per chunk one multi-row
``INSERT ... ON CONFLICT (record_id) DO NOTHING RETURNING record_id`` says which records are new,
one query fetches the names of the persons they belong to, and one more multi-row insert queues
the new ones for the province (:class:`~libs.common.db.BulkInsert`: statements compiled once)."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

from pydantic import Field, TypeAdapter, ValidationError
from sqlalchemy import select

from libs.common.asciitext import AsciiId, fold_width
from libs.common.db import BulkInsert, new_id, utcnow
from libs.common.errors import RuleViolation
from libs.common.events import LearningRecorded, LearningRecordedBatch, Subject
from libs.common.idnumber import validate_id_number
from libs.common.uow import UnitOfWork
from services.sync.models import LearningRecord, OutboundRecord, PersonReplica

UNKNOWN_NAME = "(city platform)"  # the province needs a name; the city platform sends none
MAX_RECORD_HOURS = 100  # a sanity bound on one city-platform record (a year needs 90 in all)
CHUNK = 500  # rows per statement and per batch event (well inside every parameter limit)
BEIJING = timezone(timedelta(hours=8))  # a completion time without an offset is Beijing time

_store = BulkInsert(
    LearningRecord.__table__,
    [
        "id",
        "record_id",
        "id_number",
        "year",
        "subject",
        "hours",
        "course",
        "completed_at",
        "created_at",
        "updated_at",
    ],
    conflict=["record_id"],
    returning=["record_id"],
    chunk=CHUNK,
)
_queue = BulkInsert(
    OutboundRecord.__table__,
    [
        "id",
        "source",
        "claim_id",
        "person_id",
        "id_number",
        "name",
        "year",
        "subject",
        "hours",
        "category",
        "title",
        "completed_at",
        "status",
        "attempts",
        "created_at",
        "updated_at",
    ],
    conflict=["id"],
    chunk=CHUNK,
)


async def ingest_learning_records(uow: UnitOfWork, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Accept a batch from the city platform: deduplicated by its record id (within the batch
    and against every earlier one), the accepted records announced in chunks and queued for the
    province (no declaration needed). Per-record outcome, never all-or-nothing."""
    checked, refused = validate_learning(records)
    valid: dict[str, LearningRecorded] = {}
    duplicates = 0
    for record in checked:
        if record.record_id in valid:
            duplicates += 1
            continue
        valid[record.record_id] = record
    rejected = [
        {"record_id": fold_width(str(records[i].get("record_id") or ""))[:128], "reason": reason}
        for i, reason in refused
    ]
    accepted = 0
    chunk = list(valid.values())
    for start in range(0, len(chunk), CHUNK):
        new = await _ingest_chunk(uow, chunk[start : start + CHUNK])
        accepted += len(new)
    duplicates += len(valid) - accepted
    return {"accepted": accepted, "duplicates": duplicates, "rejected": rejected}


async def _ingest_chunk(uow: UnitOfWork, records: list[LearningRecorded]) -> list[LearningRecorded]:
    """Store the records whose id is new, queue them for the province, announce them."""
    now = utcnow()
    stored = await _store.execute(
        uow.session,
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
    fresh = {record_id for (record_id,) in stored}
    new = [r for r in records if r.record_id in fresh]
    if not new:
        return []
    persons: dict[str, tuple[str, str]] = {
        id_number: (person_id, name)
        for id_number, person_id, name in await uow.session.execute(
            select(PersonReplica.id_number, PersonReplica.person_id, PersonReplica.name).where(
                PersonReplica.id_number.in_({r.id_number for r in new})
            )
        )
    }
    await _queue.execute(uow.session, [_outbound(r, persons.get(r.id_number), now) for r in new])
    uow.emit(LearningRecordedBatch(records=new), subject=_batch_key(new))
    return new


def _outbound(
    record: LearningRecorded, person: tuple[str, str] | None, now: datetime
) -> dict[str, Any]:
    return {
        "id": f"city-{record.record_id}",
        "source": "city_platform",
        "claim_id": None,
        "person_id": person[0] if person else None,
        "id_number": record.id_number,
        "name": person[1] if person else UNKNOWN_NAME,
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


@lru_cache(maxsize=65536)
def _id_number(value: str, today: date) -> str:
    """The checked ID number (cached: a person has many records in a push)."""
    return validate_id_number(value, today=today)


class LearningRecordIn(LearningRecorded):
    """One pushed record as the city platform must send it: bounded, ids ASCII after folding
    full-width forms. A subclass of the event's record, so a valid one is announced as it is
    (no copy); :func:`validate_learning` checks the rest (ID number, hours, time zone)."""

    record_id: AsciiId
    id_number: str = Field(max_length=32)
    year: int = Field(ge=2000, le=2100)
    subject: Subject
    hours: float
    course: str = Field(min_length=1, max_length=300)
    completed_at: datetime


_PUSH = TypeAdapter(list[LearningRecordIn])


def validate_learning(
    raws: list[dict[str, Any]],
) -> tuple[list[LearningRecorded], list[tuple[int, str]]]:
    """The valid records of a push, and (index, reason) of each refused one, in push order.

    One pydantic call for the whole push (if some records do not fit the schema, their first
    errors give the reasons and a second call validates the others), then one pass of the
    domain checks."""
    refused: dict[int, str] = {}
    try:
        shaped = _PUSH.validate_python(raws)
        indices: list[int] | range = range(len(raws))
    except ValidationError as exc:
        for error in exc.errors():
            index, *field = error["loc"]
            assert isinstance(index, int)
            refused.setdefault(index, f"{'.'.join(map(str, field))}: {error['msg']}")
        indices = [i for i in range(len(raws)) if i not in refused]
        shaped = _PUSH.validate_python([raws[i] for i in indices])
    today = date.today()
    records: list[LearningRecorded] = []
    for index, record in zip(indices, shaped, strict=True):
        try:
            _check(record, today)
        except ValueError as exc:
            refused[index] = str(exc)
            continue
        records.append(record)
    return records, sorted(refused.items())


def _check(record: LearningRecorded, today: date) -> None:
    """The domain checks of one record; normalises its ID number and completion time."""
    try:
        record.id_number = _id_number(record.id_number, today)
    except RuleViolation as exc:
        raise ValueError(exc.detail) from exc
    if not 0 < record.hours <= MAX_RECORD_HOURS or round(record.hours, 1) != record.hours:
        raise ValueError(
            f"hours must be more than 0 and at most {MAX_RECORD_HOURS} a record, with one decimal"
        )
    if not record.record_id.strip() or len(record.record_id) > 100:
        raise ValueError("record_id must be 1 to 100 characters")
    if record.completed_at.tzinfo is None:
        record.completed_at = record.completed_at.replace(tzinfo=BEIJING)
    completed_year = record.completed_at.astimezone(BEIJING).year
    if completed_year != record.year:
        # 四(二): a record counts for the year it was completed in (Beijing time), never another
        raise ValueError(
            f"completed_at {record.completed_at.astimezone(BEIJING).date()} (Beijing time) is "
            f"outside the record's year {record.year}: a record counts only for the year it "
            "was completed in"
        )
    record.completed_at = record.completed_at.astimezone(UTC)


def _valid_learning(raw: dict[str, Any]) -> LearningRecorded:
    """One record, or ``ValueError`` with the reason it is refused."""
    records, refused = validate_learning([raw])
    if refused:
        raise ValueError(refused[0][1])
    return records[0]
