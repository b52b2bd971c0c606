from __future__ import annotations

from datetime import datetime
from typing import Literal

from sqlalchemy import Index, Integer, Numeric, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from libs.common.db import (
    TYPE_ANNOTATION_MAP,
    IdMixin,
    InfraTables,
    TimestampMixin,
    service_metadata,
)


class Base(DeclarativeBase):
    metadata = service_metadata()
    type_annotation_map = TYPE_ANNOTATION_MAP


infra = InfraTables(Base.metadata)

RecordSource = Literal["claim", "city_platform"]
# pending -> registered | failed; waiting_person while the ID number has not arrived yet;
# a registered record whose credit is revoked: void_pending -> voided
RecordStatus = Literal[
    "pending", "registered", "failed", "waiting_person", "void_pending", "voided"
]


class PersonReplica(Base):
    """ID numbers and names from ``person.*`` events: what the province keys records by."""

    __tablename__ = "person_replica"
    person_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    name: Mapped[str] = mapped_column(String(100))


class OutboundRecord(TimestampMixin, Base):
    """One record to register with the province. ``id`` is ours and the idempotency key there."""

    __tablename__ = "outbound_records"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    source: Mapped[RecordSource] = mapped_column(String(20))
    claim_id: Mapped[str | None] = mapped_column(String(36), index=True)
    person_id: Mapped[str | None] = mapped_column(String(36), index=True)
    id_number: Mapped[str | None] = mapped_column(String(18))
    name: Mapped[str | None] = mapped_column(String(100))
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[float] = mapped_column(Numeric(8, 1, asdecimal=False))
    category: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(300))
    completed_at: Mapped[datetime]
    status: Mapped[RecordStatus] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    receipt: Mapped[str | None] = mapped_column(String(128))
    registered_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_outbound_status_next", "status", "next_attempt_at"),)


class LearningRecord(IdMixin, TimestampMixin, Base):
    """A city-platform learning record as received (deduplicated by its record id)."""

    __tablename__ = "learning_records"
    record_id: Mapped[str] = mapped_column(String(128), unique=True)
    id_number: Mapped[str] = mapped_column(String(18), index=True)
    year: Mapped[int] = mapped_column(Integer)
    subject: Mapped[str] = mapped_column(String(20))
    hours: Mapped[float] = mapped_column(Numeric(8, 1, asdecimal=False))
    course: Mapped[str] = mapped_column(String(300))
    completed_at: Mapped[datetime]
