"""Claims through their lifecycle: verification against the replicas, the rules' assessment,
submission, withdrawal, revisions, and the outcomes of review booked on the ledger.

Every function takes the unit of work; none commits. Hour rules live in :mod:`rules` (pure).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, insert, select
from sqlalchemy.exc import IntegrityError

from libs.common.auth import Principal
from libs.common.db import new_id, utcnow
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
)
from libs.common.idnumber import mask_id_number
from libs.common.uow import UnitOfWork
from services.claims import rules
from services.claims.commands import ClaimCommand
from services.claims.ledger import credited_so_far
from services.claims.models import (
    CertificateReplica,
    Claim,
    ClaimReference,
    ClaimStatus,
    Evidence,
    ExamCardReplica,
    LedgerEntry,
    LedgerSource,
    Person,
    PersonalEvidenceHold,
    ProjectReplica,
    ReviewStage,
    SyncStatus,
)
from services.claims.notifications import NotificationKind, notify
from services.claims.persons import get_person
from services.claims.scope import is_self, may_see_person

# --- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    """What the replicas of the registry confirm about a claim's references."""

    card_hours: Decimal | None = None
    certificate_hours: Decimal | None = None
    # the subject the e-certificate, or else the cited filed project, certifies
    certified_subject: str | None = None
    any: bool = False
    notes: tuple[str, ...] = ()
    # the filed project the claim cites (project_id, or its e-certificate's), for the reviewers
    project_id: str | None = None


def normalise_code(value: object) -> str:
    """Certificate codes, card and reference numbers compare case- and space-insensitively."""
    return "".join(str(value).split()).upper()


def claim_input(
    command: ClaimCommand, evidence_count: int, verified: Verified | None = None
) -> rules.ClaimInput:
    verified = verified or Verified()
    credits = command.credits
    return rules.ClaimInput(
        category=command.category,
        subject=command.subject,
        hours=command.hours,
        start_date=command.start_date,
        end_date=command.end_date,
        months=command.months,
        credits=[(c.subject, c.hours) for c in credits] if credits else None,
        reference_no=command.reference_no,
        certificate_code=command.certificate_code,
        exam_card_no=command.exam_card_no,
        evidence_count=evidence_count,
        card_hours=verified.card_hours,
        certificate_hours=verified.certificate_hours,
        certified_subject=verified.certified_subject,
        leave_kind=command.leave_kind,
        leave_reason=command.leave_reason,
        travel_days=command.travel_days,
        transfer_date=command.transfer_date,
        issuing_authority=command.issuing_authority,
    )


async def verify_references(uow: UnitOfWork, person: Person, command: ClaimCommand) -> Verified:
    """Check e-certificates, exam cards and project filings against the registry's replicas.

    Wrong holder, unknown, revoked, another year → 422. A training needs a filing: an
    e-certificate of a filed project, a filed project of the city (``project_id``), or the
    filing number of another HR department (``reference_no``, checked by the reviewers).
    """
    category, year = command.category, command.year
    if category == "training":
        return await _verify_training(uow, person, command, year)
    if category == "exam_staff" and command.exam_card_no:
        card = await uow.session.get(ExamCardReplica, normalise_code(command.exam_card_no))
        if card is None:
            raise RuleViolation(
                "no 学时登记卡 with this number was issued by the city exam centre",
                code="unknown_exam_card",
            )
        if card.id_number != person.id_number:
            # a card its holder already declared, cited by a second person: the rule of one
            # personal certificate, one person; otherwise the register's holder is another
            cited = await _cited_by_another(
                uow, year, category, person.id, [("exam_card_no", card.card_no)]
            )
            if cited is not None:
                raise _evidence_of_another_person(cited)
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
    uow: UnitOfWork, person: Person, command: ClaimCommand, year: int
) -> Verified:
    code = command.certificate_code
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
            certified_subject=cert.subject,
            any=True,
            project_id=cert.project_id,
        )
    project_id = command.project_id
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
        return Verified(
            certified_subject=project.subject,
            notes=(f"filed project: {project.name}",),
            project_id=project.id,
        )
    if command.reference_no:
        return Verified(
            notes=("the filing number will be checked by your unit and the HR authority",)
        )
    raise RuleViolation(
        "a training counts only if it was filed (备案) with an HR department: cite its "
        "e-certificate (certificate_code), the city's filed project (project_id), or another "
        "HR department's filing number (reference_no)",
        code="unfiled_training",
    )


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


