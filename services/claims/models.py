from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

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
    service_metadata,
    utcnow,
)


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


infra = InfraTables(Base.metadata)


class ClaimStatus(StrEnum):
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    REVOKED = "revoked"  # its evidence stopped being valid while in review: nothing credited


class ReviewStage(StrEnum):
    UNIT = "unit"
    AUTHORITY = "authority"


class SyncStatus(StrEnum):
    """Whether the credits of an approved claim reached the province."""

    NOT_APPLICABLE = "not_applicable"
    PENDING = "pending"
    REGISTERED = "registered"
    FAILED = "failed"
    # the claim's credit was revoked (its certificate revoked) and its province record voided,
    # or the province kept refusing the void
    VOIDED = "voided"
    VOID_FAILED = "void_failed"


class LedgerSource(StrEnum):
    CLAIM = "claim"
    CITY_PLATFORM = "city_platform"


Hours = Numeric(8, 1, asdecimal=True)


class Person(IdMixin, TimestampMixin, Base):
    __tablename__ = "persons"
    id_number: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(30))
    affiliation_kind: Mapped[str] = mapped_column(String(10))  # unit | agency
    org_id: Mapped[str] = mapped_column(String(36))
    # the login (token subject) of a person who registered themselves
    account_sub: Mapped[str | None] = mapped_column(String(100), unique=True)

    # the report's keyset (org_id, id) in index order; serves the queries by org_id too
    __table_args__ = (Index("ix_persons_org_id_id", "org_id", "id"),)


class OrgReplica(Base):
    """The org tree as review publishes it (``org.upserted``): scopes reads and reports."""

    __tablename__ = "org_replica"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # deactivated in review: no one is registered into it or transferred to it any more
    active: Mapped[bool] = mapped_column(default=True, server_default=true())
    # 职称自主评聘单位 (五(二)), as review keeps it: shown on the reports
    self_appraising: Mapped[bool] = mapped_column(default=False, server_default=false())


class Evidence(IdMixin, TimestampMixin, Base):
    __tablename__ = "evidence"
    owner: Mapped[str] = mapped_column(String(100), index=True)  # principal sub that uploaded
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    content_type: Mapped[str] = mapped_column(String(50))
    size: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str | None] = mapped_column(String(255))
    storage_key: Mapped[str] = mapped_column(String(200))


class Claim(IdMixin, TimestampMixin, Base):
    __tablename__ = "claims"
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    year: Mapped[int] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(40))
    subject: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    revision: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(20), default=ClaimStatus.IN_REVIEW.value)
    stage: Mapped[str | None] = mapped_column(String(20), default=ReviewStage.UNIT.value)
    # what was claimed (the latest revision's body, as sent)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    requested_hours: Mapped[Any] = mapped_column(Hours)
    expected_credits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    warnings: Mapped[list[Any]] = mapped_column(JSON, default=list)
    credits: Mapped[list[Any]] = mapped_column(JSON, default=list)
    verified_evidence: Mapped[bool] = mapped_column(default=False)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    sync_status: Mapped[str] = mapped_column(String(20), default=SyncStatus.NOT_APPLICABLE.value)
    decided_at: Mapped[datetime | None]
    # when the current revision was submitted (title readiness: a conversion declared in time)
    submitted_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_claims_person_year", "person_id", "year", "status"),
        # the claims list across an org (GET /v1/claims?org_id=&status=): a status's claims in
        # the page's keyset order, read in index order instead of sorting them all
        Index("ix_claims_status_created", "status", "created_at", "id"),
    )


class ClaimReference(Base):
    """A piece of evidence (certificate code, card number, patent/paper number, file hash) backs
    one live claim of a person: the unique key refuses a second one without a race."""

    __tablename__ = "claim_references"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(30))
    value: Mapped[str] = mapped_column(String(200))
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)

    __table_args__ = (
        UniqueConstraint("person_id", "kind", "value"),
        # who else cites a personal certificate (evidence_of_another_person)
        Index("ix_claim_references_kind_value", "kind", "value"),
    )


class PersonalEvidenceHold(Base):
    """A personal certificate (a qualification or transfer-in certificate, an exam card) held by
    the one live claim citing it: its primary key refuses a second person's claim without a race
    (two persons submitting the same number at once: the second insert waits, then fails)."""

    __tablename__ = "personal_evidence_holds"
    kind: Mapped[str] = mapped_column(String(30), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), primary_key=True)
    person_id: Mapped[str] = mapped_column(String(36))
    claim_id: Mapped[str] = mapped_column(ForeignKey("claims.id"), index=True)


class LedgerEntry(IdMixin, TimestampMixin, Base):
    """Credited hours, append-mostly: one row per (source record, subject); revocation is a
    timestamp, never a delete, so the transcript can show what happened."""

    __tablename__ = "ledger"
    person_id: Mapped[str] = mapped_column(String(36))
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[Any] = mapped_column(Hours)
    source: Mapped[str] = mapped_column(String(20))  # claim | city_platform
    ref: Mapped[str] = mapped_column(String(100))
    category: Mapped[str | None] = mapped_column(String(40))
    title: Mapped[str | None] = mapped_column(String(300))
    note: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None]
    # a city-platform record: when the learning was completed (title readiness counts by it)
    completed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("source", "ref", "subject"),
        Index("ix_ledger_person_year", "person_id", "year"),
    )


class CertificateReplica(Base):
    """E-certificates as the registry publishes them (``certificate.issued/revoked``)."""

    __tablename__ = "certificate_replica"
    code: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(36))
    project_name: Mapped[str] = mapped_column(String(300))
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    holder_name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[Any] = mapped_column(Hours)
    status: Mapped[str] = mapped_column(String(20), default="valid")  # valid | revoked
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class ExamCardReplica(Base):
    """学时登记卡 issued by the city exam centre (``exam_card.issued``)."""

    __tablename__ = "exam_card_replica"
    card_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    hours: Mapped[Any] = mapped_column(Hours)


class ProjectReplica(Base):
    """Training projects filed (备案) with the city bureau (``project.approved``)."""

    __tablename__ = "project_replica"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    year: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    # the subject the filing certifies (public for a 公需 course); None when the event said none
    subject: Mapped[str | None] = mapped_column(String(20))


class ReminderLog(Base):
    """One ``compliance.reminder_due`` per person, year and reminder date, whatever restarts."""

    __tablename__ = "reminder_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(36))
    year: Mapped[int] = mapped_column(Integer)
    reminder_date: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("person_id", "year", "reminder_date"),)


class PendingLearning(Base):
    """City-platform records of someone not registered here yet; booked when they register."""

    __tablename__ = "pending_learning"
    record_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[Any] = mapped_column(Hours)
    course: Mapped[str] = mapped_column(String(300))
    completed_at: Mapped[datetime]


class Notification(Base):
    """One line of a person's feed (``GET /v1/me/notifications``), written in the same unit of
    work as the change it reports. ``seq`` orders the feed (newest first) and keys its cursor."""

    __tablename__ = "notifications"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    person_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text)
    claim_id: Mapped[str | None] = mapped_column(String(36))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_notifications_person_seq", "person_id", "seq"),)
