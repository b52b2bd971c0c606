"""Reading a completions roster from a CSV (UTF-8 with or without BOM, or GBK as Excel in China
saves it) or an XLSX file into raw rows. Which rows are good is decided later, row by row."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import load_workbook

from libs.common.errors import RuleViolation
from services.registry.service import RawRow

MAX_ROWS = 20_000
# accepted header names for each column (English as in the JSON rows, and the usual Chinese)
COLUMNS = {
    "id_number": ("id_number", "身份证号", "身份证号码", "公民身份号码"),
    "name": ("name", "姓名"),
    "hours": ("hours", "学时"),
    "passed": ("passed", "是否合格", "合格", "考核结果"),
}
YES = {"true", "1", "yes", "y", "是", "合格", "通过", "passed"}
NO = {"false", "0", "no", "n", "否", "不合格", "未通过", "failed", ""}


def parse_passed(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    text = "" if value is None else str(value).strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    return None


def read_roster(filename: str, content: bytes) -> list[RawRow]:
    """Rows of a CSV or XLSX roster; a file that is neither, or lacks a column, is refused."""
    if not content.strip():
        raise RuleViolation("the roster file is empty", code="empty_roster")
    if content[:4] == b"PK\x03\x04" or filename.lower().endswith(".xlsx"):
        table = _xlsx_rows(content)
    else:
        table = _csv_rows(content)
    rows = _rows(table)
    if not rows:
        raise RuleViolation("the roster has a header but no rows", code="empty_roster")
    if len(rows) > MAX_ROWS:
        raise RuleViolation(
            f"a roster has at most {MAX_ROWS} rows; split the file", code="too_many_rows"
        )
    return rows


def _decode(content: bytes) -> str:
    if content.startswith(b"\xef\xbb\xbf"):
        return content[3:].decode("utf-8")
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return content.decode("gb18030")  # a superset of GBK
    except UnicodeDecodeError as exc:
        raise RuleViolation(
            "the CSV file is neither UTF-8 nor GBK text", code="unsupported_file"
        ) from exc


def _csv_rows(content: bytes) -> Iterable[Sequence[Any]]:
    return list(csv.reader(io.StringIO(_decode(content), newline="")))


def _xlsx_rows(content: bytes) -> Iterable[Sequence[Any]]:
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise RuleViolation(
            "the file is not a readable XLSX workbook", code="unsupported_file"
        ) from exc
    try:
        sheet = book.worksheets[0]
        return [tuple(r) for r in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer() and abs(value) >= 1e15:
        return str(int(value))
    return str(value).strip()


def _rows(table: Iterable[Sequence[Any]]) -> list[RawRow]:
    it = iter(table)
    header = next(it, None)
    if header is None:
        raise RuleViolation("the roster file is empty", code="empty_roster")
    names = [_cell(h).lstrip("\ufeff").lower() for h in header]
    index: dict[str, int] = {}
    for column, aliases in COLUMNS.items():
        found = next((i for i, n in enumerate(names) if n in aliases), None)
        if found is None:
            raise RuleViolation(
                f"the roster's header lacks the column {column} (or {'/'.join(aliases[1:])}); "
                "columns: id_number, name, hours, passed",
                code="invalid_roster_file",
            )
        index[column] = found
    rows: list[RawRow] = []
    for raw in it:
        cells = list(raw) + [None] * (len(names) - len(raw))
        if all(_cell(c) == "" for c in cells):
            continue  # blank lines at the end of a spreadsheet
        hours = cells[index["hours"]]
        rows.append(
            RawRow(
                id_number=_cell(cells[index["id_number"]]),
                name=_cell(cells[index["name"]]),
                hours=hours if isinstance(hours, int | float) else _cell(hours),
                passed=parse_passed(cells[index["passed"]]),
            )
        )
    return rows
