"""The event envelope and the shared contracts (payload models) of every event.

Producer and consumer import the same models from here, so a field rename fails type checks on both
sides. A change that breaks a consumer is a new ``version`` of the event, never an edit in place.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Subject = Literal["public", "professional"]

# One topic per producing service, keyed by aggregate id: one aggregate's events stay ordered.
TOPICS: dict[str, str] = {
    "claims": "claims.events",
    "review": "review.events",
    "registry": "registry.events",
    "sync": "sync.events",
}


def topic_of(service: str) -> str:
    return TOPICS[service]


class Envelope(BaseModel):
    """What travels on the log: metadata plus the typed payload as ``data``."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str
    version: int = 1
    source: str
    occurred_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    subject: str
    correlation_id: str | None = None
    data: dict[str, Any]

    def to_bytes(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        return cls.model_validate_json(raw)


class Payload(BaseModel):
    """Base of every event payload; subclasses name their event type and version."""

    model_config = ConfigDict(extra="ignore")
    TYPE: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1

    def envelope(self, *, source: str, subject: str, correlation_id: str | None) -> Envelope:
        return Envelope(
            type=self.TYPE,
            version=self.VERSION,
            source=source,
            subject=subject,
            correlation_id=correlation_id,
            data=self.model_dump(mode="json"),
        )


class Affiliation(BaseModel):
    kind: Literal["unit", "agency"]
    org_id: str = Field(min_length=1, max_length=64)


class PersonRegistered(Payload):
    TYPE: ClassVar[str] = "person.registered"
    person_id: str
    id_number: str
    name: str
    affiliation: Affiliation


class PersonUpdated(Payload):
    TYPE: ClassVar[str] = "person.updated"
    person_id: str
    id_number: str
    name: str
    affiliation: Affiliation


class Credit(BaseModel):
    subject: Subject
    hours: float


class ClaimSubmitted(Payload):
    TYPE: ClassVar[str] = "claim.submitted"
    claim_id: str
    revision: int
    person_id: str
    person_name: str
    id_number_masked: str
    affiliation: Affiliation
    year: int
    category: str
    subject: Subject
    title: str
    requested_hours: float
    expected_credits: list[Credit]
    verified_evidence: bool = False
    evidence_ids: list[str] = Field(default_factory=list)
    references: dict[str, str] = Field(
        default_factory=dict, description="certificate_code / exam_card_no / reference_no given"
    )
    # optional, so version 1 stays readable both ways: special leave's kind and reason, for
    # the reviewers (None on every other category and on events written before they existed)
    leave_kind: str | None = None
    leave_reason: str | None = None
    # optional likewise: the filed training project (备案) the claim cites, given as project_id
    # or through its e-certificate; None when it cites none (or a filing number of another
    # department) and on events written before it existed
    project_id: str | None = None
    # optional likewise (issue 18): what the reviewer's task page shows beside the hours — the
    # claimed dates and months, and the warnings the rules gave at submission
    start_date: date | None = None
    end_date: date | None = None
    months: int | None = None
    warnings: list[str] = Field(default_factory=list)
    # optional likewise (issue 20): an expert activity's travel and rest days (not credited),
    # a transfer-in's transfer date and the authority that issued its certificate
    travel_days: int | None = None
    transfer_date: date | None = None
    issuing_authority: str | None = None


class ClaimWithdrawn(Payload):
    TYPE: ClassVar[str] = "claim.withdrawn"
    claim_id: str
    revision: int
    person_id: str


class ClaimCreditRevoked(Payload):
    TYPE: ClassVar[str] = "claim.credit_revoked"
    claim_id: str
    revision: int
    person_id: str
    year: int
    reason: str


class ClaimStagePassed(Payload):
    TYPE: ClassVar[str] = "claim.stage_passed"
    claim_id: str
    revision: int
    stage: Literal["unit", "authority"]
    next_stage: Literal["unit", "authority"]
    org_id: str


class ClaimApproved(Payload):
    TYPE: ClassVar[str] = "claim.approved"
    claim_id: str
    revision: int
    person_id: str
    org_id: str
    actor: str


class ClaimRejected(Payload):
    TYPE: ClassVar[str] = "claim.rejected"
    claim_id: str
    revision: int
    person_id: str
    stage: Literal["unit", "authority"]
    org_id: str
    actor: str
    reason: str


class ClaimCredited(Payload):
    """Published by claims once an approval is booked on the ledger: what reaches the province."""

    TYPE: ClassVar[str] = "claim.credited"
    claim_id: str
    revision: int
    person_id: str
    year: int
    category: str
    title: str
    credits: list[Credit]


class OrgUpserted(Payload):
    """Every change of an org (created, renamed, re-coded, moved, (de)activated) carries the whole
    org, so a replica just overwrites. ``active`` was added compatibly (default true)."""

    TYPE: ClassVar[str] = "org.upserted"
    org_id: str
    code: str
    name: str
    type: str
    parent_id: str | None
    active: bool = True
    # 职称自主评聘单位 (五(二)), added compatibly (default false)
    self_appraising: bool = False


class CertificateIssued(Payload):
    TYPE: ClassVar[str] = "certificate.issued"
    code: str
    project_id: str
    project_name: str
    id_number: str
    holder_name: str
    year: int
    subject: Subject
    hours: float


class CertificateRevoked(Payload):
    TYPE: ClassVar[str] = "certificate.revoked"
    code: str
    reason: str


class ExamCardIssued(Payload):
    TYPE: ClassVar[str] = "exam_card.issued"
    card_no: str
    id_number: str
    name: str
    year: int
    hours: float


class LearningRecorded(Payload):
    TYPE: ClassVar[str] = "learning.recorded"
    record_id: str
    id_number: str
    year: int
    subject: Subject
    hours: float
    course: str
    completed_at: datetime


class LearningRecordedBatch(Payload):
    """A chunk of city-platform records accepted in one ingest (each one as ``learning.recorded``
    would carry it): consumers apply the chunk in one transaction, deduplicated per record id."""

    TYPE: ClassVar[str] = "learning.recorded_batch"
    records: list[LearningRecorded] = Field(min_length=1)


class SyncRecordRegistered(Payload):
    TYPE: ClassVar[str] = "sync.record_registered"
    record_id: str
    claim_id: str | None
    province_receipt: str


class SyncRecordFailed(Payload):
    TYPE: ClassVar[str] = "sync.record_failed"
    record_id: str
    claim_id: str | None
    reason: str


class SyncRecordVoided(Payload):
    """A record whose credit was revoked is voided on the province (or never reached it)."""

    TYPE: ClassVar[str] = "sync.record_voided"
    record_id: str
    claim_id: str | None


class SyncRecordVoidFailed(Payload):
    """The province kept refusing to void a record whose credit was revoked."""

    TYPE: ClassVar[str] = "sync.record_void_failed"
    record_id: str
    claim_id: str | None
    reason: str


class ProjectApproved(Payload):
    """A training project filed (备案) with the city bureau: trainings under it count."""

    TYPE: ClassVar[str] = "project.approved"
    project_id: str
    name: str
    year: int
    applicant_org_id: str
    # 公需 (public) or 专业 (professional) per the filing; absent from producers before it was
    # added, read as "not said" (only a certificate can then say public)
    subject: str | None = None


class ProjectSubmitted(Payload):
    """A training project's filing (附件2) submitted to the city bureau for 备案."""

    TYPE: ClassVar[str] = "project.submitted"
    project_id: str
    name: str
    year: int
    applicant_org_id: str


class ProjectRejected(Payload):
    """The city bureau refused the filing: trainings under it earn no hours."""

    TYPE: ClassVar[str] = "project.rejected"
    project_id: str
    name: str
    year: int
    applicant_org_id: str
    opinion: str


class ProjectReturned(Payload):
    """The city bureau returned the filing for amendment; the applicant may resubmit it."""

    TYPE: ClassVar[str] = "project.returned"
    project_id: str
    name: str
    year: int
    applicant_org_id: str
    opinion: str


class ComplianceReminderDue(Payload):
    """For the mobile app's push service: this person has not met the year's requirement."""

    TYPE: ClassVar[str] = "compliance.reminder_due"
    person_id: str
    org_id: str
    year: int
    reminder_date: date
    credited: dict[str, float]
    gaps: dict[str, float]
    window_closes_at: datetime
