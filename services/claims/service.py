"""Claims use cases: persons, evidence, claims through their lifecycle, the hours ledger.

Every function takes the unit of work; none commits. Hour rules live in :mod:`rules` (pure).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import filetype
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import Principal
from libs.common.db import utcnow
from libs.common.errors import Conflict, Forbidden, NotFound, RuleViolation
from libs.common.events import (
    Affiliation,
    ClaimApproved,
    ClaimCredited,
    ClaimRejected,
    ClaimStagePassed,
    ClaimSubmitted,
    ClaimWithdrawn,
    Credit,
    OrgUpserted,
    PersonRegistered,
)
from libs.common.uow import UnitOfWork
from services.claims import rules
from services.claims.idnumber import mask_id_number, validate_id_number
from services.claims.models import (
    Claim,
    ClaimReference,
    Evidence,
    LedgerEntry,
    OrgReplica,
    Person,
)

Clock = Callable[[], datetime]
ALLOWED_CONTENT_TYPES = {"application/pdf", "image/jpeg", "image/png"}
REFERENCE_FIELDS = ("certificate_code", "exam_card_no", "reference_no")


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


async def can_see_person(uow: UnitOfWork, principal: Principal, person: Person) -> bool:
    if principal.is_city:
        return True
    if principal.role == "personnel":
        return principal.person_id == person.id
    if principal.role in {"unit_admin", "agency_admin", "district_admin", "department_admin"}:
        return principal.org_id in await org_chain(uow, person.org_id)
    return False


async def get_person(uow: UnitOfWork, principal: Principal, person_id: str) -> Person:
    person = await uow.session.get(Person, person_id)
    if person is None or not await can_see_person(uow, principal, person):
        raise NotFound(f"person {person_id} not found in your scope", code="person_not_found")
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
    if not principal.is_city and (
        principal.role not in {"unit_admin", "agency_admin", "district_admin", "department_admin"}
        or principal.org_id not in await org_chain(uow, org.id)
    ):
        raise Forbidden(
            "only the person's unit or agency, its authority, or the city bureau may register",
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
    return person


# --- evidence -------------------------------------------------------------------------------


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
    store: LocalEvidenceStore,
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


async def live_ledger(uow: UnitOfWork, person_id: str, year: int) -> Sequence[LedgerEntry]:
    return (
        await uow.session.scalars(
            select(LedgerEntry)
            .where(
                LedgerEntry.person_id == person_id,
                LedgerEntry.year == year,
                LedgerEntry.revoked_at.is_(None),
            )
            .order_by(LedgerEntry.created_at, LedgerEntry.id)
        )
    ).all()


async def credited_so_far(uow: UnitOfWork, person_id: str, year: int) -> rules.CreditedSoFar:
    by_claim: dict[str, tuple[str, list[rules.Credit]]] = {}
    outside: dict[str, Decimal] = defaultdict(Decimal)
    for entry in await live_ledger(uow, person_id, year):
        if entry.source == "claim" and entry.category:
            _, credits = by_claim.setdefault(entry.ref, (entry.category, []))
            credits.append(rules.Credit(entry.subject, Decimal(entry.hours)))  # type: ignore[arg-type]
        else:
            outside[entry.subject] += Decimal(entry.hours)
    return rules.CreditedSoFar.from_approved(by_claim.values(), outside)


# --- claims ---------------------------------------------------------------------------------


def claim_input(body: dict[str, Any], evidence_count: int) -> rules.ClaimInput:
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
    refs = [(f, str(body[f]).strip().upper()) for f in REFERENCE_FIELDS if body.get(f)]
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
) -> rules.Assessment:
    ruleset = rules.load_ruleset(int(body["year"]))
    credited = await credited_so_far(uow, person.id, ruleset.year)
    return rules.assess(ruleset, claim_input(body, evidence_count), credited, now=now)


def _may_claim_for(principal: Principal, person: Person) -> None:
    if principal.role == "personnel" and principal.person_id == person.id:
        return
    raise Forbidden("only the person may claim hours for themselves", code="not_claimant")


async def submit_claim(
    uow: UnitOfWork, principal: Principal, body: dict[str, Any], *, now: datetime
) -> Claim:
    person = await get_person(uow, principal, body["person_id"])
    _may_claim_for(principal, person)
    evidence = await _check_evidence_ids(uow, principal, body.get("evidence_ids") or [])
    assessment = await _assess(uow, person, body, len(evidence), now)
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
    _apply_assessment(claim, assessment)
    uow.session.add(claim)
    await uow.session.flush()
    await _bind_references(uow, claim, body, evidence)
    _emit_submitted(uow, claim, person)
    return claim


def _apply_assessment(claim: Claim, assessment: rules.Assessment) -> None:
    claim.requested_hours = assessment.requested_hours
    claim.expected_credits = _credits_json(assessment.credits)
    claim.warnings = list(assessment.warnings)
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
    if claim is None:
        raise NotFound(f"claim {claim_id} not found in your scope", code="claim_not_found")
    await get_person(uow, principal, claim.person_id)  # raises the same 404 when out of scope
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
    assessment = await _assess(uow, person, body, len(evidence), now)
    claim.revision += 1
    claim.body = body
    claim.category = body["category"]
    claim.title = body["title"]
    claim.subject = assessment.credits[0].subject if assessment.credits else claim.subject
    claim.status = "in_review"
    claim.stage = "unit"
    claim.rejection_reason = None
    _apply_assessment(claim, assessment)
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
    credits = rules.credit_on_approval(
        ruleset,
        claim_input(claim.body, evidence_count),
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
    for entry in await live_ledger(uow, person.id, year):
        credited[entry.subject] += Decimal(entry.hours)
        entries.append(
            {
                "source": entry.source,
                "ref": entry.ref,
                "category": entry.category,
                "title": entry.title,
                "subject": entry.subject,
                "hours": float(entry.hours),
                "note": entry.note,
                "at": entry.created_at.isoformat(),
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
