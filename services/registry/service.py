"""Registry use cases: filing training projects (附件2) and the city bureau's decision (备案),
rosters of completions and the e-certificates they earn, revocation, exam-staff cards, and the
replicas of the org tree and of persons. Use cases never commit; the caller's unit of work does.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date
from decimal import Decimal
from typing import Literal, cast

from pydantic import BaseModel, Field
from pydantic.dataclasses import dataclass as pydantic_dataclass
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import ADMIN_ROLE_OF_ORG_TYPE, Principal
from libs.common.clock import BEIJING
from libs.common.errors import Conflict, Forbidden, NotFound, RuleViolation
from libs.common.events import (
    CertificateIssued,
    CertificateRevoked,
    ExamCardIssued,
    OrgUpserted,
    Payload,
    PersonRegistered,
    PersonUpdated,
    ProjectApproved,
    ProjectRejected,
    ProjectReturned,
    ProjectSubmitted,
    Subject,
)
from libs.common.idnumber import mask_id_number, validate_id_number
from libs.common.orgscope import ORG_ROLES, acting_org, standing, token_org_id
from libs.common.rulesets import load_shared_rules
from libs.common.uow import UnitOfWork
from services.registry import rules
from services.registry.models import (
    Certificate,
    Completion,
    ExamCard,
    OrgReplica,
    PersonReplica,
    Project,
    ProjectStep,
)

# who files for which kind of org (DOMAIN.md: CE bases, industry departments, district bureaus,
# city-direct units); the token's role must be the one that acts for the applicant org
FILING_ROLE_OF_ORG_TYPE = {
    "provider": "provider",
    "unit": ADMIN_ROLE_OF_ORG_TYPE["unit"],
    "department": ADMIN_ROLE_OF_ORG_TYPE["department"],
    "district": ADMIN_ROLE_OF_ORG_TYPE["district"],
}
FILING_ROLES = tuple(FILING_ROLE_OF_ORG_TYPE.values())
EXAM_ROLES = ("exam_center",)
EDITABLE = ("draft", "returned")
Decision = Literal["approve", "reject", "return"]
DECIDED_STATUS = {"approve": "approved", "reject": "rejected", "return": "returned"}


class ProjectFields(BaseModel):
    """The fields of 附件2 (API.md), plus the programme kind and the applicant unit's opinion."""

    year: int = Field(ge=2000, le=2100)
    applicant_org_id: str = Field(min_length=1, max_length=36)
    address: str = Field(min_length=1, max_length=300)
    name: str = Field(min_length=1, max_length=300)
    person_in_charge: str = Field(min_length=1, max_length=100)
    contact_name: str = Field(min_length=1, max_length=100)
    contact_phone: str = Field(min_length=1, max_length=30)
    advanced_seminar: bool = False
    plan: str = Field(min_length=1, max_length=20000)
    target_trainees: str = Field(min_length=1, max_length=2000)
    # the rule refuses ≤ 0; the bound keeps it within the column
    planned_participants: int = Field(le=1_000_000)
    start_date: date
    end_date: date
    days: int = Field(le=1_000_000)  # the rule holds it to the dates' span
    planned_hours: Decimal = Field(max_digits=7)
    venue: str = Field(min_length=1, max_length=300)
    form: Literal["online", "offline", "mixed"]
    kind: Literal["training", "digital_manager"] = "training"
    level: Literal["junior", "intermediate"] | None = None
    # what its certificates count for (a 公需 course is public; the default is professional)
    subject: Subject = "professional"
    unit_opinion: str | None = Field(default=None, max_length=2000)


def _today(uow: UnitOfWork) -> date:
    """Today in Beijing by the unit of work's clock."""
    return uow.now().astimezone(BEIJING).date()


# --- replicas -------------------------------------------------------------------------------


async def upsert_org(uow: UnitOfWork, event: OrgUpserted) -> None:
    org = await uow.session.get(OrgReplica, event.org_id)
    if org is None:
        org = OrgReplica(id=event.org_id)
        uow.session.add(org)
    org.code, org.name, org.type, org.parent_id, org.active = (
        event.code,
        event.name,
        event.type,
        event.parent_id,
        event.active,
    )


