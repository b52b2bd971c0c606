from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    false,
    true,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import (
    TYPE_ANNOTATION_MAP,
    IdMixin,
    InfraTables,
    TimestampMixin,
    new_id,
    service_metadata,
    utcnow,
)


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


infra = InfraTables(Base.metadata)

TaskStage = Literal["unit", "authority"]
TaskStatus = Literal["open", "decided", "cancelled"]
TaskDecision = Literal["approve", "reject"]
HistoryDecision = Literal["submitted", "approve", "reject", "withdrawn", "moved", "assigned"]


class Org(IdMixin, TimestampMixin, Base):
    __tablename__ = "orgs"
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20), index=True)
    parent_id: Mapped[str | None] = mapped_column(ForeignKey("orgs.id"), index=True)
    # a deactivated org takes no new claims; its open tasks went to its parent authority
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # 职称自主评聘单位 (五(二)): a unit that appraises its own staff's titles; the city sets it.
    # Its staff's hours are declared, reviewed and sent to the province like everyone's.
    self_appraising: Mapped[bool] = mapped_column(default=False, server_default=false())


class ReviewTask(IdMixin, TimestampMixin, Base):
    __tablename__ = "review_tasks"
    claim_id: Mapped[str] = mapped_column(String(36), index=True)
    revision: Mapped[int] = mapped_column(Integer)
    stage: Mapped[TaskStage] = mapped_column(String(20))
    status: Mapped[TaskStatus] = mapped_column(String(20), default="open")
    org_id: Mapped[str] = mapped_column(String(36))
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    person_name: Mapped[str] = mapped_column(String(100))
    id_number_masked: Mapped[str] = mapped_column(String(18))
    unit_org_id: Mapped[str] = mapped_column(String(36))
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    requested_hours: Mapped[float] = mapped_column(Numeric(8, 1, asdecimal=False))
    verified_evidence: Mapped[bool] = mapped_column(default=False)
    # what the reviewer checks: evidence files (readable from claims) and cited references
    evidence_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    references: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    # the filed training project (备案) the claim cites, directly or through its e-certificate;
    # its filing status is read from ``ReviewProject`` when the task is shown
    project_id: Mapped[str | None] = mapped_column(String(36))
    # special leave (special_leave claims): the kind and the reason the person gave
    leave_kind: Mapped[str | None] = mapped_column(String(20))
    leave_reason: Mapped[str | None] = mapped_column(Text)
    # what the claim said beside the hours (claim.submitted; null on tasks of older events)
    start_date: Mapped[date | None]
    end_date: Mapped[date | None]
    months: Mapped[int | None] = mapped_column(Integer)
    # expert activity: travel and rest days (not credited); transfer-in: date and issuer
    travel_days: Mapped[int | None] = mapped_column(Integer)
    transfer_date: Mapped[date | None]
    issuing_authority: Mapped[str | None] = mapped_column(String(200))
    expected_credits: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    warnings: Mapped[list[str] | None] = mapped_column(JSON)
    decision: Mapped[TaskDecision | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]

    # the queue page: one org's open tasks of a stage, oldest first, in index order
    __table_args__ = (
        Index(
            "ix_review_tasks_org_status_created", "org_id", "status", "stage", "created_at", "id"
        ),
    )


class HistoryEntry(Base):
    """Append-only: every step of every claim's review, never updated or deleted. Each step is
    chained to the one before it by hash (see ``services.review.history``)."""

    __tablename__ = "review_history"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    claim_id: Mapped[str] = mapped_column(String(36), index=True)
    seq: Mapped[int] = mapped_column(Integer)  # 1, 2, … per claim
    revision: Mapped[int] = mapped_column(Integer)
    stage: Mapped[TaskStage] = mapped_column(String(20))
    org_id: Mapped[str] = mapped_column(String(36))
    from_org_id: Mapped[str | None] = mapped_column(String(36))  # moves: where the task was
    actor: Mapped[str] = mapped_column(String(100))
    decision: Mapped[HistoryDecision] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("claim_id", "seq"),)


class HistoryHead(Base):
    """The last step of each claim's chain: appends lock it (one writer per claim at a time), and
    a deleted last step is detected against it."""

    __tablename__ = "review_history_heads"
    claim_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))


class ReviewPerson(Base):
    """Read model of persons' current affiliation (person.registered / person.updated): claims
    are routed by it, so a transfer seen before the claim still routes to the new unit."""

    __tablename__ = "review_persons"
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(String(36))


ProjectStatus = Literal["submitted", "approved", "returned", "rejected"]


class ReviewProject(Base):
    """Read model of the registry's training-project filings (``project.submitted`` /
    ``approved`` / ``returned`` / ``rejected``): reviewers see the filing status of the project
    a claim cites. Each event carries the whole state a reviewer needs, so it overwrites."""

    __tablename__ = "review_projects"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    year: Mapped[int] = mapped_column(Integer)
    applicant_org_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[ProjectStatus] = mapped_column(String(20))
    opinion: Mapped[str | None] = mapped_column(Text)  # the city bureau's, on return or rejection
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
