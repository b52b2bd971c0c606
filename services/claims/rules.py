"""The hour rules of 附件1 (DOMAIN.md "Claim categories"), as pure functions of
(rule set for the year, claim, what is already credited) -> credits and warnings.

Every number lives in ``rulesets/<year>.json``; this module only knows the *kinds* of rule.
No I/O beyond reading that packaged JSON once per year, no database, no web framework.

Interpretations (where DOMAIN.md or the notice leaves room):

- ``qualification_exam`` (16 hours per certificate) is outside the 40-hour ``study`` cap.
- ``achievement``, ``competition`` and ``qualification_exam`` claims are one item each: the
  hours follow from the rule; a claim that names other hours is refused (``invalid_hours``).
- ``aid_deployment`` credits 30 public + 60 professional per full year, part years by
  ``months / 12`` (whole months 1..12); its cap is one deployment-year (12 months) a year,
  measured on credited hours converted back to months.
- ``special_leave`` credits ``months_off / 12 × (30 public + 60 professional)`` (DOMAIN.md's
  reading of 「按实际在岗时间折算」), once a year, months 1..12. The claim names its
  ``leave_kind`` (the rule set's ``leave_kinds``): 境外公派 ``abroad`` and 病假 ``sick`` count only
  when *more than* 6 months of the year were spent so (「超过6个月」: whole months, so 7 or more;
  6 or fewer → ``leave_too_short``); 产假 ``maternity`` has no minimum; ``other`` (a case
  recognised by a provincial industry department) needs a ``leave_reason`` for the reviewers
  (``leave_reason_required``). A missing or unknown kind → ``invalid_leave_kind``. Checked at
  submission only: a claim accepted before this rule is still credited at approval.
- Public-subject training (公需) counts as public only "when so certified" (DOMAIN.md): the
  category's ``certified_subjects`` need a verified e-certificate of that subject, or a cited
  city-filed project (``project_id``) whose filing names that subject. A training claimed as
  ``public`` without either is *refused* (``public_subject_unverified``) rather than quietly
  taken as professional: the person chooses (claim it as professional, or cite the certificate
  or project), and nothing is credited to a subject the person did not ask for. Another HR
  department's filing number (``reference_no``) is not verifiable here, so it cannot certify a
  subject. Submission only.
- Both prorated categories credit both subjects, so their claims name no subject.
- ``exam_staff`` credits the hours on the exam card; once the card is verified its hours win,
  and a claim naming other hours is refused (``hours_mismatch``).
- ``training`` may claim public hours (when so certified); a verified e-certificate fixes the
  subject and the maximum hours. Whether a training was filed (备案) is checked by the service
  against the registry (``unfiled_training``), not here.
- Categories 2a–6 credit professional hours only; ``transfer_in`` lists hours per subject.
- Dates, when given, must lie within the rule year (claim the in-year part of a longer
  activity) and, at submission, not after today (Beijing time).
- Caps are enforced on credited hours in approval order. At submission a claim that would
  exceed a cap is accepted with a warning and expected credits cut to what remains; one with
  nothing left is refused (``yearly_cap_reached``). At approval the claim is cut, possibly to 0.
- Claims still in review are not credited, so they never cut ``expected_credits`` (which say
  what the claim credits if approved now) and never make a submission refused; but when the
  claims in review of the same cap group, approved first in the order they were submitted,
  would leave this claim less room, the submission warns, naming the cap, those claims and the
  room left after them (:func:`pending_cap_notes`).
- Hours have at most one decimal; computed hours are rounded half-up to one decimal.
- ≤ 8 hours a day is per *person* (``person_daily_cap``): their dated training and expert
  claims, in review and approved, must fit together (every run of days holds the claims wholly
  inside it); a claim that does not fit is refused (``daily_cap_exceeded``), not cut. An expert
  activity's ``travel_days`` are not credited and take their days in full.
- Aid deployment and special leave give dates; their months follow from them (a month counts
  from ``min_days_in_month`` covered days) and are credited once across both, to the claim
  approved first (``months_credited_once``).
- A transfer-in names its transfer date and issuer; its hours are at most 8 per working day of
  the year before the transfer (``transfer_in_plausibility``).
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from libs.common.errors import RuleViolation
from libs.common.rulesets import load_year_data
from libs.common.workdays import working_days_after

Subject = Literal["public", "professional"]
SUBJECTS: tuple[Subject, ...] = ("public", "professional")
EvidenceKind = Literal["files", "certificate_code", "exam_card_no", "reference_no"]
HoursLike = Decimal | int | float | str

ZERO = Decimal(0)
ONE_PLACE = Decimal("0.1")
# no claim is for more hours than this (a year holds 8,784): a bigger number is a typo or an
# attack, and past 28 digits Decimal cannot even round it to one place
MAX_CLAIM_HOURS = Decimal(10_000)

_EVIDENCE_NAMES: dict[str, str] = {
    "files": "at least one evidence file",
    "certificate_code": "the certificate code",
    "exam_card_no": "the exam card number (学时登记卡)",
    "reference_no": "the reference number (patent, paper, standard or award number)",
}


def fmt_hours(value: Decimal) -> str:
    """Hours for people: ``40``, ``2.5`` (no trailing ``.0``)."""
    text = f"{round_hours(value):f}"
    return text.removesuffix(".0")


def round_hours(value: Decimal) -> Decimal:
    """Round to one decimal place, half-up (the notice's rounding of prorations)."""
    return value.quantize(ONE_PLACE, rounding=ROUND_HALF_UP)


# --- the rule set: per-year data ------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Requirement(_Frozen):
    """Hours a person needs in the year: each subject on its own, and the total."""

    public: Decimal
    professional: Decimal
    total: Decimal

    def for_subject(self, subject: Subject) -> Decimal:
        return self.public if subject == "public" else self.professional


class ClaimWindow(_Frozen):
    opens: AwareDatetime
    closes: AwareDatetime


class DeclarationWindow(_Frozen):
    """六: learning closes on ``learning_closes``; declarations (new claims) and revisions of
    rejected claims close at ``declarations_close`` / ``revisions_close``, by default the end of
    the claim window (no grace). The city may set either later, a short grace period for courses
    ended by ``learning_closes`` and claims rejected in the last days; claim dates still lie in
    the rule year, so what is declared in the grace period was learnt in time."""

    learning_closes: date
    declarations_close: AwareDatetime | None = None
    revisions_close: AwareDatetime | None = None


class ContactLine(_Frozen):
    """A number to call (八 咨询方式)."""

    name: str
    phone: str
    topics: str | None = None


class BureauContact(ContactLine):
    """A district bureau of the directory, found by its org code or (alias) name."""

    codes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


class ContactDirectory(_Frozen):
    source: str
    bureaus: tuple[BureauContact, ...]
    city_bureau: ContactLine
    support: ContactLine

    def bureau(self, *, code: str, name: str) -> BureauContact | None:
        """The directory's entry for an org, by code first, then by name."""
        for entry in self.bureaus:
            if code in entry.codes:
                return entry
        for entry in self.bureaus:
            if name == entry.name or name in entry.aliases:
                return entry
        return None


class Interpretation(_Frozen):
    """A reading of the notice the system applies (docs/rules.md lists each by ``id``), shown on
    the transcript of a person whose entries it concerns: claims of ``categories``, or ledger
    entries of ``sources`` (such as ``city_platform``). With neither, it concerns every year's
    transcript."""

    id: str
    section: str
    text: str
    categories: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def applies_to(self, category: str | None, source: str) -> bool:
        return (category is not None and category in self.categories) or source in self.sources

    @property
    def general(self) -> bool:
        return not self.categories and not self.sources


class DailyCappedRule(_Frozen):
    """Actual hours, at most ``max_hours_per_day`` × inclusive days (training, expert work).

    ``travel_days``: the claim may name its travel and rest days (往返和休息时间, 附件1.4), which
    are not credited: at most ``max_hours_per_day`` × (days − travel days)."""

    kind: Literal["daily_capped"]
    max_hours_per_day: Decimal
    travel_days: bool = False


class AsRecordedRule(_Frozen):
    """The hours recorded by the unit (study)."""

    kind: Literal["as_recorded"]


class FixedPerItemRule(_Frozen):
    """A fixed number of hours per item; one item per claim."""

    kind: Literal["fixed_per_item"]
    hours_per_item: Decimal
    item: str


class CardHoursRule(_Frozen):
    """The hours on the exam centre's card (exam staff)."""

    kind: Literal["card_hours"]


class FullYearProratedRule(_Frozen):
    """``full_year`` hours per subject for a full year, part years × months / months_per_year."""

    kind: Literal["full_year_prorated"]
    full_year: dict[Subject, Decimal]
    months_per_year: int
    max_months: int

    @property
    def full_year_total(self) -> Decimal:
        return sum(self.full_year.values(), ZERO)

    def credits_for(self, months: int) -> tuple[Credit, ...]:
        share = Decimal(months) / Decimal(self.months_per_year)
        return tuple(Credit(s, round_hours(h * share)) for s, h in self.full_year.items())


class CertifiedPerSubjectRule(_Frozen):
    """Hours per subject as certified by another locality (transfer-in)."""

    kind: Literal["certified_per_subject"]


HoursRule = Annotated[
    DailyCappedRule
    | AsRecordedRule
    | FixedPerItemRule
    | CardHoursRule
    | FullYearProratedRule
    | CertifiedPerSubjectRule,
    Field(discriminator="kind"),
]


class EvidenceRule(_Frozen):
    """Evidence a claim must carry: every kind of ``all_of`` and at least one of ``any_of``."""

    all_of: tuple[EvidenceKind, ...] = ()
    any_of: tuple[EvidenceKind, ...] = ()
    # references that are personal evidence: each backs one claim of a person (DOMAIN.md). A
    # training's reference_no is its filing number, shared by every trainee, so it is not.
    unique: tuple[Literal["certificate_code", "exam_card_no", "reference_no"], ...] = (
        "certificate_code",
        "exam_card_no",
        "reference_no",
    )


class LeaveKind(_Frozen):
    """A kind of time off post (附件1 item 7) and its condition."""

    label: str
    # the leave counts only if it lasted more than this many months of the year
    more_than_months: int | None = None
    # the reviewers need the reason (a case recognised by a provincial industry department)
    reason_required: bool = False


PersonalEvidenceKind = Literal["certificate_code", "exam_card_no", "reference_no", "file_sha256"]


class CategoryRules(_Frozen):
    label: str
    rule: HoursRule
    cap_group: str | None
    default_subject: Subject | None
    allowed_subjects: tuple[Subject, ...]
    evidence: EvidenceRule
    # subjects a claim may name only with a verified certificate of that subject
    certified_subjects: tuple[Subject, ...] = ()
    # the kinds of leave a claim must name (special leave); None: the category has none
    leave_kinds: dict[str, LeaveKind] | None = None


class CapGroup(_Frozen):
    """A yearly cap shared by the categories naming it, measured in hours, months or claims."""

    label: str
    measure: Literal["hours", "months", "claims"]
    limit: Decimal


class PersonDailyCap(_Frozen):
    """附件1.1, 1.4 「不超过8学时/天」 per *person*: the dated claims of ``categories`` of one
    person (in review and approved) may together claim at most ``max_hours_per_day`` a day."""

    label: str
    max_hours_per_day: Decimal
    categories: tuple[str, ...]


class MonthsCreditedOnce(_Frozen):
    """附件1.4, 1.7: a month is credited once across ``categories`` (aid deployment, time off
    post). Their claims give dates; a calendar month counts when the dates cover at least
    ``min_days_in_month`` of its days."""

    label: str
    categories: tuple[str, ...]
    min_days_in_month: int


class TransferInPlausibility(_Frozen):
    """四(三) 外地调入: the certified hours are at most ``max_hours_per_working_day`` × the
    working days of the year before the transfer date."""

    label: str
    max_hours_per_working_day: Decimal


class RuleSet(_Frozen):
    """Everything numeric or calendar-ish of one year's notice."""

    year: int
    source: str
    requirement: Requirement
    claim_window: ClaimWindow
    declaration_window: DeclarationWindow | None = None
    contacts: ContactDirectory | None = None
    interpretations: tuple[Interpretation, ...] = ()
    reminder_dates: tuple[date, ...]
    title_application_working_days: int
    person_daily_cap: PersonDailyCap
    months_credited_once: MonthsCreditedOnce
    transfer_in_plausibility: TransferInPlausibility
    cap_groups: dict[str, CapGroup]
    categories: dict[str, CategoryRules]
    # evidence that belongs to one person (a qualification certificate, a transfer-in
    # certificate, an exam card): per category, the kinds a second person may not cite
    personal_evidence: dict[str, tuple[PersonalEvidenceKind, ...]] = {}

    @model_validator(mode="after")
    def _consistent(self) -> RuleSet:
        for name, category in self.categories.items():
            _check_category_config(self, name, category)
        for name in self.personal_evidence:
            if name not in self.categories:
                raise ValueError(f"personal_evidence: unknown category {name}")
        for interpretation in self.interpretations:
            for name in interpretation.categories:
                if name not in self.categories:
                    raise ValueError(f"interpretation {interpretation.id}: unknown {name}")
        return self

    def category(self, name: str) -> CategoryRules:
        """The rules of one category; an unknown name is refused (``invalid_category``)."""
        try:
            return self.categories[name]
        except KeyError:
            known = ", ".join(self.categories)
            raise RuleViolation(
                f"'{name}' is not a claim category of {self.year}; use one of: {known}.",
                code="invalid_category",
                category=name,
            ) from None

    def declarations_close(self, *, revision: bool = False) -> datetime:
        """When a new claim (or, ``revision``, the revision of a rejected one) can no longer be
        made: the declaration window's, else the end of the claim window."""
        window = self.declaration_window
        if window is not None:
            closes = window.revisions_close if revision else window.declarations_close
            if closes is not None:
                return closes
        return self.claim_window.closes

    def interpretations_for(
        self, entries: Iterable[tuple[str | None, str]]
    ) -> list[Interpretation]:
        """The interpretations concerning a transcript's (category, source) entries, in the
        rule data's order, the general ones included."""
        seen = list(entries)
        return [
            i
            for i in self.interpretations
            if i.general or any(i.applies_to(category, source) for category, source in seen)
        ]

    def personal_kinds(self, category: str) -> tuple[PersonalEvidenceKind, ...]:
        """The evidence kinds of ``category`` that only one person may ever cite."""
        return self.personal_evidence.get(category, ())

    def categories_in(self, cap_group: str) -> list[str]:
        return [n for n, c in self.categories.items() if c.cap_group == cap_group]


def _check_category_config(ruleset: RuleSet, name: str, category: CategoryRules) -> None:
    if category.default_subject and category.default_subject not in category.allowed_subjects:
        raise ValueError(f"{name}: default subject is not allowed")
    if category.cap_group is None:
        return
    group = ruleset.cap_groups.get(category.cap_group)
    if group is None:
        raise ValueError(f"{name}: unknown cap group {category.cap_group}")
    if group.measure == "months" and not isinstance(category.rule, FullYearProratedRule):
        raise ValueError(f"{name}: a months cap needs a full_year_prorated rule")


@functools.cache
def load_ruleset(year: int) -> RuleSet:
    """The rule set of ``year`` from the packaged ``rulesets/<year>.json`` (cached).

    An unknown year is refused with ``unknown_rule_year``."""
    return load_year_data(
        "services.claims.rulesets",
        year,
        RuleSet,
        refused="claims can only be made for a year whose notice has been loaded.",
    )


# --- inputs and results ---------------------------------------------------------------------


@dataclass(frozen=True)
class Credit:
    """Hours credited (or expected to be) to one subject."""

    subject: Subject
    hours: Decimal


@dataclass(frozen=True)
class ClaimInput:
    """What a person claims, plus what the service verified against replicas.

    ``card_hours``: the hours on the exam card, when the card number was found in the exam
    centre's issued cards; ``certificate_hours``: the hours of a verified e-certificate;
    ``certified_subject``: the subject that certificate, or else the cited filed project
    (``project_id``), certifies."""

    category: str
    subject: str | None = None
    hours: HoursLike | None = None
    start_date: date | None = None
    end_date: date | None = None
    months: int | None = None
    credits: Sequence[tuple[str, HoursLike]] | None = None
    reference_no: str | None = None
    certificate_code: str | None = None
    exam_card_no: str | None = None
    evidence_count: int = 0
    card_hours: HoursLike | None = None
    certificate_hours: HoursLike | None = None
    certified_subject: str | None = None
    leave_kind: str | None = None
    leave_reason: str | None = None
    travel_days: int | None = None
    transfer_date: date | None = None
    issuing_authority: str | None = None


@dataclass(frozen=True)
class DatedClaim:
    """Another live claim (in review or approved) of the same person and year that gives dates:
    what the per-person daily cap and the months credited once look at. ``hours``: requested
    (in review) or credited (approved)."""

    claim_id: str
    title: str
    category: str
    start_date: date
    end_date: date
    hours: Decimal
    approved: bool
    travel_days: int = 0


@dataclass(frozen=True)
class PendingClaim:
    """A claim of the same person and year still in review: what it expects to credit."""

    claim_id: str
    title: str
    category: str
    credits: tuple[Credit, ...]


@dataclass(frozen=True)
class CreditedSoFar:
    """What is already credited to one person for one rule year, i.e. approved claims.

    ``hours``: category -> subject -> credited hours; ``claims``: category -> number of claims
    that credited anything; ``outside_claims``: subject -> hours from other sources (city
    platform records, certificates), used only for the per-subject requirement warnings."""

    hours: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)
    claims: Mapping[str, int] = field(default_factory=dict)
    outside_claims: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_approved(
        cls,
        approved: Iterable[tuple[str, Sequence[Credit]]],
        outside_claims: Mapping[str, Decimal] | None = None,
    ) -> CreditedSoFar:
        """Build the ledger from ``(category, credits)`` of the approved claims.

        Hours are rounded to one decimal, so floats read back from storage are safe."""
        outside = {s: round_hours(Decimal(h)) for s, h in (outside_claims or {}).items()}
        ledger = cls(outside_claims=outside)
        for category, credits in approved:
            ledger = ledger.plus(category, credits)
        return ledger

    def plus(self, category: str, credits: Sequence[Credit]) -> CreditedSoFar:
        """The ledger after one more approved claim."""
        # Decimal(float) then rounding: a float 2.3 read back from storage counts as 2.3.
        rounded = [(c.subject, round_hours(Decimal(c.hours))) for c in credits]
        if sum((h for _, h in rounded), ZERO) <= 0:
            return self
        per_subject = dict(self.hours.get(category, {}))
        for subject, hours in rounded:
            per_subject[subject] = per_subject.get(subject, ZERO) + hours
        return CreditedSoFar(
            hours={**self.hours, category: per_subject},
            claims={**self.claims, category: self.claims.get(category, 0) + 1},
            outside_claims=self.outside_claims,
        )

    def category_hours(self, category: str) -> Decimal:
        return sum(self.hours.get(category, {}).values(), ZERO)

    def subject_hours(self, subject: str) -> Decimal:
        from_claims = sum((per.get(subject, ZERO) for per in self.hours.values()), ZERO)
        return from_claims + self.outside_claims.get(subject, ZERO)


