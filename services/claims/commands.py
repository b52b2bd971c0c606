"""The claim command: what a person sends to claim hours (``POST /v1/claims`` and a revision),
typed from the HTTP body through the use cases to the rules. The latest revision's command is
kept on the claim (``Claim.body``, as JSON) and read back with :meth:`ClaimCommand.of_claim`."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from libs.common.asciitext import AsciiId, EntityId, FoldedText

Subject = Literal["public", "professional"]
# the fields that name a record of the registry or another HR department
REFERENCE_FIELDS = ("certificate_code", "exam_card_no", "reference_no")


class CreditIn(BaseModel):
    subject: Subject
    hours: float = Field(ge=-10_000, le=10_000)


class ClaimCommand(BaseModel):
    person_id: EntityId
    year: int = Field(ge=2000, le=2100)
    category: str = Field(max_length=40)
    subject: Subject | None = None
    title: str = Field(min_length=1, max_length=300)
    hours: float | None = None
    start_date: date | None = None
    end_date: date | None = None
    months: int | None = None
    # full-width forms folded to ASCII; the codes of other systems are ASCII only after that
    reference_no: FoldedText | None = Field(default=None, max_length=200)
    certificate_code: AsciiId | None = None
    exam_card_no: AsciiId | None = None
    project_id: EntityId | None = Field(
        default=None, description="a training project filed with the city (备案)"
    )
    leave_kind: str | None = Field(
        default=None,
        max_length=20,
        description="special_leave: abroad, sick (each more than 6 months), maternity, other",
    )
    leave_reason: str | None = Field(
        default=None, max_length=500, description="special_leave of kind other: why it counts"
    )
    travel_days: int | None = Field(
        default=None,
        ge=-1000,
        le=1000,
        description="expert_activity: travel and rest days (往返和休息) in the span, not credited",
    )
    transfer_date: date | None = Field(
        default=None, description="transfer_in: the date of the transfer to Zaozhuang (外地调入)"
    )
    issuing_authority: str | None = Field(
        default=None,
        max_length=200,
        description="transfer_in: the previous locality's authority that issued the certificate",
    )
    credits: list[CreditIn] | None = Field(default=None, max_length=10)
    evidence_ids: list[EntityId] = Field(default_factory=list, max_length=50)

    @classmethod
    def of_claim(cls, body: dict[str, Any]) -> ClaimCommand:
        """The command stored on a claim (``Claim.body``)."""
        return cls.model_validate(body)

    def stored(self) -> dict[str, Any]:
        """The JSON kept on the claim (``Claim.body``) and hashed for idempotency."""
        return self.model_dump(mode="json", exclude_none=True)

    def references(self) -> dict[str, str]:
        return {f: str(v) for f in REFERENCE_FIELDS if (v := getattr(self, f))}

    def reference(self, field: str) -> str | None:
        value = getattr(self, field, None)
        return str(value) if value else None
