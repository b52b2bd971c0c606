"""The registry's pure rules over the year's shared rule data."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from libs.common.clock import BEIJING
from libs.common.errors import RuleViolation
from libs.common.idnumber import check_character
from libs.common.rulesets import load_shared_rules
from services.registry import rules

RULES = load_shared_rules(2026)
PLAN = rules.ProjectPlan(
    year=2026,
    start_date=date(2026, 11, 2),
    end_date=date(2026, 11, 3),
    days=2,
    planned_hours=Decimal(16),
    planned_participants=50,
    contact_phone="13812345678",
    kind="training",
    level=None,
)


def refused(plan: rules.ProjectPlan) -> str:
    with pytest.raises(RuleViolation) as exc:
        rules.check_project(RULES, plan)
    return exc.value.code


def test_the_2026_filing_data_is_shared_and_from_the_notice() -> None:
    assert RULES.project_filing.city_direct_unit_deadline == date(2026, 5, 20)
    assert RULES.project_filing.max_planned_hours_per_day == 8
    with pytest.raises(RuleViolation) as exc:
        load_shared_rules(2031)
    assert exc.value.code == "unknown_rule_year"


@pytest.mark.parametrize(
    ("at", "late"),
    [
        (datetime(2026, 5, 19, 23, 59, 59, tzinfo=BEIJING), False),
        (datetime(2026, 5, 20, 0, 0, 0, tzinfo=BEIJING), False),
        (datetime(2026, 5, 20, 23, 59, 59, tzinfo=BEIJING), False),
        (datetime(2026, 5, 21, 0, 0, 0, tzinfo=BEIJING), True),
        (datetime(2026, 5, 21, 23, 59, 59, tzinfo=BEIJING), True),
        # 20 May 16:00 UTC is 21 May 00:00 in Beijing: late, whatever the server's zone
        (datetime(2026, 5, 20, 15, 59, 59, tzinfo=UTC), False),
        (datetime(2026, 5, 20, 16, 0, 0, tzinfo=UTC), True),
    ],
)
def test_the_city_direct_deadline_is_the_end_of_20_may_beijing(at: datetime, late: bool) -> None:
    if late:
        with pytest.raises(RuleViolation) as exc:
            rules.check_filing_deadline(RULES, city_direct=True, at=at)
        assert exc.value.code == "filing_deadline_passed"
    else:
        rules.check_filing_deadline(RULES, city_direct=True, at=at)
    # providers, departments, district bureaus and district units have no deadline
    rules.check_filing_deadline(RULES, city_direct=False, at=at)


def test_city_direct_means_a_department_or_a_unit_under_one() -> None:
    assert rules.is_city_direct("unit", "department")
    assert rules.is_city_direct("department", "city")  # a department's own filings too
    assert rules.is_city_direct("department", None)
    assert not rules.is_city_direct("unit", "district")
    assert not rules.is_city_direct("district", "city")
    assert not rules.is_city_direct("provider", "city")


def test_a_valid_plan_passes() -> None:
    rules.check_project(RULES, PLAN)
    rules.check_project(RULES, replace(PLAN, planned_hours=Decimal("15.5")))
    rules.check_project(RULES, replace(PLAN, kind="digital_manager", level="intermediate"))
    rules.check_project(RULES, replace(PLAN, subject="public"))  # a 公需 course


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"planned_hours": Decimal("16.1")}, "daily_cap_exceeded"),
        (
            {"days": 1, "end_date": date(2026, 11, 2), "planned_hours": Decimal(9)},
            "daily_cap_exceeded",
        ),
        ({"days": 3}, "days_mismatch"),
        ({"days": 0}, "days_mismatch"),
        ({"days": -1}, "days_mismatch"),
        ({"start_date": date(2025, 12, 31), "days": 308}, "date_outside_year"),
        ({"end_date": date(2027, 1, 1), "days": 61}, "date_outside_year"),
        ({"end_date": date(2026, 11, 1)}, "invalid_date_range"),
        ({"planned_participants": 0}, "invalid_planned_participants"),
        ({"planned_participants": -5}, "invalid_planned_participants"),
        ({"planned_hours": Decimal("7.25")}, "invalid_hours"),
        ({"planned_hours": Decimal(0)}, "invalid_hours"),
        ({"contact_phone": "12345678901"}, "invalid_phone"),
        ({"contact_phone": "1381234567"}, "invalid_phone"),
        ({"contact_phone": "phone me"}, "invalid_phone"),
        ({"level": "junior"}, "invalid_project_level"),
        ({"kind": "digital_manager"}, "invalid_project_level"),
        ({"kind": "digital_manager", "level": "senior"}, "invalid_project_level"),
        (
            {"kind": "digital_manager", "level": "junior", "subject": "public"},
            "invalid_project_subject",
        ),
    ],
)
def test_a_broken_rule_is_named(changes: dict[str, object], code: str) -> None:
    assert refused(replace(PLAN, **changes)) == code  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "phone",
    [
        "13812345678",
        "138 1234 5678",
        "+86 139-1234-5678",
        "0632-3786666",
        "063233786666",
        "010-12345678转123",
    ],
)
def test_mainland_phone_formats(phone: str) -> None:
    rules.check_phone(phone)


def test_certificate_codes_carry_80_random_bits() -> None:
    codes = [rules.new_code("ZZCE2026") for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    body = [c.removeprefix("ZZCE2026-").replace("-", "") for c in codes]
    assert all(len(b) == 16 for b in body)  # 16 base32 characters = 80 bits
    # every position uses the whole alphabet about evenly: no counter, no fixed part
    for position in (0, 7, 15):
        counts = Counter(b[position] for b in body)
        assert len(counts) == 32
    # the code is the random value itself: two draws that differ in one bit differ in the code
    assert rules.new_code("X", random=lambda bits: 0) == "X-0000-0000-0000-0000"
    assert rules.new_code("X", random=lambda bits: 2**bits - 1) == "X-ZZZZ-ZZZZ-ZZZZ-ZZZZ"
    assert math.log2(32**16) == 80


def test_completion_rows_are_checked_one_by_one() -> None:
    good, other = (n + check_character(n) for n in ("37040219800101001", "37040219800101002"))
    seen: set[str] = set()

    def check(id_number: str, hours: object) -> rules.CompletionRow | rules.RowProblem:
        return rules.check_completion_row(
            id_number,
            "张三",
            hours,
            True,
            planned_hours=Decimal(16),
            seen=seen,
            today=date(2026, 11, 26),
        )

    ok = check(good, "16")
    assert isinstance(ok, rules.CompletionRow) and ok.hours == 16
    outcomes = [
        check(good, 8),
        check(good[:17] + ("0" if good[-1] != "0" else "1"), 8),
        check(other, "16.5"),
        check(other, "十六"),
        check(other, "7.25"),
    ]
    assert [o.code for o in outcomes if isinstance(o, rules.RowProblem)] == [
        "duplicate_person",
        "invalid_id_number",
        "hours_above_planned",
        "invalid_hours",
        "invalid_hours",
    ]