@dataclass(frozen=True)
class Assessment:
    """A claim as the rules see it at submission.

    ``requested``/``requested_hours``: what the claim asks for under the hours rule, before caps;
    ``credits``: what it is expected to credit given the caps and what is already credited."""

    requested_hours: Decimal
    requested: tuple[Credit, ...]
    credits: tuple[Credit, ...]
    warnings: tuple[str, ...]
    cap_group: str | None = None
    # the months the claim covers, computed from its dates where months are credited once
    months: int | None = None


# --- public entry points --------------------------------------------------------------------


def assess(
    ruleset: RuleSet,
    claim: ClaimInput,
    credited: CreditedSoFar,
    *,
    now: datetime,
    pending: Sequence[PendingClaim] = (),
    dated: Sequence[DatedClaim] = (),
    revision: bool = False,
) -> Assessment:
    """Check a claim at submission and compute its expected credits.

    ``pending``: the person's other claims of the year still in review, in submission order
    (they only add warnings). ``dated``: the person's other live claims of the year with dates
    (the per-person daily cap and the months credited once). Raises :class:`RuleViolation`
    (``window_closed``,
    ``invalid_category``, ``evidence_required``, ``invalid_dates``, ``invalid_subject``,
    ``public_subject_unverified``, ``invalid_leave_kind``, ``leave_too_short``,
    ``leave_reason_required``, ``invalid_hours``, ``invalid_months``, ``hours_mismatch``,
    ``daily_cap_exceeded``, ``invalid_travel_days``, ``months_mismatch``,
    ``months_already_credited``, ``transfer_details_required``, ``invalid_transfer_details``,
    ``transfer_hours_implausible``, ``yearly_cap_reached``)."""
    _check_window(ruleset, now, revision=revision)
    category = ruleset.category(claim.category)
    _check_evidence(claim, category)
    _check_not_future(ruleset, claim, now)
    _check_transfer(ruleset, claim, category, now)
    claim = _with_months(ruleset, claim, category, strict=True)
    _check_leave(claim, category)
    requested, notes = _requested_credits(ruleset, claim, category)
    _check_certified_subject(claim, category, requested)
    day_notes = _check_person_daily_cap(ruleset, claim, requested, dated)
    if _total(_apply_cap(ruleset, category, requested, credited)[0]) <= 0:
        raise _cap_reached(ruleset, category, credited)
    once, month_notes = _months_once(ruleset, claim, requested, dated, strict=True)
    credits, cap_notes = _apply_cap(ruleset, category, once, credited)
    warnings = (
        notes
        + day_notes
        + month_notes
        + cap_notes
        + pending_cap_notes(ruleset, claim.category, credits, credited, pending)
        + _requirement_notes(ruleset, credits, credited)
    )
    return Assessment(
        requested_hours=_total(requested),
        requested=requested,
        credits=credits,
        warnings=tuple(warnings),
        cap_group=category.cap_group,
        months=claim.months,
    )


