from __future__ import annotations

import calendar
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libs.common.errors import RuleViolation
from services.claims.rules import (
    Assessment,
    ClaimInput,
    Credit,
    CreditedSoFar,
    DatedClaim,
    FullYearProratedRule,
    PendingClaim,
    RuleSet,
    assess,
    cap_remaining,
    cap_sharing_categories,
    credit_on_approval,
    load_ruleset,
    months_of,
    round_hours,
)

BEIJING = timezone(timedelta(hours=8))
# the last evening of the window: a claim of all twelve months (dates required) is not ahead of it
NOW = datetime(2026, 12, 31, 20, 0, tzinfo=BEIJING)
NOTHING = CreditedSoFar()
D = Decimal


@pytest.fixture(scope="module")
def rs() -> RuleSet:
    return load_ruleset(2026)


def claim(category: str, **fields: Any) -> ClaimInput:
    """A claim with the evidence its category needs, unless the test overrides it."""
    evidence: dict[str, Any] = {
        "evidence_count": 1,
        "certificate_code": "ZZ-2026-0001",
        "reference_no": "CN2026100001.X",
        "exam_card_no": "KW-2026-0001",
    }
    if category == "special_leave":  # no minimum months, so every months value is in range
        evidence["leave_kind"] = "maternity"
    if category in ("aid_deployment", "special_leave") and "start_date" not in fields:
        # months are computed from the dates (issue 20): January to the month-th month
        months = fields.get("months")
        last = months if isinstance(months, int) and 1 <= months <= 12 else 3
        evidence["start_date"] = date(2026, 1, 1)
        evidence["end_date"] = date(2026, last, calendar.monthrange(2026, last)[1])
    if category == "transfer_in":
        evidence["transfer_date"] = date(2026, 7, 1)
        evidence["issuing_authority"] = "济南市人力资源和社会保障局"
    return ClaimInput(category=category, **{**evidence, **fields})


def credits(*pairs: tuple[str, str]) -> tuple[Credit, ...]:
    return tuple(Credit(s, D(h)) for s, h in pairs)  # type: ignore[arg-type]


def violation(rs: RuleSet, c: ClaimInput, credited: CreditedSoFar = NOTHING) -> RuleViolation:
    with pytest.raises(RuleViolation) as caught:
        assess(rs, c, credited, now=NOW)
    assert caught.value.status == 422
    assert len(caught.value.detail) > 20  # says the rule in words
    return caught.value


# --- the 2026 data --------------------------------------------------------------------------


def test_2026_numbers_from_the_notice(rs: RuleSet) -> None:
    assert (rs.requirement.public, rs.requirement.professional, rs.requirement.total) == (
        30,
        60,
        90,
    )
    assert rs.claim_window.closes == datetime(2026, 12, 31, 23, 59, 59, tzinfo=BEIJING)
    assert date(2026, 10, 1) in rs.reminder_dates
    assert rs.title_application_working_days == 5
    limits = {name: group.limit for name, group in rs.cap_groups.items()}
    assert limits == {
        "study": 40,
        "achievement": 30,
        "competition": 30,
        "aid_deployment": 12,
        "special_leave": 1,
    }
    assert rs.categories["qualification_exam"].cap_group is None


def test_ruleset_is_cached_and_unknown_years_refused() -> None:
    assert load_ruleset(2026) is load_ruleset(2026)
    with pytest.raises(RuleViolation) as caught:
        load_ruleset(2031)
    assert caught.value.code == "unknown_rule_year"


# --- every category of DOMAIN.md --------------------------------------------------------------

