"""What the claims service answers (API.md, claims): one pydantic model per JSON response, so
the OpenAPI document names every 2xx schema and generated clients get typed objects.

Timestamps are ISO 8601 strings as the service has always written them (``isoformat()``);
hours are floats with one decimal."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from libs.common.events import Affiliation
from services.claims.models import ClaimStatus, LedgerSource, ReviewStage, SyncStatus

# --- hours ----------------------------------------------------------------------------------


class SubjectHours(BaseModel):
    public: float
    professional: float


class CreditedHours(SubjectHours):
    total: float


class Required(CreditedHours):
    """The year's requirement: each subject on its own, and the total."""


class CreditView(BaseModel):
    subject: str
    hours: float


# --- persons --------------------------------------------------------------------------------


class PersonView(BaseModel):
    """The full view, ID number included: only the person and in-scope admins reach it."""

    id: str
    name: str
    id_number: str
    id_number_masked: str
    phone: str | None
    affiliation: Affiliation
    created_at: str


class MeSummary(BaseModel):
    required: Required
    credited: CreditedHours
    pending: SubjectHours
    compliant: bool


class MeView(PersonView):
    year: int
    summary: MeSummary


# --- transcripts ----------------------------------------------------------------------------


class TranscriptEntry(BaseModel):
    source: LedgerSource
    ref: str
    category: str | None
    title: str | None
    subject: str
    hours: float
    counts: bool
    note: str | None
    at: str
    revoked_at: str | None


class Transcript(BaseModel):
    person_id: str
    year: int
    required: Required
    credited: CreditedHours
    pending: SubjectHours
    gaps: SubjectHours
    compliant: bool
    entries: list[TranscriptEntry]


# --- evidence -------------------------------------------------------------------------------


class EvidenceView(BaseModel):
    id: str
    sha256: str
    content_type: str
    size: int
    filename: str | None
    created_at: str


# --- claims ---------------------------------------------------------------------------------


class ClaimView(BaseModel):
    id: str
    person_id: str
    year: int
    category: str
    subject: str
    title: str
    revision: int
    status: ClaimStatus
    stage: ReviewStage | None
    requested_hours: float
    expected_credits: list[CreditView]
    warnings: list[str]
    credits: list[CreditView]
    rejection_reason: str | None
    sync_status: SyncStatus
    evidence_ids: list[str]
    created_at: str
    updated_at: str


class ClaimPage(BaseModel):
    items: list[ClaimView]
    next_cursor: str | None


# --- the compliance report ------------------------------------------------------------------


class OrgRef(BaseModel):
    id: str
    name: str
    type: str


class OrgSummary(BaseModel):
    org_id: str
    org_name: str | None
    persons: int
    compliant: int
    non_compliant: int


class ReportSummary(BaseModel):
    persons: int
    compliant: int
    non_compliant: int
    by_org: list[OrgSummary]


class ReportItem(BaseModel):
    id: str
    name: str
    id_number_masked: str
    org_id: str
    org_name: str | None
    credited: CreditedHours
    pending: SubjectHours
    gaps: SubjectHours
    compliant: bool


class ComplianceReport(BaseModel):
    year: int
    org: OrgRef | None
    required: Required
    generated_at: str
    summary: ReportSummary
    items: list[ReportItem]
    next_cursor: str | None


# --- title readiness ------------------------------------------------------------------------


class TitleReadiness(BaseModel):
    person_id: str
    year: int
    application_date: str
    deadline: str
    working_days: int
    required: SubjectHours
    compliant_now: bool
    compliant_by_deadline: bool
    credited_now: SubjectHours
    credited_by_deadline: SubjectHours
    warnings: list[str]


# --- reminders ------------------------------------------------------------------------------


class ReminderRunView(BaseModel):
    year: int
    reminder_date: str
    checked: int
    compliant: int
    emitted: int
    already_sent: int


def dump(model: BaseModel) -> dict[str, Any]:
    """The JSON-ready dict of a view (what idempotent creates store for replays)."""
    return model.model_dump(mode="json")