async def acting_org_of(
    uow: UnitOfWork, principal: Principal, roles: Collection[str] = ORG_ROLES
) -> OrgReplica | None:
    """The org the caller's token acts for, by the one rule of :mod:`libs.common.orgscope`: the
    role (among ``roles``) fits the replica's org type, or None; 403 ``org_inactive`` once review
    deactivated the org (a deactivated org files, reads and issues nothing)."""

    async def replica(org_id: str) -> OrgReplica | None:
        return await uow.session.get(OrgReplica, org_id)

    return await acting_org(principal, replica, roles=roles)


async def upsert_person(uow: UnitOfWork, event: PersonRegistered | PersonUpdated) -> None:
    person = await uow.session.get(PersonReplica, event.person_id)
    if person is None:
        person = PersonReplica(id=event.person_id)
        uow.session.add(person)
    person.id_number, person.name = event.id_number, event.name


# --- filings --------------------------------------------------------------------------------


def _plan(fields: ProjectFields) -> rules.ProjectPlan:
    return rules.ProjectPlan(
        year=fields.year,
        start_date=fields.start_date,
        end_date=fields.end_date,
        days=fields.days,
        planned_hours=fields.planned_hours,
        planned_participants=fields.planned_participants,
        contact_phone=fields.contact_phone,
        kind=fields.kind,
        level=fields.level,
        subject=fields.subject,
    )


def _check(fields: ProjectFields) -> None:
    rules.check_project(load_shared_rules(fields.year), _plan(fields))


async def _applicant_org(uow: UnitOfWork, principal: Principal, org_id: str) -> OrgReplica:
    """The applicant org, which the caller must act for: only the applicant files and edits."""
    if principal.role not in FILING_ROLES:
        raise Forbidden(
            f"role {principal.role} may not file projects; allowed: {', '.join(FILING_ROLES)}",
            code="role_not_allowed",
        )
    if principal.org_id != org_id:
        raise Forbidden(
            "only the applicant org files and edits its own projects", code="not_applicant"
        )
    org = await uow.session.get(OrgReplica, org_id)
    if org is None:
        raise RuleViolation(
            f"org {org_id} is not known (yet) to the registry", code="unknown_org", org_id=org_id
        )
    if standing(principal, org, roles=FILING_ROLES) is None:
        raise Forbidden(
            f"an org of type {org.type} does not file projects as {principal.role}",
            code="role_not_allowed",
        )
    return org


def _step(
    uow: UnitOfWork, project: Project, action: str, principal: Principal, opinion: str | None
) -> None:
    uow.session.add(
        ProjectStep(
            project_id=project.id,
            action=action,
            actor=principal.sub,
            org_id=principal.org_id,
            opinion=opinion,
            status=project.status,
        )
    )


async def create_project(uow: UnitOfWork, principal: Principal, fields: ProjectFields) -> Project:
    await _applicant_org(uow, principal, fields.applicant_org_id)
    _check(fields)
    project = Project(**fields.model_dump(), status="draft")
    uow.session.add(project)
    await uow.session.flush()
    _step(uow, project, "created", principal, fields.unit_opinion)
    await uow.session.flush()
    return project


async def visible_project(
    uow: UnitOfWork, principal: Principal, project_id: str, *, lock: bool = False
) -> Project:
    """The project if the caller may see it (the city; its applicant, by a token whose role
    fits the applicant org's type): 404 otherwise, 403 ``org_inactive`` for a deactivated org's
    token."""
    own = None if principal.is_city else await acting_org_of(uow, principal, FILING_ROLES)
    project = await uow.session.get(Project, project_id, with_for_update=lock)
    if project is None or not (
        principal.is_city or (own is not None and own.id == project.applicant_org_id)
    ):
        raise NotFound(f"project {project_id} not found in your scope", code="project_not_found")
    return project


async def _own_project(uow: UnitOfWork, principal: Principal, project_id: str) -> Project:
    project = await visible_project(uow, principal, project_id, lock=True)
    await _applicant_org(uow, principal, project.applicant_org_id)
    return project


async def update_project(
    uow: UnitOfWork, principal: Principal, project_id: str, fields: ProjectFields
) -> Project:
    """Amend a draft or a returned filing (only its applicant; the applicant org stays)."""
    project = await _own_project(uow, principal, project_id)
    if project.status not in EDITABLE:
        raise Conflict(
            f"project {project_id} is {project.status}: only a draft or a returned filing "
            "can be amended",
            code="project_not_editable",
        )
    if fields.applicant_org_id != project.applicant_org_id:
        raise RuleViolation(
            "the applicant org of a filing cannot change", code="applicant_org_immutable"
        )
    _check(fields)
    for name, value in fields.model_dump().items():
        setattr(project, name, value)
    _step(uow, project, "amended", principal, fields.unit_opinion)
    await uow.session.flush()
    return project


