"""The contract of the province continuing-education platform (省平台), in one place.

The real province API is not public, so these models *are* the contract: the sync service's
client (:mod:`services.sync.province`) sends and parses them, and the simulator
(:mod:`simulators.province`) serves them (its ``/openapi.json`` documents them).
Registration is idempotent by ``record_id``; errors are RFC 9457 problem details; 429 carries
``Retry-After`` in seconds.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_BATCH = 100
"""The province takes at most this many records per registration request."""

ID_NUMBER_PATTERN = r"^\d{17}[\dX]$"
RECORD_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"

Subject = Literal["public", "professional"]
Source = Literal["claim", "city_platform"]


class ProvinceRecord(BaseModel):
    """One continuing-education record a city submits for registration."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    record_id: str = Field(
        min_length=1,
        max_length=128,
        pattern=RECORD_ID_PATTERN,
        description="The submitter's own id of the record; registration is idempotent by it.",
    )
    id_number: str = Field(
        pattern=ID_NUMBER_PATTERN,
        repr=False,
        description="Resident ID number (18 characters) of the person.",
    )
    name: str = Field(min_length=1, max_length=64, description="The person's name.")
    year: int = Field(ge=2000, le=2100, description="The year the hours count for.")
    subject: Subject = Field(description="Public (公需科目) or professional (专业科目) hours.")
    hours: float = Field(gt=0, le=1000, description="Hours, at most one decimal.")
    category: str = Field(
        min_length=1, max_length=64, description="Kind of learning (training, exam, paper, ...)."
    )
    title: str = Field(min_length=1, max_length=256, description="What was learned.")
    source: Source = Field(
        description="`claim` (approved by a city reviewer) or `city_platform` (city e-learning)."
    )
    completed_at: datetime = Field(description="When the learning was completed (ISO 8601).")

    @field_validator("hours")
    @classmethod
    def _one_decimal(cls, value: float) -> float:
        if abs(value * 10 - round(value * 10)) > 1e-6:
            raise ValueError("hours must have at most one decimal")
        return round(value, 1)


class RegisterRequest(BaseModel):
    """A batch of records to register."""

    model_config = ConfigDict(extra="forbid")

    records: list[ProvinceRecord] = Field(
        min_length=1, max_length=MAX_BATCH, description=f"1 to {MAX_BATCH} records."
    )


class Receipt(BaseModel):
    """The province's receipt for one record."""

    record_id: str = Field(description="The submitter's record id.")
    receipt: str = Field(description="The province's receipt number; the same on every replay.")
    duplicate: bool = Field(description="True when the record was already registered before.")
    voided: bool = Field(default=False, description="True when the record has since been voided.")


class RegisterResponse(BaseModel):
    """Receipts for a batch, in request order."""

    receipts: list[Receipt]


class VoidRequest(BaseModel):
    """Why a record is voided (optional)."""

    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=256, description="Free-text reason.")


class VoidReceipt(BaseModel):
    """A voided record; voiding again returns the same."""

    record_id: str
    receipt: str
    voided_at: datetime = Field(description="When the record was first voided.")


class HeldRecord(BaseModel):
    """A registered, non-voided record as the province holds it."""

    record_id: str
    receipt: str
    name: str
    year: int
    subject: Subject
    hours: float
    category: str
    title: str
    source: Source
    completed_at: datetime
    registered_at: datetime


class PersonHours(BaseModel):
    """A person's hours for one year: totals of the non-voided records and the records."""

    id_number: str = Field(repr=False)
    year: int
    public: float = Field(description="Public hours, rounded to one decimal.")
    professional: float = Field(description="Professional hours, rounded to one decimal.")
    records: list[HeldRecord]


class PersonTotal(BaseModel):
    """One person's totals for a year (non-voided records only)."""

    id_number: str = Field(repr=False)
    public: float
    professional: float
    records: int = Field(description="Number of non-voided records.")


class TotalsPage(BaseModel):
    """One page of per-person totals, ordered by ID number."""

    year: int
    items: list[PersonTotal]
    next_cursor: str | None = Field(
        default=None, description="Pass as `cursor` for the next page; null at the end."
    )


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code.")
    detail: str | None = None
