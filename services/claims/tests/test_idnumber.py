from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libs.common.errors import RuleViolation
from libs.common.idnumber import mask_id_number, validate_id_number

TODAY = date(2026, 6, 1)


def reference_check(first17: str) -> str:
    """An independent ISO 7064 MOD 11-2: the value whose appended check makes the sum ≡ 1."""
    total = sum(int(d) * (2 ** (17 - i)) for i, d in enumerate(first17))
    for value in range(11):
        if (total + value) % 11 == 1:
            return "X" if value == 10 else str(value)
    raise AssertionError("unreachable")


def with_check(first17: str) -> str:
    return first17 + reference_check(first17)


def test_public_sample_with_x() -> None:
    assert validate_id_number("11010519491231002X", today=TODAY) == "11010519491231002X"


def test_lower_case_x_and_spaces_are_normalised() -> None:
    assert validate_id_number(" 11010519491231002x ", today=TODAY) == "11010519491231002X"


@pytest.mark.parametrize(
    "first17",
    ["37040219850612123", "37040119900101001", "37068119991231456", "81000019800229001"],
)
def test_valid_numbers(first17: str) -> None:
    number = with_check(first17)
    assert validate_id_number(number, today=TODAY) == number


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("110105194912310021", "check character"),
        ("11010519491231002", "17 characters"),
        ("1101051949123100211", "19 characters"),
        ("11010519491231002Y", "only digits"),
        ("1101051949123X002X", "only digits"),
        (with_check("99010519491231002"), "not a province code"),
        (with_check("37040219850230123"), "not a valid birth date"),
        (with_check("37040220300101123"), "in the future"),
        (with_check("37040218991231123"), "before 1900"),
    ],
)
def test_invalid_numbers(value: str, reason: str) -> None:
    with pytest.raises(RuleViolation) as caught:
        validate_id_number(value, today=TODAY)
    assert caught.value.code == "invalid_id_number"
    assert caught.value.status == 422
    assert reason in caught.value.detail


def test_birth_date_today_is_allowed_tomorrow_is_not() -> None:
    validate_id_number(with_check("37040220260601123"), today=TODAY)
    with pytest.raises(RuleViolation):
        validate_id_number(with_check("37040220260602123"), today=TODAY)


def test_mask() -> None:
    assert mask_id_number("11010519491231002X") == "110105********002X"
    assert mask_id_number("37040219850612123x") == "370402********123X"
    assert mask_id_number("short") == "*****"


@given(
    region=st.sampled_from(["370402", "370481", "110105", "440305"]),
    born=st.dates(min_value=date(1900, 1, 1), max_value=TODAY),
    sequence=st.integers(min_value=0, max_value=999),
)
def test_any_valid_number_passes_and_any_other_check_character_fails(
    region: str, born: date, sequence: int
) -> None:
    first17 = f"{region}{born:%Y%m%d}{sequence:03d}"
    number = with_check(first17)
    assert validate_id_number(number, today=TODAY) == number
    for wrong in "0123456789X":
        if wrong != number[-1]:
            with pytest.raises(RuleViolation):
                validate_id_number(first17 + wrong, today=TODAY)


# --- full-width and other Unicode digits (issue 7, item 4) -----------------------------------

FULL_WIDTH = str.maketrans("0123456789Xx", "０１２３４５６７８９Ｘｘ")
valid_numbers = st.sampled_from(
    ["11010519491231002X", "370402198506121234"[:17], "370681199912314560"[:17]]
).map(lambda n: n if len(n) == 18 else with_check(n))
other_digits = st.characters(categories=["Nd"]).filter(
    lambda c: not ("0" <= c <= "9") and not ("０" <= c <= "９")
)


@given(valid_numbers)
def test_full_width_forms_are_the_same_number(number: str) -> None:
    assert validate_id_number(number.translate(FULL_WIDTH), today=TODAY) == number
    assert validate_id_number("\u3000" + number.translate(FULL_WIDTH), today=TODAY) == number


@given(valid_numbers, st.integers(0, 16), other_digits)
def test_other_unicode_digits_are_refused(number: str, at: int, digit: str) -> None:
    assert int(digit) in range(10)  # what `\d` and int() would have let through
    bad = number[:at] + digit + number[at + 1 :]
    with pytest.raises(RuleViolation) as refused:
        validate_id_number(bad, today=TODAY)
    assert refused.value.code == "invalid_id_number"