async def submit_project(uow: UnitOfWork, principal: Principal, project_id: str) -> Project:
    now = uow.now()
    project = await _own_project(uow, principal, project_id)
    if project.status not in EDITABLE:
        raise Conflict(
            f"project {project_id} is {project.status}: only a draft or a returned filing "
            "can be submitted",
            code="project_not_editable",
        )
    shared = load_shared_rules(project.year)
    _check(ProjectFields.model_validate(project, from_attributes=True))
    org = await uow.session.get(OrgReplica, project.applicant_org_id)
    parent = await uow.session.get(OrgReplica, org.parent_id) if org and org.parent_id else None
    city_direct = org is not None and rules.is_city_direct(
        org.type, parent.type if parent else None
    )
    rules.check_filing_deadline(shared, city_direct=city_direct, at=now)
    project.status, project.submitted_at = "submitted", now
    _step(uow, project, "submitted", principal, None)
    uow.emit(
        ProjectSubmitted(
            project_id=project.id,
            name=project.name,
            year=project.year,
            applicant_org_id=project.applicant_org_id,
        ),
        subject=project.id,
    )
    await uow.session.flush()
    return project


async def decide_project(
    uow: UnitOfWork,
    principal: Principal,
    project_id: str,
    decision: Decision,
    opinion: str | None,
) -> Project:
    """The city bureau approves (备案), rejects or returns a submitted filing with its opinion."""
    now = uow.now()
    if principal.role != "city_admin":
        raise Forbidden(
            "only the city bureau (city_admin) decides filings", code="role_not_allowed"
        )
    project = await visible_project(uow, principal, project_id, lock=True)
    if project.status != "submitted":
        raise Conflict(
            f"project {project_id} is {project.status}, not submitted", code="project_not_submitted"
        )
    opinion = (opinion or "").strip() or None
    if decision != "approve" and opinion is None:
        raise RuleViolation(
            f"to {decision} a filing the bureau gives its opinion to the applicant",
            code="opinion_required",
        )
    project.status = DECIDED_STATUS[decision]
    project.opinion, project.decided_at, project.decided_by = opinion, now, principal.sub
    _step(uow, project, decision, principal, opinion)
    uow.emit(_decision_event(project, decision, opinion or ""), subject=project.id)
    await uow.session.flush()
    return project


def _decision_event(project: Project, decision: Decision, opinion: str) -> Payload:
    if decision == "approve":
        return ProjectApproved(
            project_id=project.id,
            name=project.name,
            year=project.year,
            applicant_org_id=project.applicant_org_id,
            subject=project.subject,
        )
    event = ProjectRejected if decision == "reject" else ProjectReturned
    return event(
        project_id=project.id,
        name=project.name,
        year=project.year,
        applicant_org_id=project.applicant_org_id,
        opinion=opinion,
    )


async def history(uow: UnitOfWork, project_id: str) -> Sequence[ProjectStep]:
    return (
        await uow.session.scalars(
            select(ProjectStep)
            .where(ProjectStep.project_id == project_id)
            .order_by(ProjectStep.at, ProjectStep.id)
        )
    ).all()


# --- completions and certificates -----------------------------------------------------------


@dataclass(frozen=True)
class RawRow:
    """A roster row as given (JSON, CSV or XLSX), before any check."""

    id_number: str
    name: str
    hours: object
    passed: bool | None
    line: int | None = None  # the spreadsheet line of a file's row (header = 1)


@pydantic_dataclass
class RowResult:
    """One roster row's outcome (also the response item: a pydantic dataclass)."""

    row: int  # the JSON array position (from 1), or the file's line
    status: Literal["issued", "recorded", "unchanged", "rejected"]
    id_number_masked: str
    name: str
    certificate_code: str | None = None
    code: str | None = None
    detail: str | None = None


@dataclass
class RosterResult:
    project_id: str
    results: list[RowResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)


async def roster_project(
    uow: UnitOfWork, principal: Principal, project_id: str, *, lock: bool = False
) -> Project:
    """The project whose roster ``principal`` may upload: its organiser's (a token whose role
    fits its org's type, the org active), approved (checked before a roster file is parsed, and
    again when it is recorded)."""
    project = await visible_project(uow, principal, project_id, lock=lock)
    if principal.is_city:  # it sees every filing, and organises none
        raise Forbidden(
            "only the project's organiser uploads its completions", code="not_applicant"
        )
    if project.status != "approved":
        raise Conflict(
            f"project {project_id} is {project.status}: completions are taken only for a filed "
            "(approved) project",
            code="project_not_approved",
        )
    return project


