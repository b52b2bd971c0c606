"""The one table reader every import uses: CSV in UTF-8 (with/without BOM) or GBK, and XLSX."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from libs.common.errors import RuleViolation
from libs.common.tabular import detect_format, read_table

ROWS = [
    ["code", "name", "hours"],
    ["U-1", "枣庄市立医院", "16"],
    ["", "", ""],
    ["U-2", " 薛城区人民医院 ", "8"],
]


def _csv(encoding: str) -> bytes:
    return "\r\n".join(",".join(r) for r in ROWS).encode(encoding)


def _xlsx() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Code", "Name", "Hours", "备注"])
    sheet.append(["U-1", "枣庄市立医院", 16.0, "note"])
    sheet.append([None, None, None, None])
    sheet.append(["U-2", " 薛城区人民医院 ", 8, None])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "data",
    [_csv("utf-8"), b"\xef\xbb\xbf" + _csv("utf-8"), _csv("gbk"), _xlsx()],
    ids=["utf8", "utf8-bom", "gbk", "xlsx"],
)
def test_every_encoding_reads_the_same_rows(data: bytes) -> None:
    rows = read_table(data, required=["code", "name"])
    assert [(r.line, r.get("code"), r.get("name"), r.get("hours")) for r in rows] == [
        (2, "U-1", "枣庄市立医院", "16"),
        (4, "U-2", "薛城区人民医院", "8"),
    ]


def test_format_is_detected_from_the_bytes() -> None:
    assert detect_format(_xlsx()) == "xlsx"
    assert detect_format(_csv("gbk"), "orgs.csv") == "csv"


def test_missing_column_names_it() -> None:
    with pytest.raises(RuleViolation) as err:
        read_table(b"code,title\nU-1,x\n", required=["code", "name"])
    assert err.value.code == "bad_header"
    assert err.value.extra["missing"] == ["name"]


def test_chinese_header_aliases() -> None:
    rows = read_table(
        "编码,名称\nU-1,医院\n".encode("gbk"),
        required=["code", "name"],
        aliases={"编码": "code", "名称": "name"},
    )
    assert rows[0].cells == {"code": "U-1", "name": "医院"}


def test_unreadable_bytes_are_refused_clearly() -> None:
    with pytest.raises(RuleViolation) as err:
        read_table(b"code,name\n\xff\xfe\xff\x00bad\n", required=["code"])
    assert err.value.code == "unreadable_encoding"


def test_broken_workbook_and_empty_file_and_row_limit() -> None:
    with pytest.raises(RuleViolation) as err:
        read_table(b"PK\x03\x04broken", required=["code"])
    assert err.value.code == "unreadable_workbook"
    with pytest.raises(RuleViolation) as err:
        read_table(b"", required=["code"])
    assert err.value.code == "empty_file"
    with pytest.raises(RuleViolation) as err:
        read_table(b"code\n1\n2\n3\n", required=["code"], max_rows=2)
    assert err.value.code == "too_many_rows"