CATEGORY_TABLE = [
    pytest.param(
        claim("training", hours=16, start_date=date(2026, 5, 11), end_date=date(2026, 5, 12)),
        credits(("professional", "16")),
        id="1 training: actual hours, 8/day over 2 days",
    ),
    pytest.param(
        claim(
            "training",
            subject="public",
            hours=D("7.5"),
            start_date=date(2026, 5, 11),
            end_date=date(2026, 5, 11),
            certified_subject="public",
        ),
        credits(("public", "7.5")),
        id="1 training: public when so certified",
    ),
    pytest.param(
        claim(
            "training",
            certificate_hours=24,
            certified_subject="professional",
            start_date=date(2026, 6, 1),
            end_date=date(2026, 6, 3),
        ),
        credits(("professional", "24")),
        id="1 training: hours from a verified e-certificate",
    ),
    pytest.param(
        claim("study", hours=D("12.5")),
        credits(("professional", "12.5")),
        id="2a study: as recorded",
    ),
    pytest.param(
        claim("qualification_exam"),
        credits(("professional", "16")),
        id="2b qualification exam: 16 per certificate",
    ),
    pytest.param(
        claim("achievement", hours=10),
        credits(("professional", "10")),
        id="3 achievement: 10 each",
    ),
    pytest.param(
        claim("expert_activity", hours=20, start_date=date(2026, 7, 1), end_date=date(2026, 7, 3)),
        credits(("professional", "20")),
        id="4a expert activity: working time, 8/day",
    ),
    pytest.param(
        claim("aid_deployment", months=12),
        credits(("public", "30"), ("professional", "60")),
        id="4b aid deployment: full year 30 + 60",
    ),
    pytest.param(
        claim("aid_deployment", months=5),
        credits(("public", "12.5"), ("professional", "25")),
        id="4b aid deployment: 5 months pro rata",
    ),
    pytest.param(
        claim("aid_deployment", months=1, hours=D("7.5")),
        credits(("public", "2.5"), ("professional", "5")),
        id="4b aid deployment: 1 month, hours given consistently",
    ),
    pytest.param(
        claim("competition"),
        credits(("professional", "10")),
        id="5 competition: 10 per event",
    ),
    pytest.param(
        claim("exam_staff", card_hours=6),
        credits(("professional", "6")),
        id="6 exam staff: the card's hours",
    ),
    pytest.param(
        claim("exam_staff", hours=D("4.5")),
        credits(("professional", "4.5")),
        id="6 exam staff: card not yet verified",
    ),
    pytest.param(
        claim("special_leave", months=7),
        credits(("public", "17.5"), ("professional", "35")),
        id="7 special leave: 7/12 of 30 + 60",
    ),
    pytest.param(
        claim("special_leave", months=12),
        credits(("public", "30"), ("professional", "60")),
        id="7 special leave: 12 months",
    ),
    pytest.param(
        claim("transfer_in", credits=[("public", 12), ("professional", "20.5")]),
        credits(("public", "12"), ("professional", "20.5")),
        id="8 transfer in: per subject from the certificate",
    ),
]


@pytest.mark.parametrize(("c", "expected"), CATEGORY_TABLE)
def test_category_rules(rs: RuleSet, c: ClaimInput, expected: tuple[Credit, ...]) -> None:
    result = assess(rs, c, NOTHING, now=NOW)
    assert result.credits == expected
    assert result.requested == expected
    assert result.requested_hours == sum(e.hours for e in expected)
    assert credit_on_approval(rs, c, NOTHING) == list(expected)


def test_exam_staff_unverified_card_warns(rs: RuleSet) -> None:
    result = assess(rs, claim("exam_staff", hours=4), NOTHING, now=NOW)
    assert any("not verified" in w for w in result.warnings)


def test_every_category_is_covered(rs: RuleSet) -> None:
    covered = {p.values[0].category for p in CATEGORY_TABLE}  # type: ignore[union-attr]
    assert covered == set(rs.categories)


# --- each error code --------------------------------------------------------------------------


def test_window_closed_after_the_close(rs: RuleSet) -> None:
    late = datetime(2027, 1, 1, 0, 0, tzinfo=BEIJING)
    with pytest.raises(RuleViolation) as caught:
        assess(rs, claim("study", hours=2), NOTHING, now=late)
    assert caught.value.code == "window_closed"
    # 23:59:59 Beijing on 12-31 is still open, also when `now` is in UTC
    assess(rs, claim("study", hours=2), NOTHING, now=datetime(2026, 12, 31, 15, 59, 59, tzinfo=UTC))