async def record_completions(
    uow: UnitOfWork, principal: Principal, project_id: str, rows: Sequence[RawRow]
) -> RosterResult:
    """Each row on its own: a bad row is reported and never blocks the others. A passed row earns
    exactly one certificate; a person already on the roster is not recorded twice."""
    project = await roster_project(uow, principal, project_id, lock=True)
    existing = {
        c.id_number: c
        for c in (
            await uow.session.scalars(select(Completion).where(Completion.project_id == project.id))
        ).all()
    }
    planned = Decimal(project.planned_hours)
    today = _today(uow)
    seen: set[str] = set()
    result = RosterResult(project.id)
    batch = _Batch(uow, project)
    for index, raw in enumerate(rows, start=1):
        number = raw.line or index
        checked: rules.CompletionRow | rules.RowProblem
        if raw.passed is None:
            checked = rules.RowProblem("invalid_passed", "passed must be yes/no (true/false)")
        else:
            checked = rules.check_completion_row(
                raw.id_number,
                raw.name,
                raw.hours,
                raw.passed,
                planned_hours=planned,
                seen=seen,
                today=today,
            )
        masked = mask_id_number(str(raw.id_number))
        if isinstance(checked, rules.RowProblem):
            result.results.append(
                RowResult(
                    number, "rejected", masked, raw.name, code=checked.code, detail=checked.detail
                )
            )
            continue
        result.results.append(_record(batch, existing, checked, number, masked))
    await batch.flush()
    await uow.session.flush()
    return result


@dataclass
class _Batch:
    """New rows of one upload, inserted together at the end (thousands of rows a file)."""

    uow: UnitOfWork
    project: Project
    completions: list[dict[str, object]] = field(default_factory=list)
    certificates: list[dict[str, object]] = field(default_factory=list)

    async def flush(self) -> None:
        if self.completions:
            await self.uow.session.execute(insert(Completion), self.completions)
        if self.certificates:
            await self.uow.session.execute(insert(Certificate), self.certificates)


def _record(
    batch: _Batch,
    existing: dict[str, Completion],
    row: rules.CompletionRow,
    number: int,
    masked: str,
) -> RowResult:
    before = existing.get(row.id_number)
    if before is not None:
        same = (before.name, Decimal(before.hours), before.passed) == (
            row.name,
            row.hours,
            row.passed,
        )
        if same or before.passed:
            return RowResult(
                number,
                "unchanged" if same else "rejected",
                masked,
                row.name,
                certificate_code=before.certificate_code,
                code=None if same else "completion_exists",
                detail=None
                if same
                else "this person's completion is recorded already with other values",
            )
        before.name, before.hours, before.passed = row.name, row.hours, row.passed
        if not row.passed:
            # a recorded fail corrected, still failed: recorded again, no certificate
            return RowResult(number, "recorded", masked, row.name, None)
        # a recorded fail that is now passed (a make-up exam) earns its certificate
        before.certificate_code = _issue(batch, row)
        return RowResult(number, "issued", masked, row.name, before.certificate_code)
    code = _issue(batch, row) if row.passed else None
    batch.completions.append(
        {
            "project_id": batch.project.id,
            "id_number": row.id_number,
            "name": row.name,
            "hours": row.hours,
            "passed": row.passed,
            "certificate_code": code,
        }
    )
    return RowResult(number, "issued" if code else "recorded", masked, row.name, code)


def _issue(batch: _Batch, row: rules.CompletionRow) -> str:
    project = batch.project
    code = rules.new_code(f"ZZCE{project.year}")
    now = batch.uow.now().astimezone(UTC)
    batch.certificates.append(
        {
            "code": code,
            "project_id": project.id,
            "id_number": row.id_number,
            "holder_name": row.name,
            "year": project.year,
            "subject": project.subject,
            "hours": row.hours,
            "status": "valid",
            "created_at": now,
            "updated_at": now,
        }
    )
    batch.uow.emit(
        CertificateIssued(
            code=code,
            project_id=project.id,
            project_name=project.name,
            id_number=row.id_number,
            holder_name=row.name,
            year=project.year,
            subject=cast(Subject, project.subject),  # checked on filing
            hours=float(row.hours),
        ),
        subject=code,
    )
    return code


