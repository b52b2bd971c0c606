"""Response models of the registry (API.md: projects, certificates, exam cards): what the OpenAPI
document promises for every 2xx JSON response, and the functions that shape them. A certificate's
public view never carries the full ID number."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from libs.common.idnumber import mask_id_number
from libs.common.timestamps import UtcDatetime
from services.registry.models import Certificate, ExamCard, Project
from services.registry.service import ProjectFields, RowResult

# a filing's status (API.md): an enum in the OpenAPI document wherever it is shown
ProjectStatusName = Literal["draft", "submitted", "approved", "rejected", "returned"]


class ProjectOut(ProjectFields):
    id: str
    planned_hours: float  # type: ignore[assignment]  # hours are JSON numbers
    status: ProjectStatusName
    opinion: str | None
    submitted_at: UtcDatetime | None
    decided_at: UtcDatetime | None
    created_at: UtcDatetime
    updated_at: UtcDatetime


class StepOut(BaseModel):
    action: str
    actor: str
    org_id: str | None
    opinion: str | None
    status: ProjectStatusName
    at: UtcDatetime


class HistoryOut(BaseModel):
    project_id: str
    status: str
    steps: list[StepOut]


class ProjectPage(BaseModel):
    items: list[ProjectOut]
    next_cursor: str | None
    total: int = Field(description="every filing matching the filters that the caller sees")


class RosterOut(BaseModel):
    project_id: str
    rows: int
    issued: int
    recorded: int
    unchanged: int
    rejected: int
    results: list[RowResult]


class CertificateOut(BaseModel):
    """What anyone may learn about a certificate from its code: never the full ID number."""

    code: str
    status: Literal["valid", "revoked"]
    holder_name: str
    id_number_masked: str
    project_id: str
    project_name: str
    year: int
    subject: str
    hours: float
    issued_at: UtcDatetime
    revoked_reason: str | None = None
    revoked_at: UtcDatetime | None = None


class CertificatePage(BaseModel):
    items: list[CertificateOut]
    next_cursor: str | None


class ExamCardOut(BaseModel):
    card_no: str
    id_number_masked: str
    name: str
    year: int
    hours: float
    issued_at: UtcDatetime


def project_view(project: Project) -> ProjectOut:
    return ProjectOut.model_validate(project, from_attributes=True)


def certificate_view(cert: Certificate, project: Project) -> CertificateOut:
    return CertificateOut(
        code=cert.code,
        status=cert.status,  # type: ignore[arg-type]
        holder_name=cert.holder_name,
        id_number_masked=mask_id_number(cert.id_number),
        project_id=project.id,
        project_name=project.name,
        year=cert.year,
        subject=cert.subject,
        hours=float(cert.hours),
        issued_at=cert.created_at,
        revoked_reason=cert.revoked_reason,
        revoked_at=cert.revoked_at,
    )


def card_view(card: ExamCard) -> ExamCardOut:
    return ExamCardOut(
        card_no=card.card_no,
        id_number_masked=mask_id_number(card.id_number),
        name=card.name,
        year=card.year,
        hours=float(card.hours),
        issued_at=card.created_at,
    )