# Core inserts of the tables (not ORM-enabled ones of the classes): no flush machinery
_INSERT_CLAIM = insert(cast(Table, Claim.__table__))
_CLAIM_COLUMNS = frozenset(Claim.__table__.columns.keys())
_INSERT_REFERENCES = insert(cast(Table, ClaimReference.__table__))
_INSERT_HOLDS = insert(cast(Table, PersonalEvidenceHold.__table__))
# the person's references with any of the values (a statement built once; the kinds are told
# apart in Python: a value of another kind never matches a wanted (kind, value) pair)
_TAKEN = select(ClaimReference.kind, ClaimReference.value, ClaimReference.claim_id).where(
    ClaimReference.person_id == bindparam("person_id"),
    ClaimReference.value.in_(bindparam("values", expanding=True)),
)


async def _bind_references(
    uow: UnitOfWork,
    claim: Claim,
    command: ClaimCommand,
    evidence: list[Evidence],
    *,
    new: bool = False,
) -> None:
    """Each reference and each evidence file backs at most one live claim of the person.

    One query finds which of the claim's references back another claim; a new claim has no
    references of its own to release (a revision first releases those of its last revision).
    """
    if not new:
        await _release_references(uow, claim.id)
    unique = rules.load_ruleset(claim.year).category(claim.category).evidence.unique
    refs: list[tuple[str, str]] = [
        (f, normalise_code(value)) for f in unique if (value := command.reference(f))
    ]
    refs += [("file_sha256", e.sha256) for e in evidence]
    refs = list(dict.fromkeys(refs))
    if refs:
        taken = await uow.session.execute(
            _TAKEN, {"person_id": claim.person_id, "values": [value for _, value in refs]}
        )
        holders = {(kind, value): holder for kind, value, holder in taken}
        for kind, value in refs:
            holder = holders.get((kind, value))
            if holder is not None and holder != claim.id:
                raise RuleViolation(
                    f"this {kind.replace('_', ' ')} already backs claim {holder}; "
                    "the same evidence can back only one claim",
                    code="duplicate_evidence",
                    claim_id=holder,
                )
    if not refs:
        return
    await _check_personal_evidence(uow, claim, refs)
    rows = [
        {"person_id": claim.person_id, "kind": kind, "value": value, "claim_id": claim.id}
        for kind, value in refs
    ]
    try:
        await uow.session.execute(_INSERT_REFERENCES, rows)
    except IntegrityError as exc:
        raise RuleViolation(
            "this evidence already backs another claim", code="duplicate_evidence"
        ) from exc


async def _release_references(uow: UnitOfWork, claim_id: str) -> None:
    """The claim's evidence backs it no more (withdrawn, or a revision binds it again)."""
    await uow.session.execute(delete(ClaimReference).where(ClaimReference.claim_id == claim_id))
    await uow.session.execute(
        delete(PersonalEvidenceHold).where(PersonalEvidenceHold.claim_id == claim_id)
    )


# another person's live claims (holding their references) citing any of the values, in a
# category whose evidence is personal (the kinds are told apart in Python, as above)
_CITED_BY_OTHERS = (
    select(ClaimReference.kind, ClaimReference.value, Claim.category)
    .join(Claim, Claim.id == ClaimReference.claim_id)
    .where(
        ClaimReference.kind.in_(bindparam("kinds", expanding=True)),
        ClaimReference.value.in_(bindparam("values", expanding=True)),
        ClaimReference.person_id != bindparam("person_id"),
        Claim.category.in_(bindparam("categories", expanding=True)),
    )
)


async def _check_personal_evidence(
    uow: UnitOfWork, claim: Claim, refs: list[tuple[str, str]]
) -> None:
    """One personal certificate, one person: a qualification certificate, a transfer-in
    certificate or an exam card (its number, or the very same file) that a live claim of
    another person cites is refused (``evidence_of_another_person``). The answer names neither
    that person nor their claim."""
    kind = await _cited_by_another(uow, claim.year, claim.category, claim.person_id, refs)
    if kind is not None:
        raise _evidence_of_another_person(kind)
    # the hold closes the race the query above cannot see (another person's claim of the same
    # moment, not committed yet); claims from before the holds are found by the query
    kinds = rules.load_ruleset(claim.year).personal_kinds(claim.category)
    holds = [
        {"kind": k, "value": v, "person_id": claim.person_id, "claim_id": claim.id}
        for k, v in refs
        if k in kinds
    ]
    if holds:
        try:
            await uow.session.execute(_INSERT_HOLDS, holds)
        except IntegrityError as exc:  # the whole unit of work rolls back with the refusal
            raise _evidence_of_another_person(str(holds[0]["kind"])) from exc


