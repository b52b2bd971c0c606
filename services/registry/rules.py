"""The registry's rules (附件2 and DOMAIN.md "Training-project registry") as pure functions over
the year's shared rule data (``libs/common/rulesets``). No I/O, no database, no web framework.

Interpretations:

- ``days`` (training days) is at least 1 and at most the inclusive span ``start_date..end_date``
  (a one-day course is 1 day; four Saturdays in a month are 4 days), and both dates lie in the
  filing's year.
- A phone is a mainland mobile number (11 digits starting 13-19) or a landline with its area
  code (``0632-1234567``, extension optional); spaces and hyphens are allowed between groups.
- 「市直单位自主开展的专业培训项目计划」 (七): a city-direct filer is a ``department``
  (市直主管部门) or a ``unit`` whose parent is a ``department``; only their *own* projects have
  the filing deadline. Providers, district bureaus and units under a district have none.
- A completion row passes only with hours > 0 and at most the project's planned hours; one person
  appears once per roster (a second row for the same ID number is reported, not merged).
- Certificate codes carry 80 bits from the operating system's CSPRNG, in Crockford base32.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Literal

from libs.common.clock import BEIJING
from libs.common.errors import RuleViolation
from libs.common.idnumber import validate_id_number
from libs.common.rulesets import SharedRuleSet

ProjectKind = Literal["training", "digital_manager"]
LEVELS: dict[str, tuple[str, ...]] = {
    "training": (),
    "digital_manager": ("junior", "intermediate"),  # 数字化管理师 初级 / 中级
}
KIND_LABELS = {"training": "专业技术人员继续教育培训", "digital_manager": "数字化管理师"}
LEVEL_LABELS = {"junior": "初级", "intermediate": "中级"}
# the subjects a project's certificates may count for (DOMAIN.md: trainings are professional,
# a training can be public when so certified; 数字化管理师 counts as professional hours)
SUBJECTS: dict[str, tuple[str, ...]] = {
    "training": ("professional", "public"),
    "digital_manager": ("professional",),
}

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_LANDLINE = re.compile(r"^0\d{2,3}\d{7,8}(ext\d{1,6})?$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


@dataclass(frozen=True)
class ProjectPlan:
    """The checkable part of a filing."""

    year: int
    start_date: date
    end_date: date
    days: int
    planned_hours: Decimal
    planned_participants: int
    contact_phone: str
    kind: str
    level: str | None
    subject: str = "professional"


def check_project(rules: SharedRuleSet, plan: ProjectPlan) -> None:
    """Refuse a filing that breaks a rule of 附件2; the first broken rule names the error."""
    if plan.kind not in LEVELS:
        raise RuleViolation(
            f"kind must be one of {', '.join(LEVELS)}, not {plan.kind}", code="invalid_project_kind"
        )
    levels = LEVELS[plan.kind]
    if (plan.level is None) != (not levels) or (
        plan.level is not None and plan.level not in levels
    ):
        wanted = f"one of {', '.join(levels)}" if levels else "no level"
        raise RuleViolation(
            f"a {plan.kind} project carries {wanted}, not {plan.level}",
            code="invalid_project_level",
        )
    if plan.subject not in SUBJECTS[plan.kind]:
        raise RuleViolation(
            f"a {plan.kind} project's certificates count for {' or '.join(SUBJECTS[plan.kind])} "
            f"hours, not {plan.subject}",
            code="invalid_project_subject",
        )
    for day in (plan.start_date, plan.end_date):
        if day.year != plan.year:
            raise RuleViolation(
                f"the date {day} is outside {plan.year}: a filing covers training within its year",
                code="date_outside_year",
            )
    if plan.end_date < plan.start_date:
        raise RuleViolation(
            f"end_date {plan.end_date} is before start_date {plan.start_date}",
            code="invalid_date_range",
        )
    span = (plan.end_date - plan.start_date).days + 1
    if not 1 <= plan.days <= span:
        # a course on non-consecutive days (four Saturdays) has fewer days than its span
        raise RuleViolation(
            f"days is {plan.days} but {plan.start_date}..{plan.end_date} spans {span} days: "
            f"a filing has 1 to {span} training days",
            code="days_mismatch",
            max_days=span,
        )
    check_hours(plan.planned_hours, "planned_hours")
    per_day = rules.project_filing.max_planned_hours_per_day
    if plan.planned_hours > per_day * plan.days:
        raise RuleViolation(
            f"planned_hours {plan.planned_hours} exceed {per_day} hours a day over {plan.days} "
            f"days; at most {per_day * plan.days}",
            code="daily_cap_exceeded",
            max_hours=per_day * plan.days,
        )
    if plan.planned_participants <= 0:
        raise RuleViolation(
            "planned_participants must be a positive number of trainees",
            code="invalid_planned_participants",
        )
    check_phone(plan.contact_phone)


# more hours than any training or exam is: a typo or an attack (and past 28 digits Decimal
# cannot round it to one place)
MAX_HOURS = Decimal(10_000)


def check_hours(value: Decimal, field: str) -> None:
    """Hours are finite, positive, at most :data:`MAX_HOURS`, with at most one decimal."""
    if not value.is_finite() or value <= 0 or value > MAX_HOURS:
        raise RuleViolation(
            f"{field} must be a positive number of hours up to {MAX_HOURS}, not {value}",
            code="invalid_hours",
            max_hours=float(MAX_HOURS),
        )
    if value != value.quantize(Decimal("0.1")):
        raise RuleViolation(
            f"{field} must be a positive number of hours with at most one decimal, not {value}",
            code="invalid_hours",
        )


def check_phone(phone: str) -> str:
    """A mainland mobile or landline number, or ``invalid_phone``; returns it compacted."""
    compact = re.sub(r"[\s-]", "", phone).replace("转", "ext")
    if compact.startswith("+86"):
        compact = compact[3:]
    if not (_MOBILE.match(compact) or _LANDLINE.match(compact)):
        raise RuleViolation(
            f"{phone!r} is not a mainland phone number (a mobile like 13812345678 or a landline "
            "with area code like 0632-1234567)",
            code="invalid_phone",
        )
    return compact


def is_city_direct(org_type: str, parent_type: str | None) -> bool:
    """市直单位 (七): a city-level competent department itself, or a unit under one."""
    return org_type == "department" or (org_type == "unit" and parent_type == "department")


def check_filing_deadline(rules: SharedRuleSet, *, city_direct: bool, at: datetime) -> None:
    """A city-direct filer's (a department's or its unit's) own project is submitted by the
    deadline day, Beijing time."""
    if not city_direct:
        return
    deadline = rules.project_filing.city_direct_unit_deadline
    if at.astimezone(BEIJING).date() > deadline:
        raise RuleViolation(
            f"a city-direct department or unit files its own {rules.year} projects by {deadline} "
            "(Beijing "
            "time); this filing is late",
            code="filing_deadline_passed",
            deadline=deadline.isoformat(),
        )


# --- completions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CompletionRow:
    id_number: str
    name: str
    hours: Decimal
    passed: bool


@dataclass(frozen=True)
class RowProblem:
    code: str
    detail: str


def check_completion_row(
    raw_id_number: str,
    name: str,
    raw_hours: object,
    passed: bool,
    *,
    planned_hours: Decimal,
    seen: set[str],
    today: date,
) -> CompletionRow | RowProblem:
    """One roster row: a valid GB 11643 number, a name, 0 < hours ≤ planned hours, a person
    not already on this upload. ``seen`` collects the numbers of accepted rows."""
    try:
        id_number = validate_id_number(str(raw_id_number), today=today)
    except RuleViolation as exc:
        return RowProblem(exc.code, exc.detail)
    if not name.strip():
        return RowProblem("name_required", "the trainee's name is missing")
    try:
        hours = Decimal(str(raw_hours).strip())
        check_hours(hours, "hours")
    except (InvalidOperation, ValueError):
        return RowProblem("invalid_hours", f"hours {raw_hours!r} is not a number")
    except RuleViolation as exc:
        return RowProblem(exc.code, exc.detail)
    if hours > planned_hours:
        return RowProblem(
            "hours_above_planned",
            f"hours {hours} exceed the project's planned {planned_hours} hours",
        )
    if id_number in seen:
        return RowProblem("duplicate_person", "this person appears on an earlier row")
    seen.add(id_number)
    return CompletionRow(id_number, name.strip(), hours, passed)


def new_code(prefix: str, *, bits: int = 80, random: Callable[[int], int] | None = None) -> str:
    """``PREFIX-XXXX-XXXX-XXXX-XXXX``: ``bits`` random bits in Crockford base32 (no I, L, O, U),
    upper-case, so codes read aloud and typed by hand survive claims' normalisation."""
    value = (random or secrets.randbits)(bits)
    chars = "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(-(-bits // 5)))
    groups = [chars[i : i + 4] for i in range(0, len(chars), 4)]
    return "-".join([prefix, *groups])


def normalise_code(value: str) -> str:
    """Codes compare case- and space-insensitively (the same rule as claims' replicas)."""
    return "".join(value.split()).upper()