def test_the_declaration_window_defaults_to_the_end_of_learning_and_may_have_a_grace(
    rs: RuleSet,
) -> None:
    """Issue 20 item 11 (六): learning closes 31 Dec; declarations and revisions close the same
    by default; a city grace period, in the rule data, keeps them open a little longer."""
    window = rs.declaration_window
    assert window is not None and window.learning_closes == date(2026, 12, 31)
    assert rs.declarations_close() == rs.declarations_close(revision=True) == rs.claim_window.closes
    jan_5 = datetime(2027, 1, 5, 12, 0, tzinfo=BEIJING)
    for revision in (False, True):
        with pytest.raises(RuleViolation) as caught:
            assess(rs, claim("study", hours=2), NOTHING, now=jan_5, revision=revision)
        assert caught.value.code == "window_closed"
    graced = rs.model_copy(
        update={
            "declaration_window": window.model_copy(
                update={"revisions_close": datetime(2027, 1, 10, 23, 59, 59, tzinfo=BEIJING)}
            )
        }
    )
    # a claim rejected in the last days may be revised until 10 January; new claims may not
    assess(graced, claim("study", hours=2), NOTHING, now=jan_5, revision=True)
    with pytest.raises(RuleViolation) as caught:
        assess(graced, claim("study", hours=2), NOTHING, now=jan_5)
    assert caught.value.extra["closes_at"].startswith("2026-12-31T23:59:59")
    late = datetime(2027, 1, 11, 0, 0, tzinfo=BEIJING)
    with pytest.raises(RuleViolation) as caught:
        assess(graced, claim("study", hours=2), NOTHING, now=late, revision=True)
    assert caught.value.extra["closes_at"].startswith("2027-01-10T23:59:59")


def test_window_closed_for_a_future_year(rs: RuleSet) -> None:
    early = datetime(2025, 12, 31, 23, 0, tzinfo=BEIJING)
    with pytest.raises(RuleViolation) as caught:
        assess(rs, claim("study", hours=2), NOTHING, now=early)
    assert caught.value.code == "window_closed"


def test_approval_after_the_window_still_credits(rs: RuleSet) -> None:
    assert credit_on_approval(rs, claim("study", hours=2), NOTHING) == list(
        credits(("professional", "2"))
    )


@pytest.mark.parametrize(
    ("c", "max_hours"),
    [
        (claim("training", hours=9, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2)), 8),
        (
            claim(
                "training", hours=D("24.1"), start_date=date(2026, 3, 2), end_date=date(2026, 3, 4)
            ),
            24,
        ),
        (
            claim(
                "expert_activity", hours=17, start_date=date(2026, 3, 2), end_date=date(2026, 3, 3)
            ),
            16,
        ),
    ],
)
def test_daily_cap_exceeded(rs: RuleSet, c: ClaimInput, max_hours: int) -> None:
    error = violation(rs, c)
    assert error.code == "daily_cap_exceeded"
    assert error.extra["max_hours"] == max_hours
    assert "8 hours a day" in error.detail


@pytest.mark.parametrize(
    ("c", "missing"),
    [
        (claim("training", hours=8, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2),
               evidence_count=0, certificate_code=None), "evidence file or the certificate code"),
        (claim("study", hours=2, evidence_count=0), "evidence file"),
        (claim("qualification_exam", certificate_code=" "), "certificate code"),
        (claim("achievement", reference_no=None), "reference number"),
        (claim("expert_activity", hours=8, start_date=date(2026, 3, 2),
               end_date=date(2026, 3, 2), evidence_count=0), "evidence file"),
        (claim("aid_deployment", months=3, evidence_count=0), "evidence file"),
        (claim("competition", evidence_count=0), "evidence file"),
        (claim("exam_staff", card_hours=4, exam_card_no=None), "exam card number"),
        (claim("special_leave", months=3, evidence_count=0), "evidence file"),
        (claim("transfer_in", credits=[("public", 3)], evidence_count=0), "evidence file"),
    ],
)  # fmt: skip
def test_evidence_required(rs: RuleSet, c: ClaimInput, missing: str) -> None:
    error = violation(rs, c)
    assert error.code == "evidence_required"
    assert missing in error.detail


