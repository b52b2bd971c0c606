"""Learning records pushed by the city e-learning platform: validated, deduplicated by their
record id, announced as ``learning.recorded`` and queued for the province (no review needed)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from sqlalchemy import select

from libs.common.asciitext import AsciiId, fold_width
from libs.common.errors import RuleViolation
from libs.common.events import LearningRecorded, Subject
from libs.common.idnumber import validate_id_number
from libs.common.uow import UnitOfWork
from services.sync.models import LearningRecord, OutboundRecord, PersonReplica

UNKNOWN_NAME = "(city platform)"  # the province needs a name; the city platform sends none
MAX_RECORD_HOURS = 100  # a sanity bound on one city-platform record (a year needs 90 in all)


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