def credit_on_approval(
    ruleset: RuleSet,
    claim: ClaimInput,
    credited: CreditedSoFar,
    dated: Sequence[DatedClaim] = (),
) -> list[Credit]:
    """The credits of a claim approved now, after the claims approved before it.

    The same computation as :func:`assess` without the window and cap refusals: a claim that
    would exceed a cap, or whose months were credited by a claim approved before it, is cut to
    what remains, possibly to 0 hours (credits keep their subjects). ``dated``: the person's
    other live claims with dates (only the approved ones count here)."""
    category = ruleset.category(claim.category)
    claim = _with_months(ruleset, claim, category, strict=False)
    requested, _ = _requested_credits(ruleset, claim, category)
    approved = [d for d in dated if d.approved]
    once, _ = _months_once(ruleset, claim, requested, approved, strict=False)
    credits, _ = _apply_cap(ruleset, category, once, credited)
    return list(credits)


# --- one person's days and months across claims ---------------------------------------------


def months_of(ruleset: RuleSet, start: date, end: date) -> frozenset[int]:
    """The calendar months (1..12) a span of the rule year counts for: those of which it covers
    at least ``months_credited_once.min_days_in_month`` days (附件1.4 「按月份比例计算」)."""
    min_days = ruleset.months_credited_once.min_days_in_month
    months = set()
    for month in range(start.month, end.month + 1):
        first = date(start.year, month, 1)
        last = date(start.year, month, calendar.monthrange(start.year, month)[1])
        covered = (min(end, last) - max(start, first)).days + 1
        if covered >= min(min_days, last.day):
            months.add(month)
    return frozenset(months)


