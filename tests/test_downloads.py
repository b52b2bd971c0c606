"""File names in ``Content-Disposition`` (RFC 6266, RFC 5987): sanitised, an ASCII fallback and
the exact UTF-8 name, whatever the data the name is made of."""

from __future__ import annotations

import pytest

from libs.common.downloads import content_disposition, safe_filename
from tests.support import disposition_of


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("decisions-枣庄市中区-2026-11-01.csv", "decisions-枣庄市中区-2026-11-01.csv"),
        ('a"; filename=evil.exe; x=".csv', "a_ filename=evil.exe_ x=_.csv"),
        ("../../etc/passwd", "_.._etc_passwd"),
        ("line\r\nSet-Cookie: a=b.pdf", "line_Set-Cookie_ a=b.pdf"),
        ("\x00\x1f", "_"),
        ("", "download"),
        ("...", "download"),
    ],
)
def test_names_are_sanitised(name: str, expected: str) -> None:
    assert safe_filename(name) == expected


def test_a_chinese_name_has_an_ascii_fallback_and_the_utf8_name() -> None:
    value = content_disposition("decisions-枣庄市中区-2026.csv")
    value.encode("latin-1")  # a header the server can send
    assert disposition_of(value) == (
        "attachment",
        {"filename": "decisions-_-2026.csv", "filename*": "decisions-枣庄市中区-2026.csv"},
    )


def test_a_quote_injects_no_parameter() -> None:
    value = content_disposition('x"; filename="evil.html', "inline")
    assert disposition_of(value) == ("inline", {"filename": "x_ filename=_evil.html"})


def test_an_ascii_name_is_sent_once() -> None:
    assert content_disposition("compliance-2026-city.csv") == (
        'attachment; filename="compliance-2026-city.csv"'
    )


def test_long_names_keep_their_extension() -> None:
    name = safe_filename("证" * 300 + ".xlsx")
    assert len(name) == 120 and name.endswith(".xlsx")
