"""Response models of the sync service (API.md: province and city platform): what the OpenAPI
document promises for every 2xx JSON response. Timestamps are ISO 8601 strings as the views always
wrote them."""

from __future__ import annotations

from pydantic import BaseModel

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
    registered_at: str | None
    created_at: str


class RecordPage(BaseModel):
    items: list[RecordOut]
    next_cursor: str | None


class SyncSummary(BaseModel):
    records: dict[str, int]  # status -> count, only the statuses that occur


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


class ReconciliationOut(BaseModel):
    year: int
    checked: int
    matched: int
    mismatched: list[Mismatch]
