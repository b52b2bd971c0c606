"""The what-if planner: properties of the pure function over random ledgers (hypothesis), and
GET /v1/persons/{id}/plan through the API of a real claims app (numbers, deadline, scope)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.claims import planner, rules
from services.claims.rules import Credit, CreditedSoFar, PendingClaim
from services.claims.tests.harness import Person, Stack, claims_stack
from tests.support import assert_problem

# the fast tier (`make test-fast`) leaves this module out: CI runs it
pytestmark = pytest.mark.slow

RS = rules.load_ruleset(2026)
D = Decimal
TODAY = date(2026, 12, 20)

tenths = st.integers(1, 400).map(lambda n: D(n) / 10)
months = st.integers(1, 12)


def _prorated(category: str, m: int) -> tuple[Credit, ...]:
    rule = RS.categories[category].rule
    assert isinstance(rule, rules.FullYearProratedRule)
    return rule.credits_for(m)


claims = st.one_of(
    st.builds(lambda h: ("study", (Credit("professional", h),)), tenths),
    st.just(("achievement", (Credit("professional", D(10)),))),
    st.just(("competition", (Credit("professional", D(10)),))),
    st.just(("qualification_exam", (Credit("professional", D(16)),))),
    st.builds(
        lambda s, h: ("training", (Credit(s, h),)),
        st.sampled_from(["public", "professional"]),
        tenths,
    ),
    st.builds(lambda m: ("aid_deployment", _prorated("aid_deployment", m)), months),
    st.builds(lambda m: ("special_leave", _prorated("special_leave", m)), months),
    st.builds(
        lambda p, q: ("transfer_in", (Credit("public", p), Credit("professional", q))),
        tenths,
        tenths,
    ),
)


def as_pending(drawn: list[tuple[str, tuple[Credit, ...]]]) -> list[PendingClaim]:
    return [PendingClaim(f"c{i}", f"claim {i}", c, credits) for i, (c, credits) in enumerate(drawn)]


@st.composite
def ledgers(draw: st.DrawFn) -> tuple[CreditedSoFar, list[PendingClaim]]:
    outside = {
        "public": draw(st.integers(0, 400)) / D(10),
        "professional": draw(st.integers(0, 400)) / D(10),
    }
    approved = as_pending(draw(st.lists(claims, max_size=8)))
    # the approved ones were booked in approval order, caps cutting them
    credited, _ = rules.book_in_order(RS, CreditedSoFar(outside_claims=outside), approved)
    return credited, as_pending(draw(st.lists(claims, max_size=5)))


def follow(
    credited: CreditedSoFar, pending: list[PendingClaim], plan: planner.Plan
) -> tuple[CreditedSoFar, list[tuple[PendingClaim, tuple[Credit, ...]]]]:
    """The ledger after the claims in review are approved and every step of the plan is done:
    city-platform hours as records, each claim of a step approved (cut by caps as at approval)."""
    after, _ = rules.book_in_order(RS, credited, pending)
    outside = dict(after.outside_claims)
    claims_of_steps = []
    for subject, steps in plan.steps.items():
        for step in steps:
            if step.category is None:
                outside[subject] = outside.get(subject, D(0)) + step.hours
                continue
            per = step.per_item if step.per_item is not None else step.hours
            claims_of_steps += [
                PendingClaim("s", step.label, step.category, (Credit(subject, per),))
            ] * step.items
    after = CreditedSoFar(hours=after.hours, claims=after.claims, outside_claims=outside)
    return rules.book_in_order(RS, after, claims_of_steps)


@settings(max_examples=300, deadline=None)
@given(ledgers())
def test_following_the_plan_makes_the_person_compliant_and_no_cap_cuts_it(
    ledger: tuple[CreditedSoFar, list[PendingClaim]],
) -> None:
    credited, pending = ledger
    plan = planner.make_plan(RS, credited, pending, today=TODAY)
    done, booked = follow(credited, pending, plan)
    for subject in rules.SUBJECTS:
        assert done.subject_hours(subject) >= RS.requirement.for_subject(subject), plan
    # every claim the plan suggests is credited in full: it never asks more than a cap allows
    for claim, credits in booked:
        assert credits == claim.credits, (claim, credits)


@settings(max_examples=300, deadline=None)
@given(ledgers())
def test_options_stay_within_the_room_and_the_need(
    ledger: tuple[CreditedSoFar, list[PendingClaim]],
) -> None:
    credited, pending = ledger
    plan = planner.make_plan(RS, credited, pending, today=TODAY)
    after, _ = rules.book_in_order(RS, credited, pending)
    for subject, options in plan.options.items():
        need = plan.still_needed[subject]
        assert need > 0
        assert any(o.category is None and o.hours == need for o in options)  # the city platform
        for option in options:
            group = RS.categories[option.category].cap_group if option.category else None
            if group is not None:
                assert option.hours <= rules.cap_remaining(RS, group, after)
            # never more than needed, but for the last whole item
            per = option.per_item
            assert option.hours <= need or (per is not None and option.hours - per < need)
        assert sum(s.hours for s in plan.steps[subject]) >= need
    # the cap groups add up: used + pending + room = limit
    for name, cap in plan.cap_groups.items():
        limit = RS.cap_groups[name].limit
        assert D(str(cap.used)) + D(str(cap.pending)) <= limit
        assert cap.room == pytest.approx(max(float(limit) - cap.used - cap.pending, 0.0))
    # nothing is suggested to a person who is compliant once the claims in review are approved
    if not any(plan.still_needed.values()):
        assert plan.options == {} and plan.steps == {}


def test_the_issue_example() -> None:
    """public 16 credited, professional 40 (30 of it study): the gaps and the cheapest routes."""
    credited = CreditedSoFar.from_approved(
        [("study", [Credit("professional", D(30))]), ("training", [Credit("professional", D(10))])],
        outside_claims={"public": D(16)},
    )
    plan = planner.make_plan(RS, credited, [], today=TODAY)
    assert plan.still_needed == {"public": D(14), "professional": D(20)}
    view = planner.plan_view("p", RS, plan)
    public, professional = view.suggestions
    assert (public.subject, public.still_needed) == ("public", 14.0)
    assert public.summary == (
        "public: 14 h — 14 h of city-platform courses; or training of 14 h (≥ 2 day(s))"
    )
    assert public.options[1].note is not None and "public e-certificate" in public.options[1].note
    assert [(o.source, o.hours, o.items) for o in professional.plan] == [
        ("study", 10.0, 1),
        ("achievement", 10.0, 1),
    ]
    assert professional.summary.startswith(
        "professional: 20 h — study has 10 h of room; or 2 × achievement (10 h each); "
        "or 2 × competition (10 h each); or 20 h of city-platform courses"
    )
    assert view.cap_groups["study"].room == 10 and view.days_left == 12


def test_nothing_is_suggested_once_the_window_has_closed() -> None:
    plan = planner.make_plan(RS, CreditedSoFar(), [], today=date(2027, 1, 1))
    assert plan.days_left == 0 and plan.options == {} and plan.steps == {}
    assert plan.still_needed == {"public": D(30), "professional": D(60)}
    last_day = planner.make_plan(RS, CreditedSoFar(), [], today=date(2026, 12, 31))
    assert last_day.days_left == 1 and set(last_day.options) == {"public", "professional"}


# --- through the API ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("planner")) as s:
        await s.add_orgs(
            ("tz", "滕州市人社局", "district", None),
            ("hosp", "滕州市中心人民医院", "unit", "tz"),
            ("school", "滕州市第一中学", "unit", "tz"),
        )
        await s.register_labelled("p1", "张三", "hosp", 21)
        await s.register_labelled("p2", "李四", "school", 22)
        await s.credit("p1", "public", "16")
        person = s.persons["p1"]
        me = Person(person, "", s.orgs["hosp"], s.token("personnel", person="p1"))
        evidence = await s.upload(me)
        approved = await s.submit(
            me,
            {"year": 2026, "category": "study", "title": "在职研究生课程", "hours": 30,
             "evidence_ids": [evidence]},
        )  # fmt: skip
        await s.approve(approved)
        await s.submit(
            me,
            {"year": 2026, "category": "study", "title": "单位集中学习", "hours": 6,
             "evidence_ids": [await s.upload(me)]},
        )  # fmt: skip
        yield s


async def get_plan(s: Stack, person: str, headers: dict[str, str], **params: Any) -> Any:
    return await s.http.get(f"/v1/persons/{s.persons[person]}/plan", params=params, headers=headers)


async def test_the_plan_through_the_api(stack: Stack) -> None:
    response = await get_plan(stack, "p1", stack.auth("personnel", person="p1"), year=2026)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subjects"]["public"] == {
        "required": 30.0,
        "credited": 16.0,
        "pending": 0.0,
        "gap": 14.0,
        "still_needed": 14.0,
    }
    professional = body["subjects"]["professional"]
    assert (professional["credited"], professional["pending"], professional["gap"]) == (30, 6, 30)
    assert professional["still_needed"] == 24.0
    assert body["cap_groups"]["study"] == {
        "label": "study (学习类)",
        "measure": "hours",
        "limit": 40.0,
        "used": 30.0,
        "pending": 6.0,
        "room": 4.0,
    }
    [public_plan, professional_plan] = body["suggestions"]
    assert public_plan["subject"] == "public" and public_plan["plan"] == [
        {
            "source": "city_platform",
            "label": "city e-learning platform (市平台) courses, no declaration needed",
            "hours": 14.0,
            "items": None,
            "days": None,
            "note": None,
        }
    ]
    assert professional_plan["still_needed"] == 24.0
    assert [(o["source"], o["hours"], o["items"]) for o in professional_plan["plan"]] == [
        ("study", 4.0, 1),
        ("achievement", 20.0, 2),
    ]
    assert body["days_left"] == 12 and body["window_closes"] == "2026-12-31"
    assert body["compliant"] is False and body["title_deadline"] is None


async def test_the_plan_for_a_title_application(stack: Stack) -> None:
    response = await get_plan(
        stack, "p1", stack.auth("unit_admin", org="hosp"), application_date="2026-12-31"
    )
    deadline = response.json()["title_deadline"]
    assert deadline["deadline"] == "2026-12-24" and deadline["days_until_deadline"] == 4
    assert deadline["still_needed_by_deadline"] == {"public": 14.0, "professional": 24.0}
    assert "by 2026-12-24" in deadline["must_do"]
    bad = await get_plan(stack, "p1", stack.city, application_date="31/12/2026")
    assert_problem(bad, 422, "invalid_date")


async def test_the_plan_is_for_the_person_and_admins_in_scope(stack: Stack) -> None:
    for allowed in (stack.auth("district_admin", org="tz"), stack.city):
        assert (await get_plan(stack, "p1", allowed)).status_code == 200
    for refused in (stack.auth("personnel", person="p2"), stack.auth("unit_admin", org="school")):
        assert_problem(await get_plan(stack, "p1", refused), 404, "person_not_found")
    assert_problem(await get_plan(stack, "p1", stack.city, year=2031), 422, "unknown_rule_year")
