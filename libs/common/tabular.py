"""Reading the tables our users bring: CSV and XLSX, with per-row line numbers.

Chinese bureaus and units export from Excel, so a CSV arrives as UTF-8 (with or without the
BOM that Excel writes) or as GBK / GB18030 (Excel's "CSV" on a Chinese Windows). The encoding is
detected from the bytes: UTF-8 is tried first (it is strict: GBK text is almost never valid UTF-8),
then GB18030, a superset of GBK. A file that is neither is refused with ``unreadable_encoding``.

Every import in the project goes through :func:`read_table` (or :func:`iter_table` for files too
large to hold), so header checks, trimming and error codes are the same everywhere:

- the header row names the columns; names are trimmed and lower-cased; required columns missing →
  ``bad_header`` naming them; unknown columns are ignored (Excel users add notes);
- cells are strings, trimmed; empty rows are skipped; line numbers are those a user sees in Excel
  (the header is line 1);
- an XLSX is read from its first sheet; numbers that Excel stored as floats (``16.0``) come back as
  ``"16"`` and dates as ISO ``YYYY-MM-DD``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

from libs.common.errors import RuleViolation

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

TableFormat = Literal["csv", "xlsx"]

XLSX_MAGIC = b"PK\x03\x04"


@dataclass(frozen=True, slots=True)
class TableRow:
    """One data row: ``line`` as shown in a spreadsheet (header = 1), cells by column name."""

    line: int
    cells: dict[str, str]

    def get(self, column: str, default: str = "") -> str:
        return self.cells.get(column, default)


def detect_format(data: bytes, filename: str | None = None) -> TableFormat:
    """XLSX by its zip signature (or name), else CSV."""
    if data[:4] == XLSX_MAGIC or (filename or "").lower().endswith(".xlsx"):
        return "xlsx"
    return "csv"


def decode_csv(data: bytes) -> str:
    """The text of a CSV file: UTF-8 (BOM stripped) or GB18030/GBK; anything else is refused."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError as exc:
        raise RuleViolation(
            "The file is neither UTF-8 nor GBK/GB18030 text; save it from Excel as "
            "'CSV UTF-8' or as an .xlsx workbook.",
            code="unreadable_encoding",
            byte_offset=exc.start,
        ) from exc


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        if value.hour == value.minute == value.second == 0:
            return value.date().isoformat()
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def _raw_rows_csv(data: bytes) -> Iterator[list[str]]:
    text = decode_csv(data)
    yield from csv.reader(io.StringIO(text, newline=""))


def _raw_rows_xlsx(data: bytes | IO[bytes]) -> Iterator[list[str]]:
    from openpyxl import load_workbook

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        book = load_workbook(source, read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a broken zip / workbook
        raise RuleViolation(
            f"The file is not a readable .xlsx workbook ({type(exc).__name__}).",
            code="unreadable_workbook",
        ) from exc
    try:
        sheet = book.worksheets[0]
        for values in sheet.iter_rows(values_only=True):
            yield [_cell_text(v) for v in values]
    finally:
        book.close()


def _check_header(
    header: Sequence[str], required: Iterable[str], aliases: dict[str, str] | None
) -> list[str]:
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    if aliases:
        names = [aliases.get(n, n) for n in names]
    missing = [c for c in required if c not in names]
    if missing:
        raise RuleViolation(
            f"The header row lacks the column(s) {', '.join(missing)}; "
            f"found: {', '.join(n for n in names if n) or 'nothing'}.",
            code="bad_header",
            missing=missing,
            found=[n for n in names if n],
        )
    dupes = sorted({n for n in names if n and names.count(n) > 1})
    if dupes:
        raise RuleViolation(
            f"The header row names the column(s) {', '.join(dupes)} twice.",
            code="bad_header",
            duplicated=dupes,
        )
    return names


def iter_table(
    data: bytes,
    *,
    required: Iterable[str],
    filename: str | None = None,
    aliases: dict[str, str] | None = None,
) -> Iterator[TableRow]:
    """Rows of a CSV or XLSX file, streamed. ``required`` columns must be in the header
    (``aliases`` maps other header names, e.g. Chinese ones, onto ours)."""
    fmt = detect_format(data, filename)
    raw = _raw_rows_xlsx(data) if fmt == "xlsx" else _raw_rows_csv(data)
    header: list[str] | None = None
    line = 0
    for values in raw:
        line += 1
        if header is None:
            if not any(v.strip() for v in values):
                continue
            header = _check_header(values, list(required), aliases)
            continue
        if not any(v.strip() for v in values):
            continue
        cells = {
            name: value.strip()
            for name, value in zip(header, values, strict=False)
            if name and value is not None
        }
        yield TableRow(line, cells)
    if header is None:
        raise RuleViolation("The file is empty: no header row.", code="empty_file")


def read_table(
    data: bytes,
    *,
    required: Iterable[str],
    filename: str | None = None,
    aliases: dict[str, str] | None = None,
    max_rows: int | None = None,
) -> list[TableRow]:
    """All rows of a CSV or XLSX file; more than ``max_rows`` → ``too_many_rows``."""
    rows: list[TableRow] = []
    for row in iter_table(data, required=required, filename=filename, aliases=aliases):
        rows.append(row)
        if max_rows is not None and len(rows) > max_rows:
            raise RuleViolation(
                f"The file has more than {max_rows} rows; split it.",
                code="too_many_rows",
                max_rows=max_rows,
            )
    return rows


# --- writing tables (exports and reports) ---------------------------------------------------


def csv_safe(value: Any) -> Any:
    """A cell value safe to open in a spreadsheet: text that starts like a formula is quoted
    (CSV injection), booleans are spelled out."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def xlsx_text_cells(sheet: WriteOnlyWorksheet, values: Sequence[Any]) -> list[Any]:
    """Cells for a write-only sheet; strings stay strings (openpyxl reads '=…' as a formula)."""
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for value in values:
        cell = WriteOnlyCell(sheet, value)
        if isinstance(value, str):
            cell.data_type = "s"
        cells.append(cell)
    return cells


def write_csv(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A whole CSV file as Excel opens it: UTF-8 with a BOM, CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([csv_safe(v) for v in row] for row in rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def write_xlsx(sheet_name: str, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> bytes:
    """A whole one-sheet XLSX workbook (blocking: call it in a thread for big tables)."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(sheet_name)
    sheet.append(list(header))
    for row in rows:
        sheet.append(xlsx_text_cells(sheet, row))
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()