async def _cited_by_another(
    uow: UnitOfWork, year: int, category: str, person_id: str, refs: list[tuple[str, str]]
) -> str | None:
    """The kind of the first of ``refs`` personal to ``category`` that a live claim of another
    person cites (as personal evidence of its own category), or None."""
    ruleset = rules.load_ruleset(year)
    kinds = ruleset.personal_kinds(category)
    personal = [(kind, value) for kind, value in refs if kind in kinds]
    if not personal:
        return None
    cited = await uow.session.execute(
        _CITED_BY_OTHERS,
        {
            "person_id": person_id,
            "kinds": sorted({kind for kind, _ in personal}),
            "values": [value for _, value in personal],
            "categories": list(ruleset.personal_evidence),
        },
    )
    for kind, value, other_category in cited:
        if (kind, value) in personal and kind in ruleset.personal_kinds(other_category):
            return str(kind)
    return None


def _evidence_of_another_person(kind: str) -> RuleViolation:
    return RuleViolation(
        f"this {kind.replace('_', ' ')} is already cited by another person's claim: a personal "
        "certificate counts for its holder only; if it is yours, ask your unit to check the "
        "other claim",
        code="evidence_of_another_person",
        evidence=kind,
    )


async def _assess(
    uow: UnitOfWork,
    person: Person,
    command: ClaimCommand,
    evidence_count: int,
    now: datetime,
    *,
    claim_id: str | None = None,
    revision: bool = False,
) -> tuple[rules.Assessment, Verified]:
    ruleset = rules.load_ruleset(command.year)
    verified = await verify_references(uow, person, command)
    dated_categories = across_claim_categories(ruleset, command.category)
    if dated_categories:
        # Lock the person: two claims racing for the same days (or months) must be checked one
        # after the other, or both would see the days free (the per-person daily cap)
        await uow.session.get(Person, person.id, with_for_update=True)
    credited = await credited_so_far(uow, person.id, ruleset.year)
    # only the claims in review that can use up this claim's cap count (none for an uncapped
    # category such as training): the others are not even loaded
    sharing = rules.cap_sharing_categories(ruleset, command.category)
    pending = await pending_claims(uow, person.id, ruleset.year, sharing) if sharing else []
    dated = (
        await dated_claims(uow, person.id, ruleset.year, dated_categories, but=claim_id)
        if dated_categories
        else []
    )
    assessment = rules.assess(
        ruleset,
        claim_input(command, evidence_count, verified),
        credited,
        now=now,
        pending=pending,
        dated=dated,
        revision=revision,
    )
    return assessment, verified


def across_claim_categories(ruleset: rules.RuleSet, category: str) -> list[str]:
    """The categories whose dated claims a claim of ``category`` is checked against: the
    per-person daily cap's, or the months credited once' (none for other categories)."""
    for group in (ruleset.person_daily_cap.categories, ruleset.months_credited_once.categories):
        if category in group:
            return list(group)
    return []


_LIVE = (ClaimStatus.IN_REVIEW, ClaimStatus.APPROVED)


async def dated_claims(
    uow: UnitOfWork,
    person_id: str,
    year: int,
    categories: Sequence[str],
    *,
    but: str | None = None,
) -> list[rules.DatedClaim]:
    """The person's live claims (in review or approved) of ``categories`` in the year that give
    dates, but ``but`` (the claim being revised or approved: a revision replaces its
    predecessor). Withdrawn, rejected and revoked claims free their days."""
    rows = await uow.session.execute(
        select(
            Claim.id,
            Claim.title,
            Claim.category,
            Claim.status,
            Claim.body,
            Claim.requested_hours,
            Claim.credits,
        ).where(
            Claim.person_id == person_id,
            Claim.year == year,
            Claim.status.in_(_LIVE),
            Claim.category.in_(list(categories)),
        )
    )
    found = []
    for row in rows:
        start, end = row.body.get("start_date"), row.body.get("end_date")
        if row.id == but or not start or not end:
            continue
        approved = row.status == ClaimStatus.APPROVED
        hours = (
            sum((Decimal(str(c["hours"])) for c in row.credits or []), Decimal(0))
            if approved
            else Decimal(str(row.requested_hours))
        )
        found.append(
            rules.DatedClaim(
                claim_id=row.id,
                title=row.title,
                category=row.category,
                start_date=date.fromisoformat(start),
                end_date=date.fromisoformat(end),
                hours=rules.round_hours(hours),
                approved=approved,
                travel_days=int(row.body.get("travel_days") or 0),
            )
        )
    return found