def _with_months(
    ruleset: RuleSet, claim: ClaimInput, category: CategoryRules, *, strict: bool
) -> ClaimInput:
    """The claim with its months computed from its dates (categories whose months are credited
    once). At submission (``strict``) the dates are required and named months must fit them;
    at approval a claim accepted before this rule keeps its months."""
    once = ruleset.months_credited_once
    rule = category.rule
    if claim.category not in once.categories or not isinstance(rule, FullYearProratedRule):
        return claim
    if strict and claim.months is not None:
        _check_months_range(claim, rule)
    start, end = claim.start_date, claim.end_date
    if start is None or end is None:
        if not strict:
            return claim
        raise RuleViolation(
            f"A {claim.category} claim gives its start and end dates (start_date, end_date): "
            "its months are computed from them, and a month is credited once across aid "
            "deployment and time off post.",
            code="invalid_dates",
        )
    _check_dates(ruleset, claim)
    months = len(months_of(ruleset, start, end))
    if not strict:
        return replace(claim, months=months) if months else claim
    if months == 0:
        raise RuleViolation(
            f"The dates {start} to {end} cover no month: a month counts when at least "
            f"{once.min_days_in_month} of its days are covered.",
            code="invalid_months",
        )
    if claim.months is not None and claim.months != months:
        raise RuleViolation(
            f"The dates {start} to {end} cover {months} month(s) (a month counts when at least "
            f"{once.min_days_in_month} of its days are covered), not {claim.months}: give "
            f"months {months} or leave it out.",
            code="months_mismatch",
            months=months,
        )
    return replace(claim, months=months)


def _months_once(
    ruleset: RuleSet,
    claim: ClaimInput,
    requested: tuple[Credit, ...],
    dated: Sequence[DatedClaim],
    *,
    strict: bool,
) -> tuple[tuple[Credit, ...], list[str]]:
    """Months already credited by an approved claim of the categories credited once (aid
    deployment, time off post) are not credited again: the claim credits its other months.
    Claims still in review only warn (booked in approval order, like the caps)."""
    once = ruleset.months_credited_once
    rule = ruleset.category(claim.category).rule
    start, end = claim.start_date, claim.end_date
    if (
        claim.category not in once.categories
        or not isinstance(rule, FullYearProratedRule)
        or start is None
        or end is None
    ):
        return requested, []
    mine = months_of(ruleset, start, end)
    others = [
        (d, months_of(ruleset, d.start_date, d.end_date) & mine)
        for d in dated
        if d.category in once.categories
    ]
    covered = frozenset().union(*(m for d, m in others if d.approved))
    notes = [
        f"Months {_month_list(m)} are also claimed by 「{d.title}」 (claim {d.claim_id}, in "
        "review): a month is credited once, to the claim approved first."
        for d, m in others
        if m and not d.approved
    ]
    left = mine - covered
    if left == mine:
        return requested, notes
    holders = [{"claim_id": d.claim_id, "title": d.title} for d, m in others if m and d.approved]
    if not left:
        if not strict:
            return _zeroed(requested), notes
        raise RuleViolation(
            f"Months {_month_list(mine)} are already credited by "
            + "; ".join(f"「{h['title']}」 (claim {h['claim_id']})" for h in holders)
            + ": a month is credited once across aid deployment and time off post.",
            code="months_already_credited",
            months=sorted(mine),
            claims=holders,
        )
    note = (
        f"Months {_month_list(mine - left)} are already credited by "
        + "; ".join(f"「{h['title']}」 (claim {h['claim_id']})" for h in holders)
        + f": only the other {len(left)} month(s) count."
    )
    return rule.credits_for(len(left)), [note, *notes]


