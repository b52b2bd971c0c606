"""The rule warnings reach the reviewer in Chinese: the real warnings of the claims rules (the
2026 rule set), so that a change of their wording shows here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from console.texts import warning_in_chinese
from services.claims.rules import (
    ClaimInput,
    Credit,
    CreditedSoFar,
    DatedClaim,
    PendingClaim,
    assess,
)
from services.claims.rules import load_ruleset as ruleset

NOW = datetime(2026, 11, 26, 2, 0, tzinfo=UTC)
PROFESSIONAL: Final = "professional"


def study(hours: int) -> ClaimInput:
    return ClaimInput(category="study", hours=hours, evidence_count=1)


def warnings_of(
    claim: ClaimInput, credited: CreditedSoFar, pending: tuple[PendingClaim, ...] = ()
) -> list[str]:
    return list(assess(ruleset(2026), claim, credited, now=NOW, pending=pending).warnings)


def test_the_rules_warnings_read_in_chinese() -> None:
    used = CreditedSoFar(hours={"study": {PROFESSIONAL: Decimal(30)}}, claims={"study": 1})
    [cut] = warnings_of(study(16), used)
    assert warning_in_chinese(cut) == (
        "学习类每年最多 40 学时，已认定 30 学时：本次 16 学时中只有 10 学时可计入。"
    )

    pending = PendingClaim("c-1", "单位学习", "study", (Credit(PROFESSIONAL, Decimal(30)),))
    [booked] = warnings_of(study(16), CreditedSoFar(), (pending,))
    assert warning_in_chinese(booked) == (
        "学习类的年度上限也计入审核中的申报 「单位学习」：若它们先通过，本次 16 学时中只有 10 学时"
        "可计入（上限按通过先后占用）。"
    )

    met = CreditedSoFar(outside_claims={PROFESSIONAL: Decimal(60)})
    [enough] = warnings_of(study(4), met)
    assert warning_in_chinese(enough).startswith("专业科目已满 60 学时（已认定 60 学时）")


def test_an_unknown_warning_is_shown_as_it_came() -> None:
    assert warning_in_chinese("Something new.") == "Something new."


def test_the_notices_round_two_warnings_read_in_chinese() -> None:
    """A training sharing its days with another that still fits, and a leave whose months an
    approved aid deployment already holds: the reviewer reads both in Chinese."""
    other = DatedClaim(
        "c-1", "院感防控培训", "training", date(2026, 3, 2), date(2026, 3, 3), Decimal(8), False
    )
    training = ClaimInput(
        category="training",
        hours=8,
        evidence_count=1,
        start_date=date(2026, 3, 2),
        end_date=date(2026, 3, 3),
        reference_no="鲁卫继备〔2026〕15号",
    )
    [shared] = [
        w
        for w in assess(ruleset(2026), training, CreditedSoFar(), now=NOW, dated=(other,)).warnings
        if "other claims" in w
    ]
    assert warning_in_chinese(shared) == (
        "此人在这些日期还有其他申报：「院感防控培训」。合计未超过每天 8 学时，"
        "请核对活动时间是否重叠。"
    )
    assert (
        warning_in_chinese("the filing number will be checked by your unit and the HR authority")
        == "备案号须由单位和人社部门核对。"
    )