_PENDING = select(Claim.id, Claim.title, Claim.category, Claim.expected_credits).where(
    Claim.person_id == bindparam("person_id"),
    Claim.year == bindparam("year"),
    Claim.status == ClaimStatus.IN_REVIEW,
)
_PENDING_ORDER = (func.coalesce(Claim.submitted_at, Claim.created_at), Claim.id)
_PENDING_ALL = _PENDING.order_by(*_PENDING_ORDER)
_PENDING_OF = _PENDING.where(Claim.category.in_(bindparam("categories", expanding=True))).order_by(
    *_PENDING_ORDER
)


async def pending_claims(
    uow: UnitOfWork, person_id: str, year: int, categories: Sequence[str] | None = None
) -> list[rules.PendingClaim]:
    """The person's claims of the year in review (of ``categories`` only, if given), in the
    order they were submitted."""
    params: dict[str, Any] = {"person_id": person_id, "year": year}
    if categories is None:
        rows = await uow.session.execute(_PENDING_ALL, params)
    else:
        rows = await uow.session.execute(_PENDING_OF, {**params, "categories": list(categories)})
    return [
        rules.PendingClaim(
            claim_id=c.id,
            title=c.title,
            category=c.category,
            credits=tuple(
                rules.Credit(x["subject"], rules.round_hours(Decimal(str(x["hours"]))))
                for x in c.expected_credits
            ),
        )
        for c in rows
    ]


def _may_claim_for(principal: Principal, person: Person) -> None:
    if is_self(principal, person):
        return
    raise Forbidden("only the person may claim hours for themselves", code="not_claimant")


async def submit_claim(
    uow: UnitOfWork, principal: Principal, command: ClaimCommand, *, now: datetime
) -> Claim:
    person = await get_person(uow, principal, command.person_id)
    _may_claim_for(principal, person)
    evidence = await _check_evidence_ids(uow, principal, command.evidence_ids)
    assessment, verified = await _assess(uow, person, command, len(evidence), now)
    command = _with_computed_months(command, assessment)
    claim = Claim(
        id=new_id(),  # known before the insert: the references cite it
        person_id=person.id,
        year=command.year,
        category=command.category,
        subject=assessment.credits[0].subject if assessment.credits else "professional",
        title=command.title,
        body=command.stored(),
        revision=1,
        status=ClaimStatus.IN_REVIEW,
        stage=ReviewStage.UNIT,
        submitted_at=now,
    )
    _apply_assessment(claim, assessment, verified)
    # written by a Core insert, not the session's flush (a third of a submission's CPU): the
    # object stays transient, with the values the flush would have given it
    claim.created_at = claim.updated_at = utcnow()
    claim.sync_status = SyncStatus.NOT_APPLICABLE.value
    await uow.session.execute(
        _INSERT_CLAIM, {key: value for key, value in vars(claim).items() if key in _CLAIM_COLUMNS}
    )
    await _bind_references(uow, claim, command, evidence, new=True)
    _emit_submitted(uow, claim, person, command, verified)
    return claim


def _with_computed_months(command: ClaimCommand, assessment: rules.Assessment) -> ClaimCommand:
    """The command with the months the rules computed from its dates (kept on the claim)."""
    if assessment.months is None or assessment.months == command.months:
        return command
    return command.model_copy(update={"months": assessment.months})


def _apply_assessment(claim: Claim, assessment: rules.Assessment, verified: Verified) -> None:
    claim.requested_hours = assessment.requested_hours
    claim.expected_credits = _credits_json(assessment.credits)
    claim.warnings = [*assessment.warnings, *verified.notes]
    claim.verified_evidence = verified.any
    claim.credits = []