def _month_list(months: frozenset[int]) -> str:
    return ", ".join(str(m) for m in sorted(months))


def _chained(start: date, end: date, others: Sequence[DatedClaim]) -> list[DatedClaim]:
    """The claims linked to the span ``start``..``end`` by a chain of shared days."""
    chained: list[DatedClaim] = []
    rest = sorted(others, key=lambda d: (d.start_date, d.end_date))
    grown = True
    while grown:
        grown = False
        for d in list(rest):
            if d.start_date <= end and d.end_date >= start:
                chained.append(d)
                rest.remove(d)
                start, end = min(start, d.start_date), max(end, d.end_date)
                grown = True
    return chained


def _claim_load(hours: Decimal, travel_days: int, per_day: Decimal) -> Decimal:
    """What a claim takes of its days: its hours, and its travel and rest days in full."""
    return hours + per_day * travel_days


def _check_person_daily_cap(
    ruleset: RuleSet,
    claim: ClaimInput,
    requested: tuple[Credit, ...],
    dated: Sequence[DatedClaim],
) -> list[str]:
    """附件1.1, 1.4 per person: the claim and the person's other dated claims (in review and
    approved) must fit at most ``max_hours_per_day`` on their days. Claims are spread over
    their spans as they can be: they fit exactly when every window of days holds the claims
    lying wholly inside it (Hall's condition for intervals), so only windows around this claim
    are checked. Refused with ``daily_cap_exceeded`` naming the days and the other claims;
    accepted with a warning for the reviewers when it shares days with other claims."""
    cap = ruleset.person_daily_cap
    start, end = claim.start_date, claim.end_date
    if claim.category not in cap.categories or start is None or end is None:
        return []
    others = [d for d in dated if d.category in cap.categories]
    sharing = [d for d in others if d.start_date <= end and d.end_date >= start]
    if not sharing:
        return []
    per_day = cap.max_hours_per_day
    load = _claim_load(_total(requested), claim.travel_days or 0, per_day)
    # only the claims chained to this one by shared days can make it not fit: the others were
    # checked when they came, and days between runs of claims are free
    others = _chained(start, end, others)
    starts = sorted({start} | {d.start_date for d in others if d.start_date < start})
    ends = sorted({end} | {d.end_date for d in others if d.end_date > end})
    worst: tuple[int, date, date, Decimal, list[DatedClaim]] | None = None
    for first in starts:
        for last in ends:
            inside = [d for d in others if first <= d.start_date and d.end_date <= last]
            if not inside:
                continue
            total = load + sum((_claim_load(d.hours, d.travel_days, per_day) for d in inside), ZERO)
            days = (last - first).days + 1
            if total > per_day * days and (worst is None or days < worst[0]):
                worst = (days, first, last, total, inside)
    if worst is not None:
        days, first, last, total, inside = worst
        span = f"{first}" if days == 1 else f"{first} to {last}"
        named = "; ".join(
            f"「{d.title}」 (claim {d.claim_id}, {d.start_date} to {d.end_date}, "
            f"{fmt_hours(d.hours)} h{', approved' if d.approved else ', in review'})"
            for d in inside
        )
        raise RuleViolation(
            f"At most {fmt_hours(per_day)} hours a day count for a person across all claims: "
            f"on {span} ({days} day(s), at most {fmt_hours(per_day * days)} hours) this claim "
            f"and {named} would come to {fmt_hours(total)} hours (travel and rest days taken "
            "in full). Claim only the hours the days still hold, or revise the other claims.",
            code="daily_cap_exceeded",
            day=first.isoformat(),
            until=last.isoformat(),
            days=days,
            max_hours=float(per_day * days),
            claimed_hours=float(total),
            claims=[{"claim_id": d.claim_id, "title": d.title} for d in inside],
        )
    named = "; ".join(
        f"「{d.title}」 (claim {d.claim_id}, {d.start_date} to {d.end_date}, "
        f"{fmt_hours(d.hours)} h)"
        for d in sharing
    )
    return [
        f"This person has other claims on these days: {named}. Together they fit "
        f"{fmt_hours(per_day)} hours a day; check that the activities did not overlap."
    ]


def cap_remaining(ruleset: RuleSet, cap_group: str, credited: CreditedSoFar) -> Decimal:
    """What is left under a cap group, in its measure (hours, months or claims)."""
    group = ruleset.cap_groups[cap_group]
    return max(group.limit - _cap_used(ruleset, cap_group, credited), ZERO)


def cap_used(ruleset: RuleSet, cap_group: str, credited: CreditedSoFar) -> Decimal:
    """What is used under a cap group, in its measure (hours, months or claims)."""
    return _cap_used(ruleset, cap_group, credited)


# --- checks ---------------------------------------------------------------------------------


def _check_window(ruleset: RuleSet, now: datetime, *, revision: bool = False) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    window = ruleset.claim_window
    closes = ruleset.declarations_close(revision=revision)
    if now > closes:
        what = "revised" if revision else "claimed"
        raise RuleViolation(
            f"The {ruleset.year} claim window closed on {closes.isoformat()}; "
            f"hours for {ruleset.year} can no longer be {what}.",
            code="window_closed",
            closes_at=closes.isoformat(),
        )
    if now < window.opens:
        raise RuleViolation(
            f"The {ruleset.year} claim window opens on {window.opens.isoformat()}; "
            "claims for a future year cannot be made yet.",
            code="window_closed",
            opens_at=window.opens.isoformat(),
        )


def _check_evidence(claim: ClaimInput, category: CategoryRules) -> None:
    present = {
        "files": claim.evidence_count > 0,
        "certificate_code": bool(claim.certificate_code and claim.certificate_code.strip()),
        "exam_card_no": bool(claim.exam_card_no and claim.exam_card_no.strip()),
        "reference_no": bool(claim.reference_no and claim.reference_no.strip()),
    }
    missing = [_EVIDENCE_NAMES[k] for k in category.evidence.all_of if not present[k]]
    any_of = category.evidence.any_of
    if any_of and not any(present[k] for k in any_of):
        missing.append(" or ".join(_EVIDENCE_NAMES[k] for k in any_of))
    if missing:
        raise RuleViolation(
            f"A {claim.category} claim needs {'; '.join(missing)} as evidence.",
            code="evidence_required",
            missing=missing,
        )


