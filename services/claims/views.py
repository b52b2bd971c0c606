"""What the claims service answers (API.md, claims): one pydantic model per JSON response, so
the OpenAPI document names every 2xx schema and generated clients get typed objects.

Timestamps are ISO 8601 strings as the service has always written them (``isoformat()``);
hours are floats with one decimal."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from libs.common.events import Affiliation
from libs.common.timestamps import Timestamp
from services.claims.contacts import ContactsView
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
    created_at: Timestamp


class PersonListItem(BaseModel):
    """A row of ``GET /v1/persons``: the masked ID number only (lists never carry the full one;
    ``GET /v1/persons/{id}`` does, for those who may see it)."""

    id: str
    name: str
    id_number_masked: str
    affiliation: Affiliation
    org_name: str | None = Field(description="the name of the unit or agency, as review names it")
    created_at: Timestamp


class PersonPage(BaseModel):
    items: list[PersonListItem]
    next_cursor: str | None
    total: int = Field(description="every person matching the filters in the caller's scope")


class MeSummary(BaseModel):
    required: Required
    credited: CreditedHours
    pending: SubjectHours
    compliant: bool


class MeView(PersonView):
    year: int
    summary: MeSummary
    # whom to ask (八): the auditing bureau, the city bureau, the platform's support line
    contacts: ContactsView | None = None


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
    revoked_at: Timestamp | None
    leave_kind: str | None = None
    # ids of the interpretations (the transcript's ``interpretations``) this entry follows
    interpretations: list[str] = []


class InterpretationView(BaseModel):
    """A reading of the notice applied to this transcript (docs/rules.md)."""

    id: str
    section: str
    text: str


class Transcript(BaseModel):
    person_id: str
    year: int
    required: Required
    credited: CreditedHours
    pending: SubjectHours
    gaps: SubjectHours
    compliant: bool
    entries: list[TranscriptEntry]
    # the interpretations of the notice its entries follow, and the general ones
    interpretations: list[InterpretationView] = []


# --- evidence -------------------------------------------------------------------------------


class EvidenceView(BaseModel):
    id: str
    sha256: str
    content_type: str
    size: int
    filename: str | None
    created_at: Timestamp


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
    leave_kind: str | None = None
    leave_reason: str | None = None
    start_date: str | None = Field(default=None, description="the first day, as claimed")
    end_date: str | None = Field(default=None, description="the last day, as claimed")
    months: int | None = Field(
        default=None, description="aid deployment / special leave (computed from the dates)"
    )
    travel_days: int | None = Field(
        default=None, description="expert_activity: travel and rest days (往返和休息), not credited"
    )
    transfer_date: str | None = Field(default=None, description="transfer_in: date of transfer")
    issuing_authority: str | None = Field(
        default=None, description="transfer_in: who issued the previous locality's certificate"
    )
    sync_status: SyncStatus
    evidence_ids: list[str]
    created_at: Timestamp
    updated_at: Timestamp


class ClaimPerson(BaseModel):
    id: str
    name: str
    id_number_masked: str
    org_id: str


class ClaimListItem(ClaimView):
    """A row of ``GET /v1/claims``: the claim and whose it is (masked ID number only)."""

    person: ClaimPerson


class ClaimPage(BaseModel):
    items: list[ClaimListItem]
    next_cursor: str | None
    total: int = Field(description="every claim matching the filters in the caller's scope")


# --- the compliance report ------------------------------------------------------------------


class OrgRef(BaseModel):
    id: str
    name: str
    type: str


class OrgSummary(BaseModel):
    org_id: str
    org_name: str | None
    parent_id: str | None = Field(
        default=None, description="the org's parent (its district or department)"
    )
    self_appraising: bool = Field(
        default=False, description="the org is a 职称自主评聘单位 (五(二))"
    )
    persons: int
    compliant: int
    non_compliant: int
    gaps: SubjectHours | None = Field(
        default=None, description="the hours the org's persons still miss, summed per subject"
    )


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
    self_appraising: bool = Field(
        default=False,
        description="the person's unit is a 职称自主评聘单位 (五(二)); their hours still reach "
        "the province",
    )


class ComplianceReport(BaseModel):
    year: int
    org: OrgRef | None
    required: Required
    generated_at: Timestamp
    summary: ReportSummary | None = Field(
        description="the whole scope: on the first page (no cursor), or with summary=true"
    )
    items: list[ReportItem]
    next_cursor: str | None


class ShortCounts(BaseModel):
    public: int
    professional: int


class OrgComplianceRow(BaseModel):
    """One org of ``GET /v1/reports/compliance/by-org``: its persons and those of every org under
    it; ``gaps`` sums the hours they still miss per subject, ``short`` counts who misses any."""

    org_id: str | None = Field(description="null on the total row")
    code: str | None
    name: str
    type: str | None
    persons: int
    compliant: int
    non_compliant: int
    compliance_rate: float | None = Field(description="compliant / persons; null without persons")
    gaps: SubjectHours
    short: ShortCounts
    self_appraising: bool = Field(
        default=False, description="the org is a 职称自主评聘单位 (五(二)); false on the total row"
    )


class ComplianceByOrg(BaseModel):
    year: int
    org: OrgRef | None
    required: Required
    generated_at: Timestamp
    rows: list[OrgComplianceRow]
    total: OrgComplianceRow


# --- title readiness ------------------------------------------------------------------------


class ReadinessSubject(BaseModel):
    """One subject against the title deadline: approved in time, submitted in time and still in
    review (counts if approved), too late, and what is missing."""

    required: float
    approved: float
    pending_in_time: float
    too_late: float
    missing: float
    missing_if_pending_approved: float


class TitleReadiness(BaseModel):
    person_id: str
    year: int
    application_date: str
    deadline: str
    working_days: int
    required: SubjectHours
    compliant_now: bool
    compliant_by_deadline: bool
    compliant_if_pending_approved: bool
    credited_now: SubjectHours
    credited_by_deadline: SubjectHours
    subjects: dict[str, ReadinessSubject]
    warnings: list[str]


# --- the planner ----------------------------------------------------------------------------


class PlanOption(BaseModel):
    """A kind of claim (``source``: its category) or city-platform courses (``city_platform``)
    and how much of the subject's gap it can fill: ``items`` claims, ``days`` at the daily cap."""

    source: str
    label: str
    hours: float
    items: int | None
    days: int | None
    note: str | None


class SubjectPlan(BaseModel):
    """``gap``: required − credited; ``still_needed``: the gap left once the claims in review
    are approved (what the suggestions fill)."""

    required: float
    credited: float
    pending: float
    gap: float
    still_needed: float


class Suggestion(BaseModel):
    """How a subject's ``still_needed`` hours can be filled: ``options`` are alternatives (each
    alone at most what is needed, within its cap's room), ``plan`` one route through them."""

    subject: str
    still_needed: float
    summary: str
    options: list[PlanOption]
    plan: list[PlanOption]


class CapGroupPlan(BaseModel):
    label: str
    measure: str
    limit: float
    used: float
    pending: float
    room: float


class PlanDeadline(BaseModel):
    application_date: str
    deadline: str
    days_until_deadline: int
    still_needed_by_deadline: dict[str, float]
    must_do: str
    warnings: list[str]


class PlanView(BaseModel):
    person_id: str
    year: int
    compliant: bool
    compliant_if_pending_approved: bool
    subjects: dict[str, SubjectPlan]
    cap_groups: dict[str, CapGroupPlan]
    suggestions: list[Suggestion]
    window_closes: str
    days_left: int
    title_deadline: PlanDeadline | None


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