def test_training_with_only_an_e_certificate_code_is_enough(rs: RuleSet) -> None:
    c = claim("training", hours=8, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2),
              evidence_count=0)  # fmt: skip
    assert assess(rs, c, NOTHING, now=NOW).credits == credits(("professional", "8"))


def test_invalid_category(rs: RuleSet) -> None:
    error = violation(rs, claim("holiday", hours=3))
    assert error.code == "invalid_category"
    assert "training" in error.detail


@pytest.mark.parametrize(
    "c",
    [
        claim("study", subject="public", hours=3),
        claim("competition", subject="other"),
        claim("aid_deployment", subject="public", months=3),
        claim("special_leave", subject="professional", months=3),
        claim("transfer_in", subject="public", credits=[("public", 3)]),
        claim("transfer_in", credits=[("public", 3), ("public", 4)]),
        claim("transfer_in", credits=[("general", 3)]),
        claim(
            "training",
            subject="public",
            certified_subject="professional",
            hours=8,
            start_date=date(2026, 3, 2),
            end_date=date(2026, 3, 2),
        ),
    ],
)
def test_invalid_subject(rs: RuleSet, c: ClaimInput) -> None:
    assert violation(rs, c).code == "invalid_subject"


@pytest.mark.parametrize(
    "c",
    [
        claim("study"),
        claim("study", hours=0),
        claim("study", hours=-2),
        claim("study", hours=D("1.25")),
        claim("study", hours=1.25),
        claim("study", hours="abc"),
        claim("study", hours="NaN"),
        claim("study", hours=float("nan")),
        claim("study", hours=float("inf")),
        claim("study", hours="-Infinity"),
        claim("study", hours=1e27),  # past Decimal's 28 digits once rounded: was a 500
        claim("study", hours=1e308),
        claim("study", hours=D("1E+400")),
        claim("study", hours=10_000.5),
        claim("study", hours=True),
        claim("achievement", hours=20),
        claim("qualification_exam", hours=8),
        claim("aid_deployment", months=6, hours=40),
        claim("exam_staff"),
        claim("transfer_in"),
        claim("transfer_in", credits=[("public", 0)]),
        claim("training", hours=None, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2)),
    ],
)
def test_invalid_hours(rs: RuleSet, c: ClaimInput) -> None:
    assert violation(rs, c).code == "invalid_hours"


def test_hours_with_a_trailing_zero_are_one_decimal(rs: RuleSet) -> None:
    assert assess(rs, claim("study", hours="2.50"), NOTHING, now=NOW).requested_hours == D("2.5")


@pytest.mark.parametrize(
    "c",
    [
        claim("training", hours=8, start_date=date(2026, 3, 3), end_date=date(2026, 3, 2)),
        claim("training", hours=8, start_date=date(2025, 12, 31), end_date=date(2026, 1, 1)),
        claim("training", hours=8, start_date=date(2026, 3, 3)),
        claim("expert_activity", hours=8),
        claim("study", hours=8, start_date=date(2027, 1, 2)),
    ],
)
def test_invalid_dates(rs: RuleSet, c: ClaimInput) -> None:
    assert violation(rs, c).code == "invalid_dates"


def test_dates_after_today_are_refused(rs: RuleSet) -> None:
    c = claim("training", hours=8, start_date=date(2026, 11, 2), end_date=date(2026, 11, 2))
    with pytest.raises(RuleViolation) as caught:
        assess(rs, c, NOTHING, now=datetime(2026, 11, 1, 10, 0, tzinfo=BEIJING))
    assert caught.value.code == "invalid_dates"


