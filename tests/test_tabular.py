"""The one table reader every import uses: CSV in UTF-8 (with/without BOM) or GBK, and XLSX;
and each import path against the hostile files of issue 17 (each limit and its code)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from ce.imports import LEARNING_COLUMNS, PERSON_ALIASES, PERSON_COLUMNS, chunks
from libs.common.errors import RuleViolation
from libs.common.tabular import CLI_LIMITS, TableLimits, TableTooLarge, detect_format, read_table
from services.registry import roster
from services.registry.roster import read_roster
from services.review import directory
from tests import hostile_tables as hostile

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


# --- hostile files (issue 17): every import path answers within a second, naming the limit ----


async def _orgs(data: bytes, name: str, _: Path) -> object:
    return await directory.read_import(data, name)


async def _roster(data: bytes, name: str, _: Path) -> object:
    return await read_roster(name, data)


def _cli(columns: tuple[str, ...], aliases: dict[str, str] | None) -> Any:
    async def read(data: bytes, name: str, tmp: Path) -> object:
        path = tmp / name
        path.write_bytes(data)
        return list(chunks(path, columns, aliases))

    return read


# every import path: its reader (as the service or the CLI calls it) and its own columns
PATHS = {
    "org import (review)": (_orgs, directory.IMPORT_COLUMNS),
    "roster upload (registry)": (_roster, roster.COLUMNS),
    "ce import-persons": (_cli(PERSON_COLUMNS, PERSON_ALIASES), PERSON_COLUMNS),
    "ce import-learning": (_cli(LEARNING_COLUMNS, None), LEARNING_COLUMNS),
}
ATTACKS: dict[str, tuple[Callable[[tuple[str, ...]], bytes], str, str]] = {
    "dimension A1:XFD2000": (
        lambda c: hostile.declared_dimension_bomb(2000, c),
        "sheet_too_large",
        "xlsx",
    ),
    "dimension A1:XFD1048576": (
        lambda c: hostile.declared_dimension_bomb(1_048_576, c),
        "sheet_too_large",
        "xlsx",
    ),
    "undeclared cell in column XFD": (
        lambda c: hostile.declared_dimension_bomb(2000, c, declared=False),
        "too_many_columns",
        "xlsx",
    ),
    "shared strings 4 MB inflated ~270:1": (
        lambda c: hostile.shared_strings_bomb(4, c),
        "compression_ratio_too_high",
        "xlsx",
    ),
    "the same bomb diluted by stored noise": (
        hostile.diluted_bomb,
        "compression_ratio_too_high",
        "xlsx",
    ),
    "CSV header of 16,000 columns": (
        lambda c: hostile.wide_csv_header(16_000, c),
        "too_many_columns",
        "csv",
    ),
    "CSV cell over 131,072 characters": (
        lambda c: hostile.long_cell_csv(131_073, c),
        "cell_too_large",
        "csv",
    ),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
@pytest.mark.parametrize("path", list(PATHS))
async def test_a_hostile_file_is_refused_within_a_second_naming_the_limit(
    path: str, attack: str, tmp_path: Path
) -> None:
    read, columns = PATHS[path]
    build, code, ext = ATTACKS[attack]
    data = build(columns)
    assert len(data) < 400_000  # small files, all of them
    started = time.monotonic()
    with pytest.raises(TableTooLarge) as err:
        await read(data, f"hostile.{ext}", tmp_path)
    elapsed = time.monotonic() - started
    assert err.value.code == code, err.value.detail
    assert err.value.status == 422 and err.value.extra["limit"]
    assert elapsed < 1.0, f"{path} took {elapsed:.2f}s on {attack}"


@pytest.mark.parametrize("path", ["org import (review)", "roster upload (registry)"])
async def test_a_service_walks_no_million_empty_rows(path: str, tmp_path: Path) -> None:
    """No declared dimension, one cell in row 1,048,576: refused at the row limit."""
    read, columns = PATHS[path]
    started = time.monotonic()
    with pytest.raises(TableTooLarge) as err:
        await read(hostile.far_row(1_048_576, columns), "far.xlsx", tmp_path)
    assert err.value.code == "sheet_too_large"
    assert time.monotonic() - started < 1.0


def test_what_follows_the_rows_is_not_parsed() -> None:
    """200,000 merged cells after the rows: the rows are read in well under a second."""
    data = hostile.merged_cells_after_rows(200_000, ("code", "name"))
    started = time.monotonic()
    rows = read_table(data, required=["code", "name"])
    assert time.monotonic() - started < 1.0
    assert [r.cells for r in rows] == [{"code": "U-1", "name": "单位"}]


def _limited(**limits: Any) -> TableLimits:
    return TableLimits(**limits)


def test_each_limit_has_its_code() -> None:
    wide = _xlsx()
    strings = hostile.workbook(hostile.header_row(("code",)), shared_strings=["x" * 1000])
    undeclared = hostile.workbook(hostile.header_row(("code", "name", "hours", "passed")))
    cases: list[tuple[bytes, TableLimits, str]] = [
        (wide, _limited(max_decompressed_bytes=1000), "decompressed_too_large"),
        (wide, _limited(max_xlsx_members=3), "decompressed_too_large"),
        (strings, _limited(max_shared_strings_bytes=1000), "shared_strings_too_large"),
        (wide, _limited(max_cells=6), "sheet_too_large"),  # its declared A1:D4
        (undeclared, _limited(max_cells=3), "too_many_cells"),
        (_csv("utf-8"), _limited(max_cells=6), "too_many_cells"),
        (_csv("utf-8"), _limited(max_sheet_rows=3), "sheet_too_large"),
        (wide, _limited(max_sheet_rows=3), "sheet_too_large"),
        (_csv("gbk"), _limited(max_cell_chars=3), "cell_too_large"),
        (wide, _limited(max_cell_chars=3), "cell_too_large"),
        (_csv("utf-8"), _limited(time_budget_s=0.0), "parse_time_exceeded"),
        (wide, _limited(max_columns=3), "sheet_too_large"),
        (undeclared, _limited(max_columns=3), "too_many_columns"),
    ]
    for data, limits, code in cases:
        with pytest.raises(TableTooLarge) as err:
            read_table(data, required=["code"], limits=limits)
            pytest.fail(f"read within {limits}")
        assert err.value.code == code, (limits, err.value.code)


def test_the_cli_reads_what_a_service_refuses_for_size() -> None:
    """`ce import-*` reads a whole city's year; a service's upload stops at its row limit."""
    rows = "\r\n".join(f"U-{i},单位{i}" for i in range(60_000))
    data = ("code,name\r\n" + rows).encode()
    assert len(read_table(data, required=["code"], limits=CLI_LIMITS)) == 60_000
    with pytest.raises(TableTooLarge) as err:
        read_table(data, required=["code"])
    assert err.value.code == "sheet_too_large"


def test_a_header_of_many_columns_is_checked_in_linear_time() -> None:
    """16,000 columns are read in well under the 1.8 s the quadratic check took."""

    def timed(columns: int) -> float:
        header = ",".join(f"c{i}" for i in range(columns)) + ",code\r\nx\r\n"
        limits = _limited(max_columns=200_000, max_cells=1_000_000)
        started = time.perf_counter()
        read_table(header.encode(), required=["code"], limits=limits)
        return time.perf_counter() - started

    timed(2_000)  # warm up
    assert min(timed(16_000) for _ in range(3)) < 0.2


def test_duplicated_header_names_are_reported_once() -> None:
    with pytest.raises(RuleViolation) as err:
        read_table(b"code,name,code,name,code\r\nU-1,x,U-1,x,U-1\r\n", required=["code"])
    assert err.value.code == "bad_header"
    assert err.value.extra["duplicated"] == ["code", "name"]


def test_a_wrong_declared_dimension_loses_no_cells() -> None:
    """A dimension smaller than the data (some tools write ``A1``) no longer truncates rows."""
    rows = hostile.header_row(("code", "name")) + (
        '<row r="2"><c r="A2" t="inlineStr"><is><t>U-1</t></is></c>'
        '<c r="B2" t="inlineStr"><is><t>医院</t></is></c></row>'
    )
    data = hostile.workbook(rows, dimension="A1")
    assert [r.cells for r in read_table(data, required=["code", "name"])] == [
        {"code": "U-1", "name": "医院"}
    ]
