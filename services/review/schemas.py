"""Response models of the review service (API.md: orgs and review): what the OpenAPI document
promises for every 2xx JSON response. Timestamps are ISO 8601 strings as the views always wrote
them."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from libs.common.timestamps import Timestamp
from services.review.models import (
    HistoryDecision,
    ProjectStatus,
    TaskDecision,
    TaskStage,
    TaskStatus,
)


class OrgOut(BaseModel):
    id: str
    code: str
    name: str
    type: str
    parent_id: str | None
    active: bool
    self_appraising: bool = Field(
        default=False, description="职称自主评聘单位 (五(二)): set by the city bureau, units only"
    )


class OrgListItem(OrgOut):
    children: int = Field(description="how many orgs are directly under this one")


class OrgDetail(OrgListItem):
    ancestors: list[OrgOut] = Field(description="the orgs above this one, the root first")


class OrgPage(BaseModel):
    items: list[OrgListItem]
    next_cursor: str | None
    total: int = Field(description="every org matching the filters")


class TaskPerson(BaseModel):
    id: str
    name: str
    id_number_masked: str


class TaskProject(BaseModel):
    """The filed training project (备案) a claim cites, as the registry last reported it."""

    id: str
    name: str | None = Field(description="null while the registry's filing has not reached review")
    year: int | None
    status: ProjectStatus | Literal["unknown"] = Field(
        description="the filing status at the registry: submitted (awaiting the city bureau), "
        "approved (filed: the training counts), returned (sent back for amendment), rejected; "
        "unknown while the registry's filing has not reached review"
    )
    opinion: str | None = Field(description="the city bureau's opinion on a return or rejection")


VerifiedBy = Literal["e_certificate", "exam_card", "filed_project"]


class TaskCredit(BaseModel):
    subject: str
    hours: float


class TaskUnit(BaseModel):
    """The person's unit (or agency) the claim was routed from."""

    id: str
    name: str | None = Field(description="null while the org is unknown to review")


class TaskOut(BaseModel):
    id: str
    claim_id: str
    revision: int
    stage: TaskStage
    status: TaskStatus
    org_id: str
    person: TaskPerson
    unit: TaskUnit
    year: int
    category: str
    subject: str
    title: str
    requested_hours: float
    verified_evidence: bool
    verified_by: list[VerifiedBy] = Field(
        description="what backs the claim that the system checked itself: the e-certificate or "
        "exam card it cites (then verified_evidence is true), and/or the filed project (备案) it "
        "cites, approved by the city bureau"
    )
    evidence_ids: list[str]
    references: dict[str, str]
    project: TaskProject | None = Field(
        description="the training project the claim cites (by project_id or through its "
        "e-certificate) with its filing status; null when it cites none"
    )
    leave_kind: str | None = Field(
        description="special_leave claims: abroad, sick, maternity or other; null otherwise"
    )
    leave_reason: str | None = Field(
        description="special_leave claims: the reason the person gave (required for other)"
    )
    start_date: str | None = Field(description="the claimed first day (ISO date), if any")
    end_date: str | None = Field(description="the claimed last day (ISO date), if any")
    months: int | None = Field(description="aid deployment / special leave: months claimed")
    travel_days: int | None = Field(
        default=None,
        description="expert_activity: travel and rest days within the span (往返和休息), not "
        "credited",
    )
    transfer_date: str | None = Field(
        default=None, description="transfer_in: the date of the transfer (ISO date)"
    )
    issuing_authority: str | None = Field(
        default=None, description="transfer_in: the authority that issued the certificate"
    )
    expected_credits: list[TaskCredit] = Field(
        description="what the rules would credit on approval, per subject"
    )
    warnings: list[str] = Field(description="what the rules warned of at submission")
    decision: TaskDecision | None
    reason: str | None
    decided_by: str | None
    decided_at: Timestamp | None
    created_at: Timestamp
    age_working_days: int | None = Field(
        default=None,
        description="open tasks: Chinese working days since the task arrived (a task that came "
        "on Friday is 1 on Monday); null once decided or cancelled",
    )


class TaskPage(BaseModel):
    items: list[TaskOut]
    next_cursor: str | None
    total: int = Field(description="every task matching the filters in the caller's scope")


class BulkDecided(BaseModel):
    task_id: str
    status: Literal[200]
    task: TaskOut


class BulkFailed(BaseModel):
    """A task of the batch that was not decided: the problem's status, code and detail."""

    task_id: str
    status: int
    code: str
    detail: str


class BulkDecisionsOut(BaseModel):
    results: list[BulkDecided | BulkFailed]
    decided: int
    failed: int


class HistoryStep(BaseModel):
    step: int  # 1, 2, … per claim
    revision: int
    stage: TaskStage
    org_id: str  # an org id, or "unrouted" (the city's queue)
    from_org_id: str | None  # moves and assignments: where the task was
    actor: str
    decision: HistoryDecision
    reason: str | None
    at: str
    prev_hash: str
    hash: str  # SHA-256 over this step's content and prev_hash


class ClaimHistoryOut(BaseModel):
    claim_id: str
    steps: list[HistoryStep]
    verified: bool
    broken_step: int | None  # the first step that does not check out