@pytest.mark.parametrize("months", [0, 13, -1])
@pytest.mark.parametrize("category", ["aid_deployment", "special_leave"])
def test_invalid_months(rs: RuleSet, category: str, months: int | None) -> None:
    error = violation(rs, claim(category, months=months))
    assert error.code == "invalid_months"
    assert "1 to 12" in error.detail


@pytest.mark.parametrize(
    "c",
    [
        claim("exam_staff", card_hours=6, hours=8),
        claim(
            "training",
            certificate_hours=8,
            hours=12,
            start_date=date(2026, 3, 2),
            end_date=date(2026, 3, 3),
        ),
    ],
)
def test_hours_mismatch_with_verified_evidence(rs: RuleSet, c: ClaimInput) -> None:
    assert violation(rs, c).code == "hours_mismatch"


# --- caps across claims -----------------------------------------------------------------------


def approve(rs: RuleSet, ledger: CreditedSoFar, c: ClaimInput) -> CreditedSoFar:
    return ledger.plus(c.category, credit_on_approval(rs, c, ledger))


def test_study_cap_cuts_then_refuses(rs: RuleSet) -> None:
    ledger = approve(rs, NOTHING, claim("study", hours=30))
    result = assess(rs, claim("study", hours=20), ledger, now=NOW)
    assert result.requested_hours == 20
    assert result.credits == credits(("professional", "10"))
    assert result.warnings == (
        "Only 10 of 20 hours can still count under the 40-hour yearly cap on study (学习类) "
        "(30 already credited).",
    )
    ledger = approve(rs, ledger, claim("study", hours=20))
    assert ledger.category_hours("study") == 40
    error = violation(rs, claim("study", hours=1), ledger)
    assert error.code == "yearly_cap_reached"
    assert error.extra["cap"] == "study"
    assert "40" in error.detail


def test_qualification_exam_is_outside_the_study_cap(rs: RuleSet) -> None:
    ledger = approve(rs, NOTHING, claim("study", hours=40))
    result = assess(rs, claim("qualification_exam"), ledger, now=NOW)
    assert result.credits == credits(("professional", "16"))


@pytest.mark.parametrize("category", ["achievement", "competition"])
def test_thirty_hour_caps_allow_three_items(rs: RuleSet, category: str) -> None:
    ledger = NOTHING
    for _ in range(3):
        assert assess(rs, claim(category), ledger, now=NOW).warnings == ()
        ledger = approve(rs, ledger, claim(category))
    error = violation(rs, claim(category), ledger)
    assert (error.code, error.extra["cap"], error.extra["limit"]) == (
        "yearly_cap_reached",
        category,
        30,
    )


def test_approval_order_decides_and_cuts_to_zero(rs: RuleSet) -> None:
    # three achievements submitted while nothing was credited, then a fourth approved last
    ledger = NOTHING
    pending = [claim("achievement", reference_no=f"P-{i}") for i in range(4)]
    for c in pending:
        assess(rs, c, NOTHING, now=NOW)
    results = []
    for c in pending:
        got = credit_on_approval(rs, c, ledger)
        results.append(got)
        ledger = ledger.plus(c.category, got)
    assert [r[0].hours for r in results] == [10, 10, 10, 0]
    assert ledger.claims["achievement"] == 3
    assert cap_remaining(rs, "achievement", ledger) == 0


def test_aid_deployment_is_capped_at_one_deployment_year(rs: RuleSet) -> None:
    ledger = approve(rs, NOTHING, claim("aid_deployment", months=8))
    result = assess(rs, claim("aid_deployment", months=6), ledger, now=NOW)
    assert result.credits == credits(("public", "10"), ("professional", "20"))
    assert "Only 4 of 6 months" in result.warnings[0]
    ledger = ledger.plus("aid_deployment", result.credits)
    assert cap_remaining(rs, "aid_deployment", ledger) == 0
    assert violation(rs, claim("aid_deployment", months=1), ledger).code == "yearly_cap_reached"


