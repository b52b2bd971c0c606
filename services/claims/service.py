"""Claims use cases: persons, evidence, claims through their lifecycle, the hours ledger.

Every function takes the unit of work; none commits. Hour rules live in :mod:`rules` (pure).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import filetype
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import Principal
from libs.common.db import utcnow
from libs.common.errors import Conflict, Forbidden, NotFound, RuleViolation
from libs.common.events import (
    Affiliation,
    CertificateIssued,
    CertificateRevoked,
    ClaimApproved,
    ClaimCredited,
    ClaimCreditRevoked,
    ClaimRejected,
    ClaimStagePassed,
    ClaimSubmitted,
    ClaimWithdrawn,
    Credit,
    ExamCardIssued,
    LearningRecorded,
    OrgUpserted,
    PersonRegistered,
    PersonUpdated,
    ProjectApproved,
)
from libs.common.idnumber import mask_id_number, validate_id_number
from libs.common.uow import UnitOfWork
from services.claims import rules
from services.claims.models import (
    CertificateReplica,
    Claim,
    ClaimReference,
    Evidence,
    ExamCardReplica,
    LedgerEntry,
    OrgReplica,
    PendingLearning,
    Person,
    ProjectReplica,
)

Clock = Callable[[], datetime]
ALLOWED_CONTENT_TYPES = {"application/pdf", "image/jpeg", "image/png"}
REFERENCE_FIELDS = ("certificate_code", "exam_card_no", "reference_no")
ADMIN_ROLE_OF_TYPE = {
    "unit": "unit_admin",
    "agency": "agency_admin",
    "district": "district_admin",
    "department": "department_admin",
}
ADMIN_ROLES = set(ADMIN_ROLE_OF_TYPE.values())


# --- scope ----------------------------------------------------------------------------------


async def org_chain(uow: UnitOfWork, org_id: str) -> list[str]:
    """The org and its ancestors, nearest first (from the replica of review's org tree)."""
    chain: list[str] = []
    current: str | None = org_id
    while current is not None and current not in chain:
        chain.append(current)
        org = await uow.session.get(OrgReplica, current)
        current = org.parent_id if org else None
    return chain


def is_self(principal: Principal, person: Person) -> bool:
    """A personnel token names its person, or is the login that registered it."""
    if principal.role != "personnel":
        return False
    if principal.person_id is not None:
        return principal.person_id == person.id
    return person.account_sub is not None and person.account_sub == principal.sub


async def can_see_person(uow: UnitOfWork, principal: Principal, person: Person) -> bool:
    if principal.is_city:
        return True
    if principal.role == "personnel":
        return is_self(principal, person)
    return await admin_over(uow, principal, person.org_id)


async def admin_over(uow: UnitOfWork, principal: Principal, org_id: str) -> bool:
    """Whether an admin token acts for an org at or above ``org_id`` in the tree, and its role
    matches that org's type (a unit_admin token naming a district grants nothing)."""
    if principal.role not in ADMIN_ROLES or principal.org_id is None:
        return False
    own = await uow.session.get(OrgReplica, principal.org_id)
    if own is None or ADMIN_ROLE_OF_TYPE.get(own.type) != principal.role:
        return False
    return principal.org_id in await org_chain(uow, org_id)


async def get_person(uow: UnitOfWork, principal: Principal, person_id: str) -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None or not await can_see_person(uow, principal, person):
        raise NotFound(f"person {person_id} not found in your scope", code="person_not_found")
    return person


async def my_person(uow: UnitOfWork, principal: Principal) -> Person:
    """The caller's own person: by the token's person id, or the login that registered it."""
    if principal.person_id is not None:
        return await get_person(uow, principal, principal.person_id)
    person = await uow.session.scalar(select(Person).where(Person.account_sub == principal.sub))
    if person is None:
        raise NotFound(
            "no person is registered for this login yet: POST /v1/persons first",
            code="person_not_registered",
        )
    return person


def person_view(person: Person, principal: Principal, *, full_id: bool) -> dict[str, Any]:
    return {
        "id": person.id,
        "name": person.name,
        "id_number": person.id_number if full_id else None,
        "id_number_masked": mask_id_number(person.id_number),
        "phone": person.phone if full_id else None,
        "affiliation": {"kind": person.affiliation_kind, "org_id": person.org_id},
        "created_at": person.created_at.isoformat(),
    }


# --- persons --------------------------------------------------------------------------------


async def register_person(
    uow: UnitOfWork,
    principal: Principal,
    *,
    id_number: str,
    name: str,
    phone: str | None,
    affiliation: Affiliation,
    today: date,
) -> Person:
    normalised = validate_id_number(id_number, today=today)
    org = await _affiliation_org(uow, affiliation)
    account_sub: str | None = None
    if principal.role == "personnel":
        # self-registration: a login without a person yet registers itself, once
        if principal.person_id is not None or await uow.session.scalar(
            select(Person.id).where(Person.account_sub == principal.sub)
        ):
            raise Conflict("this login has a registered person already", code="account_has_person")
        account_sub = principal.sub
    elif not principal.is_city and not await admin_over(uow, principal, org.id):
        raise Forbidden(
            "only the person, their unit or agency, its authority, or the city bureau may register",
            code="outside_scope",
        )
    if await uow.session.scalar(select(Person.id).where(Person.id_number == normalised)):
        raise Conflict(
            "a person with this ID number is registered already", code="duplicate_person"
        )
    person = Person(
        id_number=normalised,
        name=name.strip(),
        phone=phone,
        affiliation_kind=affiliation.kind,
        org_id=org.id,
        account_sub=account_sub,
    )
    uow.session.add(person)
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        raise Conflict(
            "a person with this ID number is registered already", code="duplicate_person"
        ) from exc
    uow.emit(
        PersonRegistered(
            person_id=person.id, id_number=normalised, name=person.name, affiliation=affiliation
        ),
        subject=person.id,
    )
    await book_pending_learning(uow, person)
    return person


async def _affiliation_org(uow: UnitOfWork, affiliation: Affiliation) -> OrgReplica:
    org = await uow.session.get(OrgReplica, affiliation.org_id)
    if org is None:
        raise RuleViolation(
            f"org {affiliation.org_id} is unknown here (if it was just created, retry shortly)",
            code="unknown_org",
        )
    if org.type != affiliation.kind:
        raise RuleViolation(
            f"affiliation kind {affiliation.kind} does not match org type {org.type}",
            code="affiliation_mismatch",
        )
    return org


async def transfer_person(
    uow: UnitOfWork, principal: Principal, person_id: str, affiliation: Affiliation
) -> Person:
    """Move a person to another unit or agency (调动). The city bureau, or an admin whose scope
    holds both the old and the new org, may do it; open review tasks stay where they are."""
    person = await get_person(uow, principal, person_id)
    org = await _affiliation_org(uow, affiliation)
    if not principal.is_city and not (
        await admin_over(uow, principal, org.id) and await admin_over(uow, principal, person.org_id)
    ):
        raise Forbidden(
            "a transfer needs the city bureau or an authority over both orgs", code="outside_scope"
        )
    if person.org_id == org.id:
        raise Conflict("the person is in this org already", code="same_affiliation")
    person.affiliation_kind, person.org_id = affiliation.kind, org.id
    uow.emit(
        PersonUpdated(
            person_id=person.id,
            id_number=person.id_number,
            name=person.name,
            affiliation=affiliation,
        ),
        subject=person.id,
    )
    return person


# --- evidence -------------------------------------------------------------------------------


class EvidenceStore(Protocol):
    """Where evidence files live; ``put`` returns the key the file can be found under."""

    def put(self, data: bytes, sha256: str) -> str: ...


class LocalEvidenceStore:
    """Evidence files on local disk, addressed by content hash (the default storage)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, data: bytes, sha256: str) -> str:
        key = f"{sha256[:2]}/{sha256}"
        path = self.root / key
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return key


async def store_evidence(
    uow: UnitOfWork,
    principal: Principal,
    store: EvidenceStore,
    *,
    data: bytes,
    filename: str | None,
    max_bytes: int,
) -> Evidence:
    if not data:
        raise RuleViolation("the file is empty", code="empty_evidence")
    if len(data) > max_bytes:
        raise RuleViolation(
            f"evidence files may be at most {max_bytes // (1024 * 1024)} MiB",
            code="evidence_too_large",
            max_bytes=max_bytes,
        )
    kind = filetype.guess(data)
    content_type = kind.mime if kind else None
    if content_type not in ALLOWED_CONTENT_TYPES:
        raise RuleViolation(
            "evidence must be a PDF, JPEG or PNG file (judged by its content, not its name)",
            code="unsupported_evidence_type",
        )
    digest = hashlib.sha256(data).hexdigest()
    key = store.put(data, digest)
    evidence = Evidence(
        owner=principal.sub,
        sha256=digest,
        content_type=content_type,
        size=len(data),
        filename=(filename or "")[:255] or None,
        storage_key=key,
    )
    uow.session.add(evidence)
    await uow.session.flush()
    return evidence


# --- the ledger -----------------------------------------------------------------------------


async def ledger(
    uow: UnitOfWork, person_id: str, year: int, *, include_revoked: bool = False
) -> Sequence[LedgerEntry]:
    """A person's ledger entries of a year in booking order (live ones unless told otherwise)."""
    stmt = select(LedgerEntry).where(LedgerEntry.person_id == person_id, LedgerEntry.year == year)
    if not include_revoked:
        stmt = stmt.where(LedgerEntry.revoked_at.is_(None))
    return (await uow.session.scalars(stmt.order_by(LedgerEntry.created_at, LedgerEntry.id))).all()


async def credited_so_far(uow: UnitOfWork, person_id: str, year: int) -> rules.CreditedSoFar:
    by_claim: dict[str, tuple[str, list[rules.Credit]]] = {}
    outside: dict[str, Decimal] = defaultdict(Decimal)
    for entry in await ledger(uow, person_id, year):
        if entry.source == "claim" and entry.category:
            _, credits = by_claim.setdefault(entry.ref, (entry.category, []))
            credits.append(rules.Credit(entry.subject, Decimal(entry.hours)))  # type: ignore[arg-type]
        else:
            outside[entry.subject] += Decimal(entry.hours)
    return rules.CreditedSoFar.from_approved(by_claim.values(), outside)


# --- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What the replicas of the registry confirm about a claim's references."""

    card_hours: Decimal | None = None
    certificate_hours: Decimal | None = None
    certificate_subject: str | None = None
    any: bool = False
    notes: tuple[str, ...] = ()


def normalise_code(value: Any) -> str:
    """Certificate codes, card and reference numbers compare case- and space-insensitively."""
    return "".join(str(value).split()).upper()


def claim_input(
    body: dict[str, Any], evidence_count: int, verified: Verified | None = None
) -> rules.ClaimInput:
    verified = verified or Verified()
    credits = body.get("credits")
    return rules.ClaimInput(
        category=body["category"],
        subject=body.get("subject"),
        hours=body.get("hours"),
        start_date=_date(body.get("start_date")),
        end_date=_date(body.get("end_date")),
        months=body.get("months"),
        credits=[(c["subject"], c["hours"]) for c in credits] if credits else None,
        reference_no=body.get("reference_no"),
        certificate_code=body.get("certificate_code"),
        exam_card_no=body.get("exam_card_no"),
        evidence_count=evidence_count,
        card_hours=verified.card_hours,
        certificate_hours=verified.certificate_hours,
        certificate_subject=verified.certificate_subject,
    )


async def verify_references(uow: UnitOfWork, person: Person, body: dict[str, Any]) -> Verified:
    """Check e-certificates, exam cards and project filings against the registry's replicas.

    Wrong holder, unknown, revoked, another year → 422. A training needs a filing: an
    e-certificate of a filed project, a filed project of the city (``project_id``), or the
    filing number of another HR department (``reference_no``, checked by the reviewers).
    """
    category, year = body["category"], int(body["year"])
    if category == "training":
        return await _verify_training(uow, person, body, year)
    if category == "exam_staff" and body.get("exam_card_no"):
        card = await uow.session.get(ExamCardReplica, normalise_code(body["exam_card_no"]))
        if card is None:
            raise RuleViolation(
                "no 学时登记卡 with this number was issued by the city exam centre",
                code="unknown_exam_card",
            )
        if card.id_number != person.id_number:
            raise RuleViolation(
                "this 学时登记卡 was issued to someone else", code="exam_card_holder_mismatch"
            )
        if card.year != year:
            raise RuleViolation(
                f"this 学时登记卡 counts for {card.year}, not {year}",
                code="exam_card_year_mismatch",
            )
        return Verified(card_hours=Decimal(card.hours), any=True)
    return Verified()


async def _verify_training(
    uow: UnitOfWork, person: Person, body: dict[str, Any], year: int
) -> Verified:
    code = body.get("certificate_code")
    if code:
        cert = await uow.session.get(CertificateReplica, normalise_code(code))
        if cert is None:
            raise RuleViolation(
                "no e-certificate with this code was issued by a filed training",
                code="unknown_certificate",
            )
        if cert.status == "revoked":
            raise RuleViolation(
                f"this e-certificate was revoked: {cert.revoked_reason or 'no reason given'}",
                code="certificate_revoked",
            )
        if cert.id_number != person.id_number:
            raise RuleViolation(
                "this e-certificate was issued to someone else", code="certificate_holder_mismatch"
            )
        if cert.year != year:
            raise RuleViolation(
                f"this e-certificate counts for {cert.year}, not {year}",
                code="certificate_year_mismatch",
            )
        return Verified(
            certificate_hours=Decimal(cert.hours),
            certificate_subject=cert.subject,
            any=True,
        )
    project_id = body.get("project_id")
    if project_id:
        project = await uow.session.get(ProjectReplica, str(project_id))
        if project is None or project.status != "approved":
            raise RuleViolation(
                "this training project was not filed (备案) with the city bureau; "
                "an unfiled training gets no hours",
                code="unfiled_training",
            )
        if project.year != year:
            raise RuleViolation(
                f"this training project was filed for {project.year}, not {year}",
                code="unfiled_training",
            )
        return Verified(notes=(f"filed project: {project.name}",))
    if body.get("reference_no"):
        return Verified(
            notes=("the filing number will be checked by your unit and the HR authority",)
        )
    raise RuleViolation(
        "a training counts only if it was filed (备案) with an HR department: cite its "
        "e-certificate (certificate_code), the city's filed project (project_id), or another "
        "HR department's filing number (reference_no)",
        code="unfiled_training",
    )


def _date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def _credits_json(credits: Sequence[rules.Credit]) -> list[dict[str, Any]]:
    return [{"subject": c.subject, "hours": float(c.hours)} for c in credits]


async def _check_evidence_ids(
    uow: UnitOfWork, principal: Principal, ids: list[str]
) -> list[Evidence]:
    found: list[Evidence] = []
    for evidence_id in dict.fromkeys(ids):
        evidence = await uow.session.get(Evidence, evidence_id)
        if evidence is None or evidence.owner != principal.sub:
            raise RuleViolation(
                f"evidence {evidence_id} was not uploaded by you", code="unknown_evidence"
            )
        found.append(evidence)
    return found


async def _bind_references(
    uow: UnitOfWork, claim: Claim, body: dict[str, Any], evidence: list[Evidence]
) -> None:
    """Each reference and each evidence file backs at most one live claim of the person."""
    await uow.session.execute(delete(ClaimReference).where(ClaimReference.claim_id == claim.id))
    # a training's reference_no is its filing number, shared by every trainee: not evidence
    fields = [
        f for f in REFERENCE_FIELDS if not (f == "reference_no" and claim.category == "training")
    ]
    refs = [(f, normalise_code(body[f])) for f in fields if body.get(f)]
    refs += [("file_sha256", e.sha256) for e in evidence]
    for kind, value in refs:
        taken = await uow.session.scalar(
            select(ClaimReference.claim_id).where(
                ClaimReference.person_id == claim.person_id,
                ClaimReference.kind == kind,
                ClaimReference.value == value,
            )
        )
        if taken is not None and taken != claim.id:
            raise RuleViolation(
                f"this {kind.replace('_', ' ')} already backs claim {taken}; "
                "the same evidence can back only one claim",
                code="duplicate_evidence",
                claim_id=taken,
            )
        uow.session.add(
            ClaimReference(person_id=claim.person_id, kind=kind, value=value, claim_id=claim.id)
        )
    try:
        await uow.session.flush()
    except IntegrityError as exc:
        raise RuleViolation(
            "this evidence already backs another claim", code="duplicate_evidence"
        ) from exc


async def _assess(
    uow: UnitOfWork, person: Person, body: dict[str, Any], evidence_count: int, now: datetime
) -> tuple[rules.Assessment, Verified]:
    ruleset = rules.load_ruleset(int(body["year"]))
    verified = await verify_references(uow, person, body)
    credited = await credited_so_far(uow, person.id, ruleset.year)
    assessment = rules.assess(
        ruleset, claim_input(body, evidence_count, verified), credited, now=now
    )
    return assessment, verified


def _may_claim_for(principal: Principal, person: Person) -> None:
    if is_self(principal, person):
        return
    raise Forbidden("only the person may claim hours for themselves", code="not_claimant")


async def submit_claim(
    uow: UnitOfWork, principal: Principal, body: dict[str, Any], *, now: datetime
) -> Claim:
    person = await get_person(uow, principal, body["person_id"])
    _may_claim_for(principal, person)
    evidence = await _check_evidence_ids(uow, principal, body.get("evidence_ids") or [])
    assessment, verified = await _assess(uow, person, body, len(evidence), now)
    claim = Claim(
        person_id=person.id,
        year=int(body["year"]),
        category=body["category"],
        subject=assessment.credits[0].subject if assessment.credits else "professional",
        title=body["title"],
        body=body,
        revision=1,
        status="in_review",
        stage="unit",
    )
    _apply_assessment(claim, assessment, verified)
    uow.session.add(claim)
    await uow.session.flush()
    await _bind_references(uow, claim, body, evidence)
    _emit_submitted(uow, claim, person)
    return claim


def _apply_assessment(claim: Claim, assessment: rules.Assessment, verified: Verified) -> None:
    claim.requested_hours = assessment.requested_hours
    claim.expected_credits = _credits_json(assessment.credits)
    claim.warnings = [*assessment.warnings, *verified.notes]
    claim.verified_evidence = verified.any
    claim.credits = []


def _emit_submitted(uow: UnitOfWork, claim: Claim, person: Person) -> None:
    uow.emit(
        ClaimSubmitted(
            claim_id=claim.id,
            revision=claim.revision,
            person_id=person.id,
            person_name=person.name,
            id_number_masked=mask_id_number(person.id_number),
            affiliation=Affiliation(kind=person.affiliation_kind, org_id=person.org_id),  # type: ignore[arg-type]
            year=claim.year,
            category=claim.category,
            subject=claim.subject,  # type: ignore[arg-type]
            title=claim.title,
            requested_hours=float(claim.requested_hours),
            expected_credits=[Credit(**c) for c in claim.expected_credits],
            verified_evidence=claim.verified_evidence,
        ),
        subject=claim.id,
    )


async def get_claim(uow: UnitOfWork, principal: Principal, claim_id: str) -> Claim:
    claim = await uow.session.get(Claim, claim_id)
    person = await uow.session.get(Person, claim.person_id) if claim is not None else None
    # out of scope is the same 404 as missing: neither the claim's existence nor its owner leaks
    if claim is None or person is None or not await can_see_person(uow, principal, person):
        raise NotFound(f"claim {claim_id} not found in your scope", code="claim_not_found")
    return claim


async def withdraw_claim(uow: UnitOfWork, principal: Principal, claim_id: str) -> Claim:
    claim = await get_claim(uow, principal, claim_id)
    person = await get_person(uow, principal, claim.person_id)
    _may_claim_for(principal, person)
    if claim.status not in ("in_review", "rejected"):
        raise Conflict(f"a claim that is {claim.status} cannot be withdrawn", code="claim_not_open")
    claim.status = "withdrawn"
    claim.stage = None
    await uow.session.execute(delete(ClaimReference).where(ClaimReference.claim_id == claim.id))
    uow.emit(
        ClaimWithdrawn(claim_id=claim.id, revision=claim.revision, person_id=claim.person_id),
        subject=claim.id,
    )
    return claim


async def revise_claim(
    uow: UnitOfWork, principal: Principal, claim_id: str, body: dict[str, Any], *, now: datetime
) -> Claim:
    claim = await get_claim(uow, principal, claim_id)
    person = await get_person(uow, principal, claim.person_id)
    _may_claim_for(principal, person)
    if claim.status != "rejected":
        raise Conflict(
            f"only a rejected claim can be revised; this one is {claim.status}",
            code="claim_not_rejected",
        )
    if body["person_id"] != claim.person_id or int(body["year"]) != claim.year:
        raise RuleViolation(
            "a revision keeps the claim's person and year", code="revision_mismatch"
        )
    evidence = await _check_evidence_ids(uow, principal, body.get("evidence_ids") or [])
    assessment, verified = await _assess(uow, person, body, len(evidence), now)
    claim.revision += 1
    claim.body = body
    claim.category = body["category"]
    claim.title = body["title"]
    claim.subject = assessment.credits[0].subject if assessment.credits else claim.subject
    claim.status = "in_review"
    claim.stage = "unit"
    claim.rejection_reason = None
    _apply_assessment(claim, assessment, verified)
    await _bind_references(uow, claim, body, evidence)
    _emit_submitted(uow, claim, person)
    return claim


# --- review outcomes (event handlers call these) --------------------------------------------


async def _claim_at(uow: UnitOfWork, claim_id: str, revision: int) -> Claim | None:
    """The claim if the event is about its current revision (stale revisions are ignored)."""
    claim = await uow.session.get(Claim, claim_id)
    if claim is None or claim.revision != revision or claim.status != "in_review":
        return None
    return claim


async def stage_passed(uow: UnitOfWork, event: ClaimStagePassed) -> None:
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is not None:
        claim.stage = event.next_stage


async def rejected(uow: UnitOfWork, event: ClaimRejected) -> None:
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is not None:
        claim.status = "rejected"
        claim.stage = None
        claim.rejection_reason = event.reason
        claim.decided_at = utcnow()


async def approved(uow: UnitOfWork, event: ClaimApproved) -> None:
    """Book the credits in approval order: caps cut what the earlier approvals used up."""
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is None:
        return
    ruleset = rules.load_ruleset(claim.year)
    evidence_count = len(claim.body.get("evidence_ids") or [])
    person = await uow.session.get(Person, claim.person_id)
    assert person is not None
    try:
        verified = await verify_references(uow, person, claim.body)
    except RuleViolation as exc:
        # the evidence stopped being valid while the claim was in review: nothing to credit
        claim.status, claim.stage, claim.decided_at = "revoked", None, utcnow()
        claim.rejection_reason = exc.detail
        return
    credits = rules.credit_on_approval(
        ruleset,
        claim_input(claim.body, evidence_count, verified),
        await credited_so_far(uow, claim.person_id, claim.year),
    )
    claim.status = "approved"
    claim.stage = None
    claim.decided_at = utcnow()
    claim.credits = _credits_json(credits)
    booked = [c for c in credits if c.hours > 0]
    claim.sync_status = "pending" if booked else "not_applicable"
    for credit in credits:
        uow.session.add(
            LedgerEntry(
                person_id=claim.person_id,
                year=claim.year,
                subject=credit.subject,
                hours=credit.hours,
                source="claim",
                ref=claim.id,
                category=claim.category,
                title=claim.title,
                note=_cut_note(claim, credit),
            )
        )
    if booked:
        uow.emit(
            ClaimCredited(
                claim_id=claim.id,
                revision=claim.revision,
                person_id=claim.person_id,
                year=claim.year,
                category=claim.category,
                title=claim.title,
                credits=[Credit(subject=c.subject, hours=float(c.hours)) for c in booked],
            ),
            subject=claim.id,
        )


def _cut_note(claim: Claim, credit: rules.Credit) -> str | None:
    expected = {c["subject"]: c["hours"] for c in claim.expected_credits}
    wanted = expected.get(credit.subject)
    if wanted is not None and float(credit.hours) < float(wanted):
        return (
            f"{float(credit.hours):g} of {float(wanted):g} hours credited: "
            "a yearly cap was used up by claims approved earlier"
        )
    return None


async def sync_outcome(uow: UnitOfWork, claim_id: str | None, status: str) -> None:
    if claim_id is None:
        return
    claim = await uow.session.get(Claim, claim_id)
    if claim is not None and claim.status == "approved":
        claim.sync_status = status


async def upsert_org(uow: UnitOfWork, event: OrgUpserted) -> None:
    org = await uow.session.get(OrgReplica, event.org_id)
    if org is None:
        uow.session.add(
            OrgReplica(
                id=event.org_id,
                code=event.code,
                name=event.name,
                type=event.type,
                parent_id=event.parent_id,
            )
        )
    else:
        org.code, org.name, org.type, org.parent_id = (
            event.code,
            event.name,
            event.type,
            event.parent_id,
        )


# --- transcript -----------------------------------------------------------------------------


async def transcript(uow: UnitOfWork, person: Person, year: int) -> dict[str, Any]:
    ruleset = rules.load_ruleset(year)
    req = ruleset.requirement
    credited: dict[str, Decimal] = {"public": Decimal(0), "professional": Decimal(0)}
    entries = []
    for entry in await ledger(uow, person.id, year, include_revoked=True):
        if entry.revoked_at is None:
            credited[entry.subject] += Decimal(entry.hours)
        entries.append(
            {
                "source": entry.source,
                "ref": entry.ref,
                "category": entry.category,
                "title": entry.title,
                "subject": entry.subject,
                "hours": float(entry.hours),
                "counts": entry.revoked_at is None,
                "note": entry.note,
                "at": entry.created_at.isoformat(),
                "revoked_at": entry.revoked_at.isoformat() if entry.revoked_at else None,
            }
        )
    pending: dict[str, Decimal] = {"public": Decimal(0), "professional": Decimal(0)}
    in_review = await uow.session.scalars(
        select(Claim).where(
            Claim.person_id == person.id, Claim.year == year, Claim.status == "in_review"
        )
    )
    for claim in in_review:
        for c in claim.expected_credits:
            pending[c["subject"]] += Decimal(str(c["hours"]))
    compliant = credited["public"] >= req.public and credited["professional"] >= req.professional
    return {
        "person_id": person.id,
        "year": year,
        "required": {
            "public": float(req.public),
            "professional": float(req.professional),
            "total": float(req.total),
        },
        "credited": {
            "public": float(credited["public"]),
            "professional": float(credited["professional"]),
            "total": float(credited["public"] + credited["professional"]),
        },
        "pending": {k: float(v) for k, v in pending.items()},
        "gaps": {
            "public": float(max(req.public - credited["public"], Decimal(0))),
            "professional": float(max(req.professional - credited["professional"], Decimal(0))),
        },
        "compliant": compliant,
        "entries": entries,
    }


# --- replicas of the registry and the city platform -----------------------------------------


async def certificate_issued(uow: UnitOfWork, event: CertificateIssued) -> None:
    code = normalise_code(event.code)
    cert = await uow.session.get(CertificateReplica, code)
    if cert is None:
        uow.session.add(
            CertificateReplica(
                code=code,
                project_id=event.project_id,
                project_name=event.project_name,
                id_number=event.id_number,
                holder_name=event.holder_name,
                year=event.year,
                subject=event.subject,
                hours=Decimal(str(event.hours)),
                status="valid",
            )
        )


async def certificate_revoked(uow: UnitOfWork, event: CertificateRevoked) -> None:
    """A revoked certificate stops counting: the credit of the claim it backed is revoked."""
    cert = await uow.session.get(CertificateReplica, normalise_code(event.code))
    if cert is not None:
        cert.status, cert.revoked_reason = "revoked", event.reason
    claim_ids = (
        await uow.session.scalars(
            select(ClaimReference.claim_id).where(
                ClaimReference.kind == "certificate_code",
                ClaimReference.value == normalise_code(event.code),
            )
        )
    ).all()
    for claim_id in claim_ids:
        claim = await uow.session.get(Claim, claim_id)
        if claim is None or claim.status != "approved":
            continue  # a claim in review is refused at approval (see ``approved``)
        entries = await uow.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.source == "claim",
                LedgerEntry.ref == claim.id,
                LedgerEntry.revoked_at.is_(None),
            )
        )
        for entry in entries:
            entry.revoked_at = utcnow()
            entry.note = f"revoked: certificate {event.code} was revoked ({event.reason})"
        claim.status = "revoked"
        claim.rejection_reason = f"certificate {event.code} revoked: {event.reason}"
        uow.emit(
            ClaimCreditRevoked(
                claim_id=claim.id,
                revision=claim.revision,
                person_id=claim.person_id,
                year=claim.year,
                reason=claim.rejection_reason,
            ),
            subject=claim.id,
        )