def _emit_submitted(
    uow: UnitOfWork, claim: Claim, person: Person, command: ClaimCommand, verified: Verified
) -> None:
    notify(
        uow,
        person.id,
        "claim_submitted",
        f"「{claim.title}」 (revision {claim.revision}) was submitted: "
        f"{rules.fmt_hours(Decimal(claim.requested_hours))} h requested, now in unit review.",
        claim_id=claim.id,
        data={"revision": claim.revision, "expected_credits": claim.expected_credits},
    )
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
            evidence_ids=list(command.evidence_ids),
            references=command.references(),
            leave_kind=command.leave_kind,
            leave_reason=command.leave_reason,
            project_id=verified.project_id,
            start_date=command.start_date,
            end_date=command.end_date,
            months=command.months,
            travel_days=command.travel_days,
            transfer_date=command.transfer_date,
            issuing_authority=command.issuing_authority,
            warnings=list(claim.warnings),
        ),
        subject=claim.id,
    )


async def get_claim(uow: UnitOfWork, principal: Principal, claim_id: str) -> Claim:
    claim = await uow.session.get(Claim, claim_id)
    person = await uow.session.get(Person, claim.person_id) if claim is not None else None
    # out of scope is the same 404 as missing: neither the claim's existence nor its owner leaks
    if claim is None or person is None or not await may_see_person(uow.session, principal, person):
        raise NotFound(f"claim {claim_id} not found in your scope", code="claim_not_found")
    return claim


async def withdraw_claim(uow: UnitOfWork, principal: Principal, claim_id: str) -> Claim:
    claim = await get_claim(uow, principal, claim_id)
    person = await get_person(uow, principal, claim.person_id)
    _may_claim_for(principal, person)
    if claim.status not in (ClaimStatus.IN_REVIEW, ClaimStatus.REJECTED):
        raise Conflict(f"a claim that is {claim.status} cannot be withdrawn", code="claim_not_open")
    claim.status = ClaimStatus.WITHDRAWN
    claim.stage = None
    await _release_references(uow, claim.id)
    uow.emit(
        ClaimWithdrawn(claim_id=claim.id, revision=claim.revision, person_id=claim.person_id),
        subject=claim.id,
    )
    return claim


async def revise_claim(
    uow: UnitOfWork,
    principal: Principal,
    claim_id: str,
    command: ClaimCommand,
    *,
    now: datetime,
) -> Claim:
    claim = await get_claim(uow, principal, claim_id)
    person = await get_person(uow, principal, claim.person_id)
    _may_claim_for(principal, person)
    if claim.status != ClaimStatus.REJECTED:
        raise Conflict(
            f"only a rejected claim can be revised; this one is {claim.status}",
            code="claim_not_rejected",
        )
    if command.person_id != claim.person_id or command.year != claim.year:
        raise RuleViolation(
            "a revision keeps the claim's person and year", code="revision_mismatch"
        )
    evidence = await _check_evidence_ids(uow, principal, command.evidence_ids)
    assessment, verified = await _assess(
        uow, person, command, len(evidence), now, claim_id=claim.id, revision=True
    )
    command = _with_computed_months(command, assessment)
    claim.revision += 1
    claim.body = command.stored()
    claim.category = command.category
    claim.title = command.title
    claim.subject = assessment.credits[0].subject if assessment.credits else claim.subject
    claim.status = ClaimStatus.IN_REVIEW
    claim.stage = ReviewStage.UNIT
    claim.rejection_reason = None
    claim.submitted_at = now
    _apply_assessment(claim, assessment, verified)
    await _bind_references(uow, claim, command, evidence)
    _emit_submitted(uow, claim, person, command, verified)
    return claim


# --- review outcomes (event handlers call these) --------------------------------------------


async def _claim_at(uow: UnitOfWork, claim_id: str, revision: int) -> Claim | None:
    """The claim if the event is about its current revision (stale revisions are ignored)."""
    claim = await uow.session.get(Claim, claim_id)
    if claim is None or claim.revision != revision or claim.status != ClaimStatus.IN_REVIEW:
        return None
    return claim


async def stage_passed(uow: UnitOfWork, event: ClaimStagePassed) -> None:
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is not None:
        claim.stage = event.next_stage
        notify(
            uow,
            claim.person_id,
            "stage_passed",
            f"「{claim.title}」 passed {event.stage} review; now in {event.next_stage} review.",
            claim_id=claim.id,
            data={"stage": event.stage, "next_stage": event.next_stage},
        )


async def rejected(uow: UnitOfWork, event: ClaimRejected, *, now: datetime) -> None:
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is not None:
        claim.status = ClaimStatus.REJECTED
        claim.stage = None
        claim.rejection_reason = event.reason
        claim.decided_at = now
        notify(
            uow,
            claim.person_id,
            "claim_rejected",
            f"「{claim.title}」 was rejected at {event.stage} review: {event.reason}",
            claim_id=claim.id,
            data={"stage": event.stage, "reason": event.reason},
        )