def test_special_leave_once_a_year(rs: RuleSet) -> None:
    ledger = approve(rs, NOTHING, claim("special_leave", months=3))
    error = violation(rs, claim("special_leave", months=3), ledger)
    assert (error.code, error.extra["cap"]) == ("yearly_cap_reached", "special_leave")
    assert credit_on_approval(rs, claim("special_leave", months=3), ledger) == list(
        credits(("public", "0"), ("professional", "0"))
    )


def test_uncapped_categories_are_not_limited(rs: RuleSet) -> None:
    c = claim("training", hours=8, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2))
    ledger = NOTHING
    for _ in range(30):
        ledger = approve(rs, ledger, c)
    assert ledger.category_hours("training") == 240


def test_requirement_already_met_warns(rs: RuleSet) -> None:
    ledger = CreditedSoFar.from_approved(
        [("transfer_in", credits(("public", "20")))], outside_claims={"public": D("12")}
    )
    c = claim("training", subject="public", hours=4, start_date=date(2026, 3, 2),
              end_date=date(2026, 3, 2), certified_subject="public")  # fmt: skip
    result = assess(rs, c, ledger, now=NOW)
    assert len(result.warnings) == 1
    assert "public requirement of 30 hours is already met (32 credited)" in result.warnings[0]
    assert assess(rs, claim("study", hours=4), ledger, now=NOW).warnings == ()


# --- rounding ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "rounded"),
    [("2.25", "2.3"), ("2.35", "2.4"), ("2.349", "2.3"), ("0.05", "0.1"), ("7.5", "7.5")],
)
def test_round_half_up(value: str, rounded: str) -> None:
    assert round_hours(D(value)) == D(rounded)


def test_proration_rounds_half_up() -> None:
    rule = FullYearProratedRule(
        kind="full_year_prorated",
        full_year={"public": D(25), "professional": D(50)},
        months_per_year=12,
        max_months=12,
    )
    # 25 × 1/12 = 2.083…, 50 × 1/12 = 4.166…, 25 × 3/12 = 6.25
    assert rule.credits_for(1) == credits(("public", "2.1"), ("professional", "4.2"))
    assert rule.credits_for(3) == credits(("public", "6.3"), ("professional", "12.5"))


# --- properties: caps hold whatever the order -------------------------------------------------

capped_claims = st.one_of(
    st.builds(
        lambda h: claim("study", hours=D(h) / 10),
        st.integers(min_value=1, max_value=400),
    ),
    st.just(claim("achievement")),
    st.just(claim("competition")),
    st.builds(lambda m: claim("aid_deployment", months=m), st.integers(1, 12)),
    st.builds(lambda m: claim("special_leave", months=m), st.integers(1, 12)),
    st.just(claim("qualification_exam")),
)


def assert_within_caps(rs: RuleSet, ledger: CreditedSoFar) -> None:
    for name, group in rs.cap_groups.items():
        assert cap_remaining(rs, name, ledger) >= 0
        used = group.limit - cap_remaining(rs, name, ledger)
        assert used <= group.limit
    assert ledger.category_hours("study") <= 40
    assert ledger.category_hours("achievement") <= 30
    assert ledger.category_hours("competition") <= 30
    assert ledger.category_hours("aid_deployment") <= 90
    assert ledger.claims.get("special_leave", 0) <= 1


@settings(max_examples=200, deadline=None)
@given(submissions=st.lists(capped_claims, max_size=12), data=st.data())
def test_credited_hours_never_exceed_a_cap(submissions: list[ClaimInput], data: Any) -> None:
    rs = load_ruleset(2026)
    submitted: list[tuple[ClaimInput, Assessment]] = []
    ledger = NOTHING
    for c in submissions:  # submissions interleaved with approvals of earlier ones
        try:
            submitted.append((c, assess(rs, c, ledger, now=NOW)))
        except RuleViolation as error:
            assert error.code == "yearly_cap_reached"
        if submitted and data.draw(st.booleans()):
            index = data.draw(st.integers(0, len(submitted) - 1))
            ledger = approve_checked(rs, ledger, *submitted.pop(index))
    for c, expected in data.draw(st.permutations(submitted)):
        ledger = approve_checked(rs, ledger, c, expected)
    assert_within_caps(rs, ledger)