def _check_leave(claim: ClaimInput, category: CategoryRules) -> None:
    kinds = category.leave_kinds
    if kinds is None:
        if claim.leave_kind is not None:
            raise RuleViolation(
                f"A {claim.category} claim names no leave_kind.", code="invalid_leave_kind"
            )
        return
    kind = kinds.get(claim.leave_kind or "")
    if kind is None:
        known = ", ".join(f"{k} ({v.label})" for k, v in kinds.items())
        raise RuleViolation(
            f"A {claim.category} claim names its leave_kind, one of: {known} "
            f"(got {claim.leave_kind!r}).",
            code="invalid_leave_kind",
            allowed=list(kinds),
        )
    months = claim.months
    minimum = kind.more_than_months
    if minimum is not None and isinstance(months, int) and months <= minimum:
        raise RuleViolation(
            f"{kind.label} counts only when it lasted more than {minimum} months of the year "
            f"(got {months}).",
            code="leave_too_short",
            leave_kind=claim.leave_kind,
            more_than_months=minimum,
        )
    if kind.reason_required and not (claim.leave_reason and claim.leave_reason.strip()):
        raise RuleViolation(
            f"{kind.label}: give the reason and the recognising department in leave_reason, "
            "for the reviewers.",
            code="leave_reason_required",
        )


def _check_certified_subject(
    claim: ClaimInput, category: CategoryRules, requested: tuple[Credit, ...]
) -> None:
    for credit in requested:
        if credit.subject in category.certified_subjects and (
            claim.certified_subject != credit.subject
        ):
            raise RuleViolation(
                f"A {claim.category} counts as {credit.subject} hours only when its "
                f"e-certificate or filed project says so: cite a verified {credit.subject} "
                "certificate (certificate_code) or a city-filed project of that subject "
                "(project_id), or claim the hours as professional.",
                code=f"{credit.subject}_subject_unverified",
                subject=credit.subject,
            )


def _check_dates(ruleset: RuleSet, claim: ClaimInput) -> None:
    start, end = claim.start_date, claim.end_date
    if start and end and end < start:
        raise RuleViolation(
            f"The end date {end} is before the start date {start}.", code="invalid_dates"
        )
    for day in (start, end):
        if day is not None and day.year != ruleset.year:
            raise RuleViolation(
                f"The date {day} is outside {ruleset.year}: a claim for {ruleset.year} covers "
                f"only activity within {ruleset.year}.",
                code="invalid_dates",
            )


def _check_not_future(ruleset: RuleSet, claim: ClaimInput, now: datetime) -> None:
    today = now.astimezone(ruleset.claim_window.closes.tzinfo).date()
    for day in (claim.start_date, claim.end_date):
        if day is not None and day > today:
            raise RuleViolation(
                f"The date {day} is in the future: hours can be claimed only for activity "
                "that has already taken place.",
                code="invalid_dates",
            )


def _parse_hours(value: HoursLike | None, what: str = "hours") -> Decimal:
    if value is None:
        raise RuleViolation(f"The {what} are missing.", code="invalid_hours")
    try:
        hours = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        hours = Decimal("NaN")
    if isinstance(value, bool) or not hours.is_finite() or hours <= 0:
        raise RuleViolation(
            f"The {what} must be a positive number (got {value}).", code="invalid_hours"
        )
    if hours > MAX_CLAIM_HOURS:
        raise RuleViolation(
            f"The {what} must be at most {MAX_CLAIM_HOURS} (got {value}).",
            code="invalid_hours",
            max_hours=float(MAX_CLAIM_HOURS),
        )
    if hours != hours.quantize(ONE_PLACE):
        raise RuleViolation(
            f"The {what} may have at most one decimal place (got {value}).", code="invalid_hours"
        )
    return hours.quantize(ONE_PLACE)


def _optional_hours(value: HoursLike | None, what: str) -> Decimal | None:
    return None if value is None else _parse_hours(value, what)


def _subject(claim: ClaimInput, category: CategoryRules) -> Subject:
    named = claim.subject or claim.certified_subject or category.default_subject
    certified = claim.certified_subject
    if certified and named != certified:
        raise RuleViolation(
            f"The certificate or filed project is for {certified} hours, so the claim cannot be "
            f"for {named} hours.",
            code="invalid_subject",
        )
    return _allowed_subject(named, category, claim.category)


def _allowed_subject(named: str | None, category: CategoryRules, name: str) -> Subject:
    for subject in category.allowed_subjects:
        if subject == named:
            return subject
    allowed = " or ".join(category.allowed_subjects)
    raise RuleViolation(
        f"A {name} claim credits {allowed} hours, not '{named}'.",
        code="invalid_subject",
        allowed=list(category.allowed_subjects),
    )


def _no_subject(claim: ClaimInput, what: str) -> None:
    if claim.subject is not None:
        raise RuleViolation(
            f"A {claim.category} claim names no subject: {what}.", code="invalid_subject"
        )


# --- the hours rules ------------------------------------------------------------------------


def _requested_credits(
    ruleset: RuleSet, claim: ClaimInput, category: CategoryRules
) -> tuple[tuple[Credit, ...], list[str]]:
    """The credits a claim asks for under its category's hours rule, before any cap."""
    _check_dates(ruleset, claim)
    rule = category.rule
    if claim.travel_days is not None and not (
        isinstance(rule, DailyCappedRule) and rule.travel_days
    ):
        raise RuleViolation(
            f"A {claim.category} claim names no travel_days (travel and rest days are deducted "
            "from invited expert activities only).",
            code="invalid_travel_days",
        )
    if isinstance(rule, DailyCappedRule):
        return _daily_capped(claim, category, rule), []
    if isinstance(rule, AsRecordedRule):
        return (Credit(_subject(claim, category), _parse_hours(claim.hours)),), []
    if isinstance(rule, FixedPerItemRule):
        return _fixed_per_item(claim, category, rule), []
    if isinstance(rule, CardHoursRule):
        return _card_hours(claim, category)
    if isinstance(rule, FullYearProratedRule):
        return _prorated(claim, rule), []
    return _certified_per_subject(ruleset, claim, category), []


