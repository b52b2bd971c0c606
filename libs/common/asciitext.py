"""Identifiers typed with a Chinese input method: full-width forms folded to ASCII, then ASCII only.

People type ``３７０４０２…`` or ``１３８００１３８０００`` in full-width mode; those are the same
number and must be stored (and compared for duplicates) as ``370402…``. Other Unicode digits
(Arabic-Indic, Devanagari, mathematical …) are *not* folded: ``str.isdigit``, ``\\d`` and ``int()``
accept them, so every check after folding uses ASCII classes only.

:func:`fold_width` is the one folding; the ``Annotated`` types below apply it before a pydantic
model checks the value against an ASCII-only pattern (ID numbers, phones, codes, record ids).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator, StringConstraints

# U+FF01..U+FF5E are the full-width forms of ASCII U+0021..U+007E; U+3000 is the ideographic space
_FULL_WIDTH = {cp: cp - 0xFEE0 for cp in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}


def fold_width(value: str) -> str:
    """``value`` with full-width ASCII forms (and the ideographic space) replaced by ASCII."""
    return value.translate(_FULL_WIDTH)


def _folded(value: object) -> object:
    return fold_width(value).strip() if isinstance(value, str) else value


# a record id or a code of another system: ASCII letters, digits and . _ : - / (no spaces)
ASCII_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$"
# a phone number: digits with an optional leading + and - separators (landlines: 0632-1234567)
PHONE_PATTERN = r"^\+?[0-9][0-9-]{2,24}$"

AsciiId = Annotated[
    str,
    BeforeValidator(_folded),
    StringConstraints(min_length=1, max_length=128, pattern=ASCII_ID_PATTERN),
]
"""A record id / code: full-width folded, then ASCII letters, digits and ``._:/-`` only."""

EntityId = Annotated[
    str,
    BeforeValidator(_folded),
    StringConstraints(min_length=1, max_length=64, pattern=ASCII_ID_PATTERN),
]
"""The id of one of our entities (a UUID) in a request body: at most 64 ASCII characters."""

Phone = Annotated[
    str,
    BeforeValidator(_folded),
    StringConstraints(max_length=25, pattern=PHONE_PATTERN),
]
"""A phone number: full-width folded, then ASCII digits (``+`` and ``-`` allowed)."""

FoldedText = Annotated[str, BeforeValidator(_folded)]
"""Free text (a reference number like ``鲁卫继备〔2026〕15号``) with full-width ASCII folded."""