def approve_checked(
    rs: RuleSet, ledger: CreditedSoFar, c: ClaimInput, expected: Assessment
) -> CreditedSoFar:
    got = credit_on_approval(rs, c, ledger)
    for credit, requested in zip(got, expected.requested, strict=True):
        assert credit.subject == requested.subject
        assert 0 <= credit.hours <= requested.hours
    ledger = ledger.plus(c.category, got)
    assert_within_caps(rs, ledger)
    return ledger


@settings(max_examples=200, deadline=None)
@given(
    hours=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=10),
    data=st.data(),
)
def test_hours_cap_total_does_not_depend_on_order(hours: list[int], data: Any) -> None:
    rs = load_ruleset(2026)
    claims = [claim("study", hours=D(h) / 10) for h in hours]
    ledger = NOTHING
    for c in data.draw(st.permutations(claims)):
        ledger = approve(rs, ledger, c)
    assert ledger.category_hours("study") == min(D(40), sum(D(h) / 10 for h in hours))


@settings(max_examples=100, deadline=None)
@given(months=st.lists(st.integers(1, 12), min_size=1, max_size=6))
def test_aid_months_total_is_capped_at_twelve(months: list[int]) -> None:
    rs = load_ruleset(2026)
    ledger = NOTHING
    for m in months:
        ledger = approve(rs, ledger, claim("aid_deployment", months=m))
    total_months = min(12, sum(months))
    assert ledger.hours["aid_deployment"] == {
        "public": D("2.5") * total_months,
        "professional": D(5) * total_months,
    }


def test_claim_input_is_immutable() -> None:
    c = claim("study", hours=3)
    assert replace(c, hours=4).hours == 4
    with pytest.raises(AttributeError):
        c.hours = 5  # type: ignore[misc]


def test_ledger_accepts_floats_read_back_from_storage(rs: RuleSet) -> None:
    floats: Any = [2.3, 35.4, 0.1]
    stored = [
        ("study", [Credit("professional", floats[0])]),
        ("study", [Credit("professional", floats[1])]),
    ]
    ledger = CreditedSoFar.from_approved(stored, outside_claims={"public": floats[2]})
    assert ledger.category_hours("study") == D("37.7")
    assert ledger.subject_hours("public") == D("0.1")
    result = assess(rs, claim("study", hours=5), ledger, now=NOW)
    assert result.credits == credits(("professional", "2.3"))


def test_only_claims_under_a_shared_cap_can_take_a_claims_room(rs: RuleSet) -> None:
    # what the claims service loads at submission: nothing for an uncapped category
    assert cap_sharing_categories(rs, "training") == []
    assert cap_sharing_categories(rs, "no_such_category") == []
    assert cap_sharing_categories(rs, "study") == ["study"]
    # and what the warning looks at: a pending training claim never warns a study claim
    pending = [
        PendingClaim("c-training", "培训", "training", (Credit("professional", D("40")),)),
        PendingClaim("c-study", "在职研究生课程", "study", (Credit("professional", D("30")),)),
    ]
    body = dict(hours=20, start_date=date(2026, 3, 2), end_date=date(2026, 3, 2))
    study = assess(rs, claim("study", evidence_count=1, **body), NOTHING, now=NOW, pending=pending)
    [warning] = study.warnings
    assert "c-study" in warning and "c-training" not in warning


# --- issue 20: one person's days across claims ---------------------------------------------


def dated(claim_id: str, start: str, end: str, hours: int, **fields: Any) -> DatedClaim:
    return DatedClaim(
        claim_id=claim_id,
        title=claim_id,
        category=fields.pop("category", "training"),
        start_date=date.fromisoformat(start),
        end_date=date.fromisoformat(end),
        hours=D(hours),
        approved=fields.pop("approved", False),
        **fields,
    )


def on_days(start: str, end: str, hours: int, **fields: Any) -> ClaimInput:
    return claim(
        "training",
        hours=hours,
        start_date=date.fromisoformat(start),
        end_date=date.fromisoformat(end),
        **fields,
    )