def _daily_capped(
    claim: ClaimInput, category: CategoryRules, rule: DailyCappedRule
) -> tuple[Credit, ...]:
    if claim.start_date is None or claim.end_date is None:
        raise RuleViolation(
            f"A {claim.category} claim needs its start and end dates: it counts at most "
            f"{fmt_hours(rule.max_hours_per_day)} hours a day.",
            code="invalid_dates",
        )
    certified = _optional_hours(claim.certificate_hours, "certificate hours")
    hours = _parse_hours(claim.hours if claim.hours is not None else certified)
    if certified is not None and hours > certified:
        raise RuleViolation(
            f"The certificate records {fmt_hours(certified)} hours; a claim cannot ask "
            f"for more ({fmt_hours(hours)}).",
            code="hours_mismatch",
            certificate_hours=float(certified),
        )
    days = (claim.end_date - claim.start_date).days + 1
    travel = claim.travel_days or 0
    if isinstance(travel, bool) or not isinstance(travel, int) or not 0 <= travel < days:
        raise RuleViolation(
            f"travel_days counts the travel and rest days within the {days} day(s) of the "
            f"activity: 0 to {days - 1} (got {claim.travel_days}).",
            code="invalid_travel_days",
            days=days,
        )
    max_hours = rule.max_hours_per_day * (days - travel)
    if hours > max_hours:
        travel_text = f" less {travel} travel and rest day(s)" if travel else ""
        raise RuleViolation(
            f"At most {fmt_hours(rule.max_hours_per_day)} hours a day count: {days} day(s)"
            f"{travel_text} allow at most {fmt_hours(max_hours)} hours, not {fmt_hours(hours)}.",
            code="daily_cap_exceeded",
            max_hours=float(max_hours),
            days=days,
            travel_days=travel,
        )
    return (Credit(_subject(claim, category), hours),)


def _fixed_per_item(
    claim: ClaimInput, category: CategoryRules, rule: FixedPerItemRule
) -> tuple[Credit, ...]:
    if claim.hours is not None and _parse_hours(claim.hours) != rule.hours_per_item:
        raise RuleViolation(
            f"Each {rule.item} counts {fmt_hours(rule.hours_per_item)} hours; claim one "
            f"{rule.item} per claim (got {claim.hours} hours).",
            code="invalid_hours",
        )
    return (Credit(_subject(claim, category), rule.hours_per_item),)


def _card_hours(claim: ClaimInput, category: CategoryRules) -> tuple[tuple[Credit, ...], list[str]]:
    card = _optional_hours(claim.card_hours, "card hours")
    subject = _subject(claim, category)
    if card is None:
        hours = _parse_hours(claim.hours)
        note = (
            f"Exam card {claim.exam_card_no} is not verified yet; the credit will be the "
            "hours on the card issued by the city exam centre."
        )
        return (Credit(subject, hours),), [note]
    if claim.hours is not None and _parse_hours(claim.hours) != card:
        raise RuleViolation(
            f"Exam card {claim.exam_card_no} records {fmt_hours(card)} hours; exam-staff "
            f"work counts the hours on the card, not {claim.hours}.",
            code="hours_mismatch",
            card_hours=float(card),
        )
    return (Credit(subject, card),), []


def _prorated(claim: ClaimInput, rule: FullYearProratedRule) -> tuple[Credit, ...]:
    split = ", ".join(f"{h} {s}" for s, h in rule.full_year.items())
    _no_subject(claim, f"it credits {split} hours per full year")
    _check_months_range(claim, rule)
    months = claim.months
    assert months is not None
    credits = rule.credits_for(months)
    if claim.hours is not None and _parse_hours(claim.hours) != _total(credits):
        raise RuleViolation(
            f"{months} month(s) count {_total(credits)} hours ({split} per full year × "
            f"{months}/{rule.months_per_year}), not {claim.hours}.",
            code="invalid_hours",
        )
    return credits


def _check_months_range(claim: ClaimInput, rule: FullYearProratedRule) -> None:
    months = claim.months
    if (
        isinstance(months, bool)
        or not isinstance(months, int)
        or not 1 <= months <= rule.max_months
    ):
        raise RuleViolation(
            f"A {claim.category} claim gives the whole months concerned in the year, "
            f"1 to {rule.max_months} (got {months}).",
            code="invalid_months",
        )


def _certified_per_subject(
    ruleset: RuleSet, claim: ClaimInput, category: CategoryRules
) -> tuple[Credit, ...]:
    _no_subject(claim, "list the certified hours per subject in credits")
    if not claim.credits:
        raise RuleViolation(
            f"A {claim.category} claim lists the hours per subject of the previous "
            "locality's certificate in credits.",
            code="invalid_hours",
        )
    credits: dict[Subject, Decimal] = {}
    for named, hours in claim.credits:
        subject = _allowed_subject(named, category, claim.category)
        if subject in credits:
            raise RuleViolation(
                f"List each subject once in credits ('{subject}' appears twice).",
                code="invalid_subject",
            )
        credits[subject] = _parse_hours(hours, f"{subject} hours")
    if claim.transfer_date is not None:
        _check_transfer_hours(ruleset, claim.transfer_date, _total_hours(credits.values()))
    return tuple(Credit(s, h) for s, h in credits.items())


def _total_hours(hours: Iterable[Decimal]) -> Decimal:
    return sum(hours, ZERO)


def _check_transfer_hours(ruleset: RuleSet, transfer_date: date, hours: Decimal) -> None:
    """四(三): hours earned elsewhere before the transfer are at most the per-working-day bound
    × the working days of the year before the transfer date."""
    per_day = ruleset.transfer_in_plausibility.max_hours_per_working_day
    first = date(ruleset.year, 1, 1)
    working = working_days_after(first - timedelta(days=1), transfer_date - timedelta(days=1))
    max_hours = per_day * working
    if hours > max_hours:
        raise RuleViolation(
            f"Before the transfer on {transfer_date} the year had {working} working day(s): "
            f"at most {fmt_hours(per_day)} hours each, {fmt_hours(max_hours)} in all, can have "
            f"been earned elsewhere, not {fmt_hours(hours)}.",
            code="transfer_hours_implausible",
            max_hours=float(max_hours),
            working_days=working,
        )


def _check_transfer(
    ruleset: RuleSet, claim: ClaimInput, category: CategoryRules, now: datetime
) -> None:
    """A transfer-in claim names the transfer date and the authority that issued the previous
    locality's certificate (四(三) 「调出地继续教育管理部门出具的继续教育学时证明」)."""
    given = claim.transfer_date is not None or claim.issuing_authority is not None
    if not isinstance(category.rule, CertifiedPerSubjectRule):
        if given:
            raise RuleViolation(
                f"A {claim.category} claim names no transfer_date or issuing_authority.",
                code="invalid_transfer_details",
            )
        return
    missing = [
        name
        for name, value in (
            ("transfer_date", claim.transfer_date),
            ("issuing_authority", (claim.issuing_authority or "").strip() or None),
        )
        if value is None
    ]
    if missing:
        raise RuleViolation(
            f"A {claim.category} claim names the date of the transfer (transfer_date) and the "
            "continuing-education authority of the previous locality that issued the "
            f"certificate (issuing_authority); missing: {', '.join(missing)}.",
            code="transfer_details_required",
            missing=missing,
        )
    day = claim.transfer_date
    assert day is not None
    today = now.astimezone(ruleset.claim_window.closes.tzinfo).date()
    if day.year != ruleset.year or day > today:
        raise RuleViolation(
            f"The transfer date {day} lies in {ruleset.year} and not after today: hours of "
            f"another locality are merged into the year of the transfer.",
            code="invalid_transfer_details",
        )