async def certificate_by_code(uow: UnitOfWork, code: str) -> tuple[Certificate, Project]:
    cert = await uow.session.scalar(
        select(Certificate).where(Certificate.code == rules.normalise_code(code))
    )
    if cert is None:
        raise NotFound("no e-certificate has this code", code="certificate_not_found")
    project = await uow.session.get(Project, cert.project_id)
    assert project is not None
    return cert, project


async def person_of(uow: UnitOfWork, principal: Principal) -> PersonReplica | None:
    if principal.role != "personnel" or principal.person_id is None:
        return None
    return await uow.session.get(PersonReplica, principal.person_id)


async def may_read_certificate(uow: UnitOfWork, principal: Principal, cert: Certificate) -> bool:
    """Its holder, the city bureau, and the organiser of the project that issued it (a token
    whose role fits the organiser's org type; 403 ``org_inactive`` once it is deactivated)."""
    if principal.is_city:
        return True
    person = await person_of(uow, principal)
    if person is not None:
        return person.id_number == cert.id_number
    own = await acting_org_of(uow, principal, FILING_ROLES)
    project = await uow.session.get(Project, cert.project_id)
    return own is not None and project is not None and own.id == project.applicant_org_id


async def revoke_certificate(
    uow: UnitOfWork, principal: Principal, code: str, reason: str
) -> tuple[Certificate, Project]:
    if principal.role != "city_admin":
        raise Forbidden("only the city bureau revokes certificates", code="role_not_allowed")
    if not reason.strip():
        raise RuleViolation("a revocation needs a reason", code="reason_required")
    cert, project = await certificate_by_code(uow, code)
    if cert.status == "revoked":
        raise Conflict(f"certificate {cert.code} is revoked already", code="certificate_revoked")
    cert.status, cert.revoked_reason = "revoked", reason.strip()
    cert.revoked_at, cert.revoked_by = uow.now(), principal.sub
    uow.emit(CertificateRevoked(code=cert.code, reason=cert.revoked_reason), subject=cert.code)
    await uow.session.flush()
    return cert, project


# --- exam-staff cards -------------------------------------------------------------------------


class ExamCardFields(BaseModel):
    id_number: str = Field(min_length=1, max_length=30)
    name: str = Field(min_length=1, max_length=100)
    year: int = Field(ge=2000, le=2100)
    hours: Decimal = Field(max_digits=6)


async def issue_exam_card(
    uow: UnitOfWork, principal: Principal, fields: ExamCardFields
) -> ExamCard:
    """The city exam centre issues one 学时登记卡 per person and year."""
    if principal.role not in EXAM_ROLES:
        raise Forbidden("only the city exam centre issues exam cards", code="role_not_allowed")
    org_id = token_org_id(principal)
    org = await uow.session.get(OrgReplica, org_id) if org_id else None
    if org is None:
        # its org.upserted may be on its way: a retry will do (as for a filing)
        raise RuleViolation(
            f"org {org_id} is not known (yet) to the registry", code="unknown_org", org_id=org_id
        )
    if standing(principal, org, roles=EXAM_ROLES) is None:
        raise Forbidden(f"an org of type {org.type} issues no exam cards", code="role_not_allowed")
    load_shared_rules(fields.year)
    id_number = validate_id_number(fields.id_number, today=_today(uow))
    rules.check_hours(fields.hours, "hours")
    taken = await uow.session.scalar(
        select(ExamCard.card_no).where(
            ExamCard.id_number == id_number, ExamCard.year == fields.year
        )
    )
    if taken is not None:
        raise Conflict(
            f"this person has a {fields.year} exam card already", code="exam_card_exists"
        )
    card = ExamCard(
        card_no=rules.new_code(f"KW{fields.year}"),
        id_number=id_number,
        name=fields.name.strip(),
        year=fields.year,
        hours=fields.hours,
        issued_by_org_id=org.id,
    )
    uow.session.add(card)
    try:
        await uow.session.flush()
    except IntegrityError as exc:  # a concurrent issue for the same person and year
        raise Conflict(
            f"this person has a {fields.year} exam card already", code="exam_card_exists"
        ) from exc
    uow.emit(
        ExamCardIssued(
            card_no=card.card_no,
            id_number=id_number,
            name=card.name,
            year=card.year,
            hours=float(card.hours),
        ),
        subject=card.card_no,
    )
    return card