async def approved(uow: UnitOfWork, event: ClaimApproved, *, now: datetime) -> None:
    """Book the credits in approval order: caps cut what the earlier approvals used up."""
    claim = await _claim_at(uow, event.claim_id, event.revision)
    if claim is None:
        return
    ruleset = rules.load_ruleset(claim.year)
    command = ClaimCommand.of_claim(claim.body)
    evidence_count = len(command.evidence_ids)
    # Lock the person: two approvals of one person's claims (on two replicas of this service)
    # must book one after the other, or both would see the same room under a yearly cap.
    person = await uow.session.get(Person, claim.person_id, with_for_update=True)
    assert person is not None
    try:
        verified = await verify_references(uow, person, command)
    except RuleViolation as exc:
        # the evidence stopped being valid while the claim was in review: nothing to credit
        claim.status, claim.stage, claim.decided_at = ClaimStatus.REVOKED, None, now
        claim.rejection_reason = exc.detail
        notify(
            uow,
            claim.person_id,
            "credit_revoked",
            f"「{claim.title}」 cannot be credited: {exc.detail}",
            claim_id=claim.id,
            data={"reason": exc.detail},
        )
        return
    # at approval only the months credited once are booked again (the daily cap is checked at
    # submission, under the person's lock)
    once = ruleset.months_credited_once.categories
    dated_categories = list(once) if claim.category in once else []
    credits = rules.credit_on_approval(
        ruleset,
        claim_input(command, evidence_count, verified),
        await credited_so_far(uow, claim.person_id, claim.year),
        await dated_claims(uow, claim.person_id, claim.year, dated_categories, but=claim.id)
        if dated_categories
        else [],
    )
    claim.status = ClaimStatus.APPROVED
    claim.stage = None
    claim.decided_at = now
    claim.credits = _credits_json(credits)
    booked = [c for c in credits if c.hours > 0]
    claim.sync_status = SyncStatus.PENDING if booked else SyncStatus.NOT_APPLICABLE
    for credit in credits:
        uow.session.add(
            LedgerEntry(
                person_id=claim.person_id,
                year=claim.year,
                subject=credit.subject,
                hours=credit.hours,
                source=LedgerSource.CLAIM,
                ref=claim.id,
                category=claim.category,
                title=claim.title,
                note=_cut_note(claim, credit),
            )
        )
    credited_text = ", ".join(f"{rules.fmt_hours(c.hours)} h {c.subject}" for c in credits)
    notify(
        uow,
        claim.person_id,
        "claim_approved",
        f"「{claim.title}」 was approved: {credited_text} credited.",
        claim_id=claim.id,
        data={"credits": claim.credits},
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
            "a yearly cap, or the months, were used up by claims approved earlier"
        )
    return None


async def void_outcome(uow: UnitOfWork, claim_id: str | None, status: SyncStatus) -> None:
    """A revoked claim's province record voided (``voided``) or the void refused for good
    (``void_failed``, which a later voided record of the same claim does not hide)."""
    if claim_id is None:
        return
    claim = await uow.session.get(Claim, claim_id)
    if claim is None or claim.status != ClaimStatus.REVOKED:
        return
    if claim.sync_status == status or claim.sync_status == SyncStatus.VOID_FAILED:
        return
    claim.sync_status = status
    if status == SyncStatus.VOIDED:
        kind: NotificationKind = "province_voided"
        message = f"The province record of 「{claim.title}」 is voided: its hours no longer count."
    else:
        kind = "province_void_failed"
        message = (
            f"The province platform refused to void the record of 「{claim.title}」; "
            "the city bureau follows it up."
        )
    notify(uow, claim.person_id, kind, message, claim_id=claim.id, data={"sync_status": status})


async def sync_outcome(uow: UnitOfWork, claim_id: str | None, status: SyncStatus) -> None:
    if claim_id is None:
        return
    claim = await uow.session.get(Claim, claim_id)
    if claim is not None and claim.status == ClaimStatus.APPROVED:
        first = claim.sync_status != status
        claim.sync_status = status
        if first and status == SyncStatus.REGISTERED:
            notify(
                uow,
                claim.person_id,
                "registered_at_province",
                f"The hours of 「{claim.title}」 are registered on the province platform.",
                claim_id=claim.id,
            )
