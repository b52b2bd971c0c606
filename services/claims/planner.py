"""The what-if planner (``GET /v1/persons/{id}/plan``): what a person still needs in a year, what
can still count, and one way to get there. A pure function of the rule set and the ledger
(:func:`make_plan`); the route only reads the ledger and the claims in review.

Interpretations:

- The plan assumes the claims in review are approved, in the order they were submitted, each
  cut by the caps as at approval (:func:`rules.book_in_order`): ``pending`` is what they would
  credit, and ``still_needed`` (per subject) and a cap group's ``room`` are what is left after
  them. If one is rejected, asking again gives the larger gap.
- Only sources a person can plan are suggested: city-platform courses (市平台, no declaration,
  outside every cap) and the categories whose hours follow from the activity (daily-capped,
  as-recorded, fixed-per-item). Exam-staff cards, aid deployments, special leave and transfers
  are circumstances, not plans; they show in the cap groups but are never suggested.
- A capped category is offered at most its room left: whole items of a fixed-per-item category
  that fit the room entirely (a 10-hour achievement is not offered into 5 hours of room).
- A subject's options are alternatives, each alone at most the hours still needed; ``plan`` is
  one route through them in order: capped categories with room first (hours the person may
  already have, e.g. unit-arranged study), then the city platform for the rest, so following
  it always closes the gap. A subject whose certificate must say so (public training) is
  offered with that condition.
- Days left count Beijing calendar days up to and including the window's last day. Once the
  window has closed (the city platform closes with it: 逾期系统关闭) nothing is suggested.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from libs.common.clock import BEIJING
from services.claims import rules
from services.claims.compliance import SUBJECTS, Standing, hours
from services.claims.views import (
    CapGroupPlan,
    PlanDeadline,
    PlanOption,
    PlanView,
    SubjectPlan,
    Suggestion,
)

ZERO = Decimal(0)
CITY_PLATFORM = "city_platform"
CITY_PLATFORM_LABEL = "city e-learning platform (市平台) courses, no declaration needed"


@dataclass(frozen=True)
class Option:
    """One way to add ``hours`` of ``subject``: ``items`` claims of ``category`` (fixed-per-item
    ones crediting ``per_item`` each), or city-platform courses (``category`` None)."""

    subject: rules.Subject
    category: str | None
    label: str
    hours: Decimal
    items: int = 1
    per_item: Decimal | None = None  # fixed-per-item categories
    max_per_day: Decimal | None = None  # daily-capped categories
    capped: bool = False
    note: str | None = None

    @property
    def days(self) -> int | None:
        return None if self.max_per_day is None else math.ceil(self.hours / self.max_per_day)

    def only(self, needed: Decimal) -> Option:
        """This option as far as ``needed`` hours need it (whole items)."""
        if self.per_item is not None:
            items = min(self.items, math.ceil(needed / self.per_item))
            return replace(self, items=items, hours=self.per_item * items)
        return replace(self, hours=min(self.hours, needed))

    def phrase(self) -> str:
        h = rules.fmt_hours(self.hours)
        if self.category is None:
            return f"{h} h of city-platform courses"
        if self.per_item is not None:
            return f"{self.items} × {self.category} ({rules.fmt_hours(self.per_item)} h each)"
        if self.max_per_day is not None:
            return f"{self.category} of {h} h (≥ {self.days} day(s))"
        return f"{self.category} has {h} h of room" if self.capped else f"{self.category} {h} h"

    def view(self) -> PlanOption:
        return PlanOption(
            source=self.category or CITY_PLATFORM,
            label=self.label,
            hours=hours(self.hours),
            items=self.items if self.category else None,
            days=self.days,
            note=self.note,
        )


@dataclass(frozen=True)
class Plan:
    standing: Standing  # credited now, pending = what the claims in review would add
    still_needed: dict[rules.Subject, Decimal]
    cap_groups: dict[str, CapGroupPlan]
    options: dict[rules.Subject, list[Option]]
    steps: dict[rules.Subject, list[Option]]
    window_closes: date
    days_left: int


def _rooms(
    ruleset: rules.RuleSet, credited: rules.CreditedSoFar, after: rules.CreditedSoFar
) -> dict[str, CapGroupPlan]:
    groups = {}
    for name, group in ruleset.cap_groups.items():
        used = rules.cap_used(ruleset, name, credited)
        pending = rules.cap_used(ruleset, name, after) - used
        groups[name] = CapGroupPlan(
            label=group.label,
            measure=group.measure,
            limit=float(group.limit),
            used=hours(used),
            pending=hours(pending),
            room=hours(rules.cap_remaining(ruleset, name, after)),
        )
    return groups


def _option(
    ruleset: rules.RuleSet,
    name: str,
    category: rules.CategoryRules,
    subject: rules.Subject,
    need: Decimal,
    after: rules.CreditedSoFar,
) -> Option | None:
    """The most of ``need`` that one kind of claim can add, within its cap's room."""
    if subject not in category.allowed_subjects:
        return None
    room = None
    if category.cap_group is not None:
        if ruleset.cap_groups[category.cap_group].measure != "hours":
            return None
        room = rules.cap_remaining(ruleset, category.cap_group, after)
    note = None
    if subject in category.certified_subjects:
        note = f"counts as {subject} only with a {subject} e-certificate of a filed training"
    option = Option(subject, name, category.label, need, capped=room is not None, note=note)
    rule = category.rule
    if isinstance(rule, rules.FixedPerItemRule):
        per = rule.hours_per_item
        items = math.ceil(need / per)
        if room is not None:
            items = min(items, int(room // per))
        if items <= 0:
            return None
        return replace(option, hours=per * items, items=items, per_item=per)
    if isinstance(rule, rules.AsRecordedRule | rules.DailyCappedRule):
        amount = need if room is None else min(need, room)
        if amount <= 0:
            return None
        per_day = rule.max_hours_per_day if isinstance(rule, rules.DailyCappedRule) else None
        return replace(option, hours=amount, max_per_day=per_day)
    return None  # card hours, prorated months, certified transfers: circumstances, not plans


def _options(
    ruleset: rules.RuleSet, subject: rules.Subject, need: Decimal, after: rules.CreditedSoFar
) -> list[Option]:
    capped: list[Option] = []
    uncapped: list[Option] = []
    for name, category in ruleset.categories.items():
        option = _option(ruleset, name, category, subject, need, after)
        if option is not None:
            (capped if category.cap_group else uncapped).append(option)
    city = Option(subject, None, CITY_PLATFORM_LABEL, need)
    return [*capped, city, *uncapped]


def _steps(options: Sequence[Option], need: Decimal) -> list[Option]:
    """One route: the options in order, each as far as it is still needed, until none is."""
    steps, left = [], need
    for option in options:
        if left <= 0:
            break
        step = option.only(left)
        steps.append(step)
        left -= step.hours
    return steps


def make_plan(
    ruleset: rules.RuleSet,
    credited: rules.CreditedSoFar,
    pending: Sequence[rules.PendingClaim],
    *,
    today: date,
) -> Plan:
    """What is credited, pending and missing per subject, the room under each cap, and the
    claims that can still fill each gap (see the module docstring)."""
    after, _ = rules.book_in_order(ruleset, credited, pending)
    standing = Standing.of(
        ruleset.requirement,
        {s: credited.subject_hours(s) for s in SUBJECTS},
        {s: after.subject_hours(s) - credited.subject_hours(s) for s in SUBJECTS},
    )
    still_needed = {
        s: max(ruleset.requirement.for_subject(s) - after.subject_hours(s), ZERO) for s in SUBJECTS
    }
    closes = ruleset.claim_window.closes.astimezone(BEIJING).date()
    days_left = max((closes - today).days + 1, 0)
    options = {
        s: _options(ruleset, s, n, after) for s, n in still_needed.items() if n > 0 and days_left
    }
    return Plan(
        standing=standing,
        still_needed=still_needed,
        cap_groups=_rooms(ruleset, credited, after),
        options=options,
        steps={s: _steps(o, still_needed[s]) for s, o in options.items()},
        window_closes=closes,
        days_left=days_left,
    )


def _summary(subject: str, need: Decimal, options: Sequence[Option]) -> str:
    return f"{subject}: {rules.fmt_hours(need)} h — " + "; or ".join(o.phrase() for o in options)


def plan_view(
    person_id: str,
    ruleset: rules.RuleSet,
    plan: Plan,
    deadline: PlanDeadline | None = None,
) -> PlanView:
    s = plan.standing
    subjects: dict[str, SubjectPlan] = {
        subject: SubjectPlan(
            required=float(ruleset.requirement.for_subject(subject)),
            credited=hours(getattr(s, f"credited_{subject}")),
            pending=hours(getattr(s, f"pending_{subject}")),
            gap=hours(getattr(s, f"gap_{subject}")),
            still_needed=hours(plan.still_needed[subject]),
        )
        for subject in SUBJECTS
    }
    suggestions = [
        Suggestion(
            subject=subject,
            still_needed=hours(plan.still_needed[subject]),
            summary=_summary(subject, plan.still_needed[subject], options),
            options=[o.view() for o in options],
            plan=[o.view() for o in plan.steps[subject]],
        )
        for subject, options in plan.options.items()
    ]
    return PlanView(
        person_id=person_id,
        year=ruleset.year,
        compliant=s.compliant,
        compliant_if_pending_approved=not any(plan.still_needed.values()),
        subjects=subjects,
        cap_groups=plan.cap_groups,
        suggestions=suggestions,
        window_closes=plan.window_closes.isoformat(),
        days_left=plan.days_left,
        title_deadline=deadline,
    )


def deadline_view(
    ruleset: rules.RuleSet,
    application_date: date,
    deadline: date,
    today: date,
    in_time: Mapping[str, Decimal],
    warnings: list[str],
) -> PlanDeadline:
    """What must be done by a title application's deadline: the hours still missing when only
    learning completed and conversions submitted by then count (approved or in review)."""
    missing: dict[str, float] = {
        s: hours(max(ruleset.requirement.for_subject(s) - in_time.get(s, ZERO), ZERO))
        for s in SUBJECTS
    }
    return PlanDeadline(
        application_date=application_date.isoformat(),
        deadline=deadline.isoformat(),
        days_until_deadline=(deadline - today).days,
        still_needed_by_deadline=missing,
        must_do=(
            f"complete the learning and submit the claims for converted hours by "
            f"{deadline.isoformat()} (Beijing): "
            + ", ".join(f"{rules.fmt_hours(Decimal(str(h)))} h {s}" for s, h in missing.items())
            + " still to go"
        ),
        warnings=warnings,
    )
