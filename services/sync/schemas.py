"""Response models of the sync service (API.md: province and city platform): what the OpenAPI
document promises for every 2xx JSON response. Timestamps are ISO 8601 strings as the views always
wrote them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from libs.common.timestamps import Timestamp
from services.sync.models import RecordSource, RecordStatus


class RecordOut(BaseModel):
    record_id: str
    source: RecordSource
    claim_id: str | None
    person_id: str | None
    year: int
    subject: str
    hours: float
    status: RecordStatus
    attempts: int
    last_error: str | None
    receipt: str | None
    registered_at: Timestamp | None
    created_at: Timestamp


class RecordPage(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None


class SyncSummary(BaseModel):
    records: dict[str, int]  # status -> count, only the statuses that occur
    pending: int
    in_flight: int  # leased by a sender right now
    failed: int  # failed registrations and voids the province kept refusing
    waiting_person: int
    void_pending: int
    oldest_pending_age_s: float  # 0 when nothing is pending
    outbox_unpublished: int
    outbox_oldest_age_s: float
    circuit_breaker: Literal["closed", "open", "half_open"]


class LearningRejected(BaseModel):
    record_id: str
    reason: str


class LearningRecordsOut(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[LearningRejected]


class SubjectHours(BaseModel):
    public: float
    professional: float


class Mismatch(BaseModel):
    person_id: str | None
    id_number_masked: str
    ours: SubjectHours
    province: SubjectHours


class Repair(BaseModel):
    applied: bool  # false on a dry run: what a repair would do
    requeue: list[str]  # record ids the province lacks, queued again
    void: list[str]  # record ids the province holds beyond ours, voided there


class ReconciliationOut(BaseModel):
    year: int
    checked: int
    matched: int
    mismatched: list[Mismatch]
    repair: Repair