async def exam_card_issued(uow: UnitOfWork, event: ExamCardIssued) -> None:
    card_no = normalise_code(event.card_no)
    if await uow.session.get(ExamCardReplica, card_no) is None:
        uow.session.add(
            ExamCardReplica(
                card_no=card_no,
                id_number=event.id_number,
                name=event.name,
                year=event.year,
                hours=Decimal(str(event.hours)),
            )
        )


async def project_approved(uow: UnitOfWork, event: ProjectApproved) -> None:
    project = await uow.session.get(ProjectReplica, event.project_id)
    if project is None:
        uow.session.add(
            ProjectReplica(id=event.project_id, name=event.name, year=event.year, status="approved")
        )
    else:
        project.status = "approved"


async def learning_recorded(uow: UnitOfWork, event: LearningRecorded) -> None:
    """City-platform hours count without any declaration (and outside every claim cap)."""
    person = await uow.session.scalar(select(Person).where(Person.id_number == event.id_number))
    if person is None:
        if await uow.session.get(PendingLearning, event.record_id) is None:
            uow.session.add(
                PendingLearning(
                    record_id=event.record_id,
                    id_number=event.id_number,
                    year=event.year,
                    subject=event.subject,
                    hours=Decimal(str(event.hours)),
                    course=event.course,
                    completed_at=event.completed_at,
                )
            )
        return
    await _book_learning(
        uow,
        person,
        event.record_id,
        event.year,
        event.subject,
        Decimal(str(event.hours)),
        event.course,
    )


async def book_pending_learning(uow: UnitOfWork, person: Person) -> None:
    pending = (
        await uow.session.scalars(
            select(PendingLearning).where(PendingLearning.id_number == person.id_number)
        )
    ).all()
    for record in pending:
        await _book_learning(
            uow, person, record.record_id, record.year, record.subject, record.hours, record.course
        )
        await uow.session.delete(record)


async def _book_learning(
    uow: UnitOfWork,
    person: Person,
    record_id: str,
    year: int,
    subject: str,
    hours: Decimal,
    course: str,
) -> None:
    exists = await uow.session.scalar(
        select(LedgerEntry.id).where(
            LedgerEntry.source == "city_platform", LedgerEntry.ref == record_id
        )
    )
    if exists is None:
        uow.session.add(
            LedgerEntry(
                person_id=person.id,
                year=year,
                subject=subject,
                hours=hours,
                source="city_platform",
                ref=record_id,
                title=course,
            )
        )
