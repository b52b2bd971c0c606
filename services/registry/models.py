"""The registry's tables: project filings (附件2) and their history, completions, e-certificates,
exam-staff cards, and the read models fed by other services' events (the org tree, persons)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
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

Hours = Numeric(8, 1, asdecimal=True)


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


infra = InfraTables(Base.metadata)


class OrgReplica(Base):
    """The org tree as review publishes it (``org.upserted``): who may file, who is city-direct."""

    __tablename__ = "org_replica"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    code: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(20))
    parent_id: Mapped[str | None] = mapped_column(String(36))
    # a deactivated org files nothing, uploads no completions and issues no cards
    active: Mapped[bool] = mapped_column(Boolean, server_default=true(), default=True)


class PersonReplica(Base):
    """Persons as claims publishes them (``person.registered/updated``): a personnel token names
    a person, and the person's ID number finds their certificates."""

    __tablename__ = "person_replica"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(100))


class Project(IdMixin, TimestampMixin, Base):
    """A training-project filing: exactly the fields of 附件2, plus its state and opinions."""

    __tablename__ = "projects"
    year: Mapped[int] = mapped_column(Integer, index=True)
    applicant_org_id: Mapped[str] = mapped_column(String(36), index=True)
    address: Mapped[str] = mapped_column(String(300))
    name: Mapped[str] = mapped_column(String(300))
    person_in_charge: Mapped[str] = mapped_column(String(100))
    contact_name: Mapped[str] = mapped_column(String(100))
    contact_phone: Mapped[str] = mapped_column(String(30))
    advanced_seminar: Mapped[bool] = mapped_column(default=False)
    plan: Mapped[str] = mapped_column(Text)
    target_trainees: Mapped[str] = mapped_column(Text)
    planned_participants: Mapped[int] = mapped_column(Integer)
    start_date: Mapped[date]
    end_date: Mapped[date]
    days: Mapped[int] = mapped_column(Integer)
    planned_hours: Mapped[Any] = mapped_column(Hours)
    venue: Mapped[str] = mapped_column(String(300))
    form: Mapped[str] = mapped_column(String(10))  # online | offline | mixed
    # 数字化管理师 (初级/中级) is a project kind that carries its level
    kind: Mapped[str] = mapped_column(String(30), default="training")
    # what its certificates count for: professional, or public when the course is a 公需 one
    subject: Mapped[str] = mapped_column(String(20), default="professional")
    level: Mapped[str | None] = mapped_column(String(20))
    unit_opinion: Mapped[str | None] = mapped_column(Text)  # 申报单位意见
    # draft | submitted | approved | rejected | returned
    status: Mapped[str] = mapped_column(String(20), default="draft", index=True)
    opinion: Mapped[str | None] = mapped_column(Text)  # the HR department's (city bureau's)
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(100))


class ProjectStep(Base):
    """Append-only: every step of every filing (created, amended, submitted, decided)."""

    __tablename__ = "project_history"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    action: Mapped[str] = mapped_column(String(20))
    actor: Mapped[str] = mapped_column(String(100))
    org_id: Mapped[str | None] = mapped_column(String(36))
    opinion: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))  # the filing's status after the step
    at: Mapped[datetime] = mapped_column(default=utcnow)


class Completion(IdMixin, Base):
    """One trainee's result on a project's roster; one per person and project."""

    __tablename__ = "completions"
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(100))
    hours: Mapped[Any] = mapped_column(Hours)
    passed: Mapped[bool]
    certificate_code: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "id_number"),)


class Certificate(IdMixin, TimestampMixin, Base):
    """An e-certificate (电子证书): one per passed completion, found by its unguessable code."""

    __tablename__ = "certificates"
    code: Mapped[str] = mapped_column(String(64), unique=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    holder_name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[Any] = mapped_column(Hours)
    status: Mapped[str] = mapped_column(String(20), default="valid")  # valid | revoked
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None] = mapped_column(String(100))

    __table_args__ = (UniqueConstraint("project_id", "id_number"),)


class ExamCard(IdMixin, TimestampMixin, Base):
    """学时登记卡 issued by the city exam centre: one per person and year."""

    __tablename__ = "exam_cards"
    card_no: Mapped[str] = mapped_column(String(64), unique=True)
    id_number: Mapped[str] = mapped_column(String(18))
    name: Mapped[str] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    hours: Mapped[Any] = mapped_column(Hours)
    issued_by_org_id: Mapped[str] = mapped_column(String(36))

    __table_args__ = (UniqueConstraint("id_number", "year"),)