# --- caps -----------------------------------------------------------------------------------


def _cap_used(ruleset: RuleSet, cap_group: str, credited: CreditedSoFar) -> Decimal:
    measure = ruleset.cap_groups[cap_group].measure
    used = ZERO
    for name in ruleset.categories_in(cap_group):
        if measure == "claims":
            used += credited.claims.get(name, 0)
            continue
        hours = credited.category_hours(name)
        rule = ruleset.categories[name].rule
        if measure == "months" and isinstance(rule, FullYearProratedRule):
            hours = hours * rule.months_per_year / rule.full_year_total
        used += hours
    return used


def _apply_cap(
    ruleset: RuleSet,
    category: CategoryRules,
    requested: tuple[Credit, ...],
    credited: CreditedSoFar,
) -> tuple[tuple[Credit, ...], list[str]]:
    """Cut the requested credits to what remains under the category's cap group."""
    if category.cap_group is None:
        return requested, []
    group = ruleset.cap_groups[category.cap_group]
    used = _cap_used(ruleset, category.cap_group, credited)
    remaining = max(group.limit - used, ZERO)
    if group.measure == "hours":
        return _cut_hours(group, requested, used, remaining)
    if group.measure == "months":
        assert isinstance(category.rule, FullYearProratedRule)
        return _cut_months(group, category.rule, requested, used, remaining)
    return (requested if remaining >= 1 else _zeroed(requested)), []


def _cut_hours(
    group: CapGroup, requested: tuple[Credit, ...], used: Decimal, remaining: Decimal
) -> tuple[tuple[Credit, ...], list[str]]:
    wanted = _total(requested)
    if wanted <= remaining or remaining <= 0:
        return (requested if remaining > 0 else _zeroed(requested)), []
    left = remaining
    credits = []
    for credit in requested:
        hours = min(credit.hours, left)
        credits.append(Credit(credit.subject, hours))
        left -= hours
    note = (
        f"Only {fmt_hours(remaining)} of {fmt_hours(wanted)} hours can still count under the "
        f"{fmt_hours(group.limit)}-hour yearly cap on {group.label} "
        f"({fmt_hours(used)} already credited)."
    )
    return tuple(credits), [note]


def _cut_months(
    group: CapGroup,
    rule: FullYearProratedRule,
    requested: tuple[Credit, ...],
    used: Decimal,
    remaining: Decimal,
) -> tuple[tuple[Credit, ...], list[str]]:
    months = int(_total(requested) * rule.months_per_year / rule.full_year_total)
    left = int(remaining)
    if months <= left:
        return requested, []
    if left <= 0:
        return _zeroed(requested), []
    note = (
        f"Only {left} of {months} months can still count under the yearly cap on "
        f"{group.label} ({fmt_hours(group.limit)} months; {fmt_hours(used)} already credited)."
    )
    return rule.credits_for(left), [note]


def book_in_order(
    ruleset: RuleSet, credited: CreditedSoFar, pending: Iterable[PendingClaim]
) -> tuple[CreditedSoFar, list[tuple[PendingClaim, tuple[Credit, ...]]]]:
    """The ledger if the claims were approved in this order, each cut by the caps as at
    approval, and what each of them would credit."""
    booked = []
    for claim in pending:
        category = ruleset.category(claim.category)
        credits, _ = _apply_cap(ruleset, category, claim.credits, credited)
        credited = credited.plus(claim.category, credits)
        booked.append((claim, credits))
    return credited, booked


_UNITS = {"hours": "h", "months": "month(s)", "claims": "claim(s)"}


def cap_sharing_categories(ruleset: RuleSet, category_name: str) -> list[str]:
    """The categories whose claims in review can use up the yearly cap of ``category_name``
    (itself included): the pending claims :func:`pending_cap_notes` looks at. None for an
    uncapped or unknown category."""
    category = ruleset.categories.get(category_name)
    if category is None or category.cap_group is None:
        return []
    return ruleset.categories_in(category.cap_group)


def pending_cap_notes(
    ruleset: RuleSet,
    category_name: str,
    credits: tuple[Credit, ...],
    credited: CreditedSoFar,
    pending: Sequence[PendingClaim],
) -> list[str]:
    """A warning when claims in review of the same cap group, approved first, would leave this
    claim less than its expected credits (caps are booked in approval order)."""
    category = ruleset.category(category_name)
    sharing = cap_sharing_categories(ruleset, category_name)
    same = [p for p in pending if p.category in sharing]
    group_name = category.cap_group
    if group_name is None or not same:
        return []
    after, booked = book_in_order(ruleset, credited, same)
    left, _ = _apply_cap(ruleset, category, credits, after)
    wanted, could = _total(credits), _total(left)
    if could >= wanted:
        return []
    group = ruleset.cap_groups[group_name]
    unit = _UNITS[group.measure]
    room = cap_remaining(ruleset, group_name, after)
    named = "; ".join(
        f"「{p.title}」 ({fmt_hours(_total(c))} h, claim {p.claim_id})" for p, c in booked
    )
    return [
        f"Claims still in review also count under the {fmt_hours(group.limit)} {unit} yearly "
        f"cap on {group.label}: {named}. If they are approved first, only "
        f"{fmt_hours(could)} of this claim's {fmt_hours(wanted)} hours can count "
        f"({fmt_hours(room)} {unit} of room left after them); caps are booked in approval order."
    ]


def _cap_reached(ruleset: RuleSet, category: CategoryRules, credited: CreditedSoFar) -> Exception:
    name = category.cap_group or ""
    group = ruleset.cap_groups[name]
    used = _cap_used(ruleset, name, credited)
    unit = {"hours": "hours", "months": "months", "claims": "claim(s)"}[group.measure]
    return RuleViolation(
        f"The yearly cap on {group.label} is reached: {fmt_hours(used)} of "
        f"{fmt_hours(group.limit)} {unit} a year are already credited, so this claim can add "
        "nothing.",
        code="yearly_cap_reached",
        cap=name,
        limit=float(group.limit),
        used=float(used),
    )


def _requirement_notes(
    ruleset: RuleSet, credits: tuple[Credit, ...], credited: CreditedSoFar
) -> list[str]:
    notes = []
    for credit in credits:
        required = ruleset.requirement.for_subject(credit.subject)
        have = credited.subject_hours(credit.subject)
        if credit.hours > 0 and have >= required:
            notes.append(
                f"The {credit.subject} requirement of {fmt_hours(required)} hours is already met "
                f"({fmt_hours(have)} credited); more {credit.subject} hours do not make up for "
                "missing hours of the other subject."
            )
    return notes


def _total(credits: Iterable[Credit]) -> Decimal:
    return sum((c.hours for c in credits), ZERO)


def _zeroed(credits: tuple[Credit, ...]) -> tuple[Credit, ...]:
    return tuple(Credit(c.subject, ZERO) for c in credits)
