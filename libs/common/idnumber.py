"""Resident identity numbers (公民身份号码) of GB 11643-1999.

Eighteen characters: a six-digit administrative region code, an eight-digit birth date
(YYYYMMDD), a three-digit sequence code and a check character computed with ISO 7064
MOD 11-2 over the first seventeen digits (``0``-``9`` or ``X`` for ten).
"""

from __future__ import annotations

import re
from datetime import date
from operator import mul
from typing import NoReturn

from libs.common.asciitext import fold_width
from libs.common.errors import RuleViolation

# ASCII only: ``\d`` would let Arabic-Indic, Devanagari and other Unicode digits through
_SHAPE = re.compile(r"^[0-9]{17}[0-9X]$", re.ASCII)
# An ID number inside free text (a log line, a URL): not glued to other letters or digits.
_IN_TEXT = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"
# First two digits of the region code: provinces, autonomous regions and municipalities, plus
# 71/81/82/83 (Taiwan, Hong Kong, Macao and the residence permits that use them).
_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)
_EARLIEST_BIRTH = date(1900, 1, 1)


def check_character(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character of the first seventeen digits."""
    if len(first17) != len(_WEIGHTS):
        raise ValueError(f"{len(first17)} digits instead of {len(_WEIGHTS)}")
    # map over the digits, not a generator: this runs for every record of a bulk ingest
    return _CHECK_CHARS[sum(map(mul, map(int, first17), _WEIGHTS)) % 11]


def validate_id_number(value: str, *, today: date | None = None) -> str:
    """The normalised ID number (full-width forms folded to ASCII, spaces trimmed, upper-case
    ``X``), or ``invalid_id_number``.

    Only ASCII digits are accepted after folding. Checks the length and characters, the shape
    of the region code, a real birth date between 1900-01-01 and ``today`` (default: the
    current date), and the check character."""
    normalised = fold_width(value).strip().upper()
    _check_shape(normalised)
    _check_region(normalised[:6])
    _check_birth_date(normalised[6:14], today or date.today())
    expected = check_character(normalised[:17])
    if normalised[17] != expected:
        _refuse(f"its check character is {normalised[17]} but the digits give {expected}")
    return normalised


def mask_id_number(value: str) -> str:
    """The ID number with the birth date and sequence hidden: first 6, 8 stars, last 4."""
    normalised = fold_width(value).strip().upper()
    if len(normalised) <= 10:
        return "*" * len(normalised)
    return normalised[:6] + "*" * (len(normalised) - 10) + normalised[-4:]


def mask_id_numbers_in(text: str) -> str:
    """``text`` with every ID number in it masked as :func:`mask_id_number` does: the redaction
    net for log lines, error messages and URLs."""
    return _IN_TEXT.sub(lambda m: mask_id_number(m.group()), text)


def _check_shape(value: str) -> None:
    if len(value) != 18:
        _refuse(f"it has {len(value)} characters instead of 18")
    if not _SHAPE.fullmatch(value):
        _refuse("only digits are allowed, except a final check character X")


def _check_region(region: str) -> None:
    if int(region[:2]) not in _PROVINCES:
        _refuse(f"{region[:2]} is not a province code, so {region} is not a region code")


def _check_birth_date(digits: str, today: date) -> None:
    try:
        born = date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        _refuse(f"{digits} is not a valid birth date")
    if born > today:
        _refuse(f"the birth date {born} is in the future")
    if born < _EARLIEST_BIRTH:
        _refuse(f"the birth date {born} is before {_EARLIEST_BIRTH}")


def _refuse(reason: str) -> NoReturn:
    raise RuleViolation(
        f"This is not a valid resident ID number (GB 11643): {reason}.",
        code="invalid_id_number",
        reason=reason,
    )