def test_claims_fit_a_persons_days_when_their_hours_can_be_spread(rs: RuleSet) -> None:
    """8 h on 3 March beside 8 h over 2–3 March fits (the latter on 2 March); a third 8 h on
    2 March does not: the run 2–3 March would hold 24 h."""
    others = [dated("a", "2026-03-03", "2026-03-03", 8), dated("b", "2026-03-02", "2026-03-03", 8)]
    with pytest.raises(RuleViolation) as caught:
        assess(rs, on_days("2026-03-02", "2026-03-02", 8), NOTHING, now=NOW, dated=others)
    assert caught.value.code == "daily_cap_exceeded"
    assert (caught.value.extra["day"], caught.value.extra["until"]) == ("2026-03-02", "2026-03-03")
    assert {c["claim_id"] for c in caught.value.extra["claims"]} == {"a", "b"}
    fits = assess(rs, on_days("2026-03-01", "2026-03-02", 8), NOTHING, now=NOW, dated=others)
    assert fits.credits == credits(("professional", "8"))
    assert "b" in fits.warnings[0]


def test_a_chain_of_claims_is_checked_as_one_run_and_other_days_are_free(rs: RuleSet) -> None:
    others = [
        dated("a", "2026-04-01", "2026-04-02", 16),
        dated("b", "2026-04-02", "2026-04-03", 8),
        dated("far", "2026-04-10", "2026-04-10", 8, category="expert_activity"),
    ]
    # 1–3 April hold 24 h: a and b use them all, so 4 h more on 3 April do not fit
    with pytest.raises(RuleViolation) as caught:
        assess(rs, on_days("2026-04-03", "2026-04-03", 4), NOTHING, now=NOW, dated=others)
    assert {c["claim_id"] for c in caught.value.extra["claims"]} == {"a", "b"}
    assess(rs, on_days("2026-04-04", "2026-04-09", 48), NOTHING, now=NOW, dated=others)


def test_travel_days_count_in_full_against_the_persons_days(rs: RuleSet) -> None:
    activity = dated("x", "2026-06-01", "2026-06-03", 8, category="expert_activity", travel_days=2)
    with pytest.raises(RuleViolation):
        assess(rs, on_days("2026-06-02", "2026-06-02", 1), NOTHING, now=NOW, dated=[activity])


def test_months_credited_by_an_approved_claim_are_left_out(rs: RuleSet) -> None:
    aid = dated("aid", "2026-03-01", "2026-05-31", 0, category="aid_deployment", approved=True)
    leave = claim(
        "special_leave", start_date=date(2026, 4, 1), end_date=date(2026, 7, 31), months=None
    )
    result = assess(rs, leave, NOTHING, now=NOW, dated=[aid])
    assert result.credits == credits(("public", "5.0"), ("professional", "10.0"))
    assert credit_on_approval(rs, leave, NOTHING, [aid]) == list(result.credits)
    inside = claim("special_leave", start_date=date(2026, 4, 1), end_date=date(2026, 5, 31))
    with pytest.raises(RuleViolation) as caught:
        assess(rs, inside, NOTHING, now=NOW, dated=[aid])
    assert caught.value.code == "months_already_credited"
    assert credit_on_approval(rs, inside, NOTHING, [aid]) == list(
        credits(("public", "0"), ("professional", "0"))
    )


@pytest.mark.parametrize(
    ("start", "end", "months"),
    [
        ("2026-01-01", "2026-12-31", 12),
        ("2026-09-01", "2026-09-30", 1),
        ("2026-09-16", "2026-11-14", 2),  # 15 days of September, 14 of November
        ("2026-02-14", "2026-02-28", 1),  # 15 of February's 28
        ("2026-03-20", "2026-04-10", 0),
    ],
)
def test_months_of_dates(rs: RuleSet, start: str, end: str, months: int) -> None:
    assert len(months_of(rs, date.fromisoformat(start), date.fromisoformat(end))) == months
