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

A file is data from outside: every read is bounded (:class:`TableLimits`: rows, columns, cells,
characters per cell, an XLSX's declared dimension, inflated size and compression ratio, shared
strings, time), so a small hostile file cannot hold a CPU or the memory; over a limit is a 422
problem whose ``code`` names it. An XLSX is read in openpyxl's streaming (read-only) mode after its
zip directory was checked. A service parses off its event loop (:func:`read_table_off_loop`).
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import re
import time
import weakref
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Literal, Required, TypedDict, Unpack

import anyio
import anyio.to_thread

from libs.common.errors import RuleViolation

if TYPE_CHECKING:
    from openpyxl.worksheet._write_only import WriteOnlyWorksheet

TableFormat = Literal["csv", "xlsx"]

XLSX_MAGIC = b"PK\x03\x04"

# a workbook smaller than this when inflated is never refused for its compression ratio (tiny
# parts compress unevenly; a bomb needs size to hurt)
RATIO_FLOOR_BYTES = 1024 * 1024
# files parsed at once per process: the others wait, so parsing never takes every core
PARSE_CONCURRENCY = 2


class TableTooLarge(RuleViolation):
    """A file over one of the :class:`TableLimits`; ``code`` and ``limit`` name which."""

    status = 422
    title = "The file is over a limit of the import"


@dataclass(frozen=True, slots=True)
class TableLimits:
    """What one import reads at most. Each limit has its problem ``code``:

    - ``max_sheet_rows`` — physical rows, header and blank ones included (``sheet_too_large``);
    - ``max_columns`` — cells in a row, the header's included (``too_many_columns``);
    - ``max_cells`` — cells in all rows (``too_many_cells``); an XLSX whose declared dimension
      (``<dimension ref=…>``) is over the rows, columns or cells is refused before reading
      (``sheet_too_large``);
    - ``max_cell_chars`` — characters in a cell, Excel's own 32,767 (``cell_too_large``);
    - ``max_decompressed_bytes`` — an XLSX's parts inflated, from its zip directory
      (``decompressed_too_large``); ``max_compression_ratio`` — inflated ÷ compressed, of the
      whole and of each part, checked above 1 MiB (``compression_ratio_too_high``);
      ``max_shared_strings_bytes`` — the shared strings part (``shared_strings_too_large``);
      ``max_xlsx_members`` — parts in the zip;
    - ``time_budget_s`` — wall time of the parse, checked per row (``parse_time_exceeded``).
    """

    max_sheet_rows: int = 50_000
    max_columns: int = 256
    max_cells: int = 1_000_000
    max_cell_chars: int = 32_767
    max_decompressed_bytes: int = 32 * 1024 * 1024
    max_compression_ratio: int = 100
    max_shared_strings_bytes: int = 16 * 1024 * 1024
    max_xlsx_members: int = 1_000
    time_budget_s: float | None = 20.0


# what a service reads from an uploaded file (the org import, the roster upload)
DEFAULT_LIMITS = TableLimits()
# what `ce import-persons` / `ce import-learning` read from a local file: a whole city's year
# (an XLSX holds at most 1,048,576 rows), no time budget (the operator can stop it)
CLI_LIMITS = TableLimits(
    max_sheet_rows=10_000_000,
    max_cells=100_000_000,
    max_decompressed_bytes=2 * 1024 * 1024 * 1024,
    max_shared_strings_bytes=512 * 1024 * 1024,
    time_budget_s=None,
)


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


class _Budget:
    """The limits of one read, and the clock of its time budget."""

    def __init__(self, limits: TableLimits) -> None:
        self.limits = limits
        self.deadline = (
            None if limits.time_budget_s is None else time.monotonic() + limits.time_budget_s
        )
        self.cells = 0

    def row(self, line: int, width: int) -> None:
        """Checks one physical row (``line`` as in a spreadsheet, ``width`` cells) before any
        work is spent on its cells."""
        limits = self.limits
        if line > limits.max_sheet_rows:
            raise TableTooLarge(
                f"The sheet has more than {limits.max_sheet_rows:,} rows (blank ones included); "
                "split it.",
                code="sheet_too_large",
                limit="max_sheet_rows",
                max_sheet_rows=limits.max_sheet_rows,
            )
        if width > limits.max_columns:
            raise TableTooLarge(
                f"Line {line} has {width:,} columns; at most {limits.max_columns} are read.",
                code="too_many_columns",
                limit="max_columns",
                max_columns=limits.max_columns,
                line=line,
            )
        self.cells += width
        if self.cells > limits.max_cells:
            raise TableTooLarge(
                f"The file has more than {limits.max_cells:,} cells; split it.",
                code="too_many_cells",
                limit="max_cells",
                max_cells=limits.max_cells,
            )
        self.tick()

    def tick(self) -> None:
        """Refuses the file once its time budget is spent."""
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise TableTooLarge(
                f"Reading the file took more than {self.limits.time_budget_s:g} s; split it.",
                code="parse_time_exceeded",
                limit="time_budget_s",
                time_budget_s=self.limits.time_budget_s,
            )

    def cell(self, line: int, value: str) -> str:
        if len(value) > self.limits.max_cell_chars:
            raise _cell_too_large(self.limits.max_cell_chars, line)
        return value


def _cell_too_large(max_chars: int, line: int) -> TableTooLarge:
    return TableTooLarge(
        f"Line {line} has a cell longer than {max_chars:,} characters (Excel's own limit).",
        code="cell_too_large",
        limit="max_cell_chars",
        max_cell_chars=max_chars,
        line=line,
    )


def _raw_rows_csv(data: bytes, budget: _Budget) -> Iterator[tuple[int, list[str]]]:
    text = decode_csv(data)
    # the csv module refuses a field over its (process-wide) limit; ours is lower and checked
    # below, so a field the module refuses is over ours too
    reader = csv.reader(io.StringIO(text, newline=""))
    line = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "field larger than field limit" in str(exc):
                raise _cell_too_large(budget.limits.max_cell_chars, line + 1) from exc
            raise RuleViolation(
                f"The CSV file cannot be read near line {reader.line_num}: {exc}.",
                code="unreadable_csv",
                line=reader.line_num,
            ) from exc
        line += 1
        budget.row(line, len(values))
        for value in values:
            budget.cell(line, value)
        yield line, values


def _unreadable_workbook(exc: Exception) -> RuleViolation:
    return RuleViolation(
        f"The file is not a readable .xlsx workbook ({type(exc).__name__}).",
        code="unreadable_workbook",
    )


def _check_archive(data: bytes, limits: TableLimits) -> None:
    """Refuses a workbook whose parts would inflate past the limits, from the sizes its zip
    directory declares (Python's zip reader never inflates a member past its declared size: a
    lying size is a CRC error), before any XML is parsed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError) as exc:
        raise _unreadable_workbook(exc) from exc
    if len(members) > limits.max_xlsx_members:
        raise TableTooLarge(
            f"The workbook has {len(members):,} parts; at most {limits.max_xlsx_members} are read.",
            code="decompressed_too_large",
            limit="max_xlsx_members",
            max_xlsx_members=limits.max_xlsx_members,
        )
    inflated = sum(m.file_size for m in members)
    compressed = sum(m.compress_size for m in members)
    if inflated > limits.max_decompressed_bytes:
        raise TableTooLarge(
            f"The workbook inflates to {inflated:,} bytes; at most "
            f"{limits.max_decompressed_bytes:,} are read.",
            code="decompressed_too_large",
            limit="max_decompressed_bytes",
            max_decompressed_bytes=limits.max_decompressed_bytes,
        )
    # the whole archive and each part: a stored (incompressible) part cannot hide a bomb
    for size, packed in [
        (inflated, compressed),
        *((m.file_size, m.compress_size) for m in members),
    ]:
        if size > RATIO_FLOOR_BYTES and size > limits.max_compression_ratio * max(packed, 1):
            raise TableTooLarge(
                f"The workbook inflates {size / max(packed, 1):,.0f} times its size; at most "
                f"{limits.max_compression_ratio} times is read (a zip bomb?).",
                code="compression_ratio_too_high",
                limit="max_compression_ratio",
                max_compression_ratio=limits.max_compression_ratio,
            )
    strings = sum(m.file_size for m in members if _is_shared_strings(m.filename))
    if strings > limits.max_shared_strings_bytes:
        raise TableTooLarge(
            f"The workbook's shared strings are {strings:,} bytes; at most "
            f"{limits.max_shared_strings_bytes:,} are read.",
            code="shared_strings_too_large",
            limit="max_shared_strings_bytes",
            max_shared_strings_bytes=limits.max_shared_strings_bytes,
        )


def _is_shared_strings(name: str) -> bool:
    # openpyxl finds the part by its content type, wherever it is; any part named like it counts
    return "sharedstrings" in name.rsplit("/", 1)[-1].lower()


def _check_dimension(declared: tuple[int | None, ...], limits: TableLimits) -> None:
    min_col, min_row, max_col, max_row = declared
    if max_col is None or max_row is None:
        return
    columns = max_col - (min_col or 1) + 1
    rows = max_row - (min_row or 1) + 1
    if (
        columns > limits.max_columns
        or max_row > limits.max_sheet_rows
        or (columns * rows > limits.max_cells)
    ):
        raise TableTooLarge(
            f"The sheet declares {rows:,} rows × {columns:,} columns; at most "
            f"{limits.max_sheet_rows:,} rows, {limits.max_columns} columns and "
            f"{limits.max_cells:,} cells are read.",
            code="sheet_too_large",
            limit="declared_dimension",
            max_sheet_rows=limits.max_sheet_rows,
            max_columns=limits.max_columns,
            max_cells=limits.max_cells,
        )


class _UntilSheetDataEnds:
    """A sheet part's XML up to the end of ``<sheetData>`` (then the worksheet's closing tag):
    the rows are all an import reads, and what follows them (merged cells, conditional formats,
    …) would be parsed at length with no row to check the budget at. Each read checks the time
    budget."""

    _END = re.compile(rb"</([\w.-]+:)?sheetData\s*>|<([\w.-]+:)?sheetData\s*/>")
    _HELD = 64  # bytes held back so that a tag split across two reads is still found

    def __init__(self, source: IO[bytes], budget: _Budget) -> None:
        self.source, self.budget = source, budget
        self.held = b""
        self.ended = False

    def read(self, size: int = -1) -> bytes:
        self.budget.tick()
        if self.ended:
            return b""
        data = self.held
        while True:
            chunk = self.source.read(size if size > 0 else 64 * 1024)
            data += chunk
            found = self._END.search(data)
            if found:
                self.ended = True
                prefix = found.group(1) or found.group(2) or b""
                return data[: found.end()] + b"</" + prefix + b"worksheet>"
            if not chunk:  # the end of the part (no sheetData: the parser says what is wrong)
                self.ended = True
                return data
            if len(data) > self._HELD:
                self.held = data[-self._HELD :]
                return data[: -self._HELD]


def _raw_rows_xlsx(data: bytes, budget: _Budget) -> Iterator[tuple[int, list[str]]]:
    from openpyxl import load_workbook
    from openpyxl.worksheet._read_only import ReadOnlyWorksheet
    from openpyxl.worksheet._reader import WorkSheetParser

    _check_archive(data, budget.limits)
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises several kinds for a broken zip / workbook
        raise _unreadable_workbook(exc) from exc
    try:
        sheet = book.worksheets[0] if book.worksheets else None
        if not isinstance(sheet, ReadOnlyWorksheet):
            raise RuleViolation("The workbook has no sheet.", code="empty_file")
        _check_dimension(
            (sheet.min_column, sheet.min_row, sheet.max_column, sheet.max_row), budget.limits
        )
        # openpyxl's row iterator pads every row to the declared dimension and yields every
        # missing row (``<dimension ref="A1:XFD…"/>`` or one cell in row 1,048,576: millions of
        # empty cells); its streaming parser gives the rows as stored, with their numbers, so
        # each is checked before a cell of it is built
        with sheet._get_source() as source:
            parser = WorkSheetParser(
                _UntilSheetDataEnds(source, budget),
                sheet._shared_strings,
                data_only=True,
                epoch=book.epoch,
                date_formats=book._date_formats,
                timedelta_formats=book._timedelta_formats,
            )
            for line, cells in parser.parse():
                width = max((int(c["column"]) for c in cells), default=0)
                budget.row(line, width)
                values = [""] * width
                for cell in cells:
                    values[int(cell["column"]) - 1] = budget.cell(line, _cell_text(cell["value"]))
                yield line, values
    except (RuleViolation, GeneratorExit):
        raise
    except Exception as exc:  # a broken sheet part (bad XML, bad cell reference)
        raise _unreadable_workbook(exc) from exc
    finally:
        book.close()


def _check_header(
    header: Sequence[str], required: Iterable[str], aliases: dict[str, str] | None
) -> list[str]:
    names = [h.strip().lstrip("\ufeff").lower() for h in header]
    if aliases:
        names = [aliases.get(n, n) for n in names]
    present = set(names)
    missing = [c for c in required if c not in present]
    if missing:
        found = [n for n in names if n]
        raise RuleViolation(
            f"The header row lacks the column(s) {', '.join(missing)}; "
            f"found: {', '.join(found[:50]) or 'nothing'}{' …' if len(found) > 50 else ''}.",
            code="bad_header",
            missing=missing,
            found=found[:50],
        )
    counts = Counter(n for n in names if n)
    dupes = sorted(n for n, k in counts.items() if k > 1)
    if dupes:
        raise RuleViolation(
            f"The header row names the column(s) {', '.join(dupes[:50])} twice.",
            code="bad_header",
            duplicated=dupes[:50],
        )
    return names


def iter_table(
    data: bytes,
    *,
    required: Iterable[str],
    filename: str | None = None,
    aliases: dict[str, str] | None = None,
    limits: TableLimits | None = None,
) -> Iterator[TableRow]:
    """Rows of a CSV or XLSX file, streamed. ``required`` columns must be in the header
    (``aliases`` maps other header names, e.g. Chinese ones, onto ours). Over one of ``limits``
    (:data:`DEFAULT_LIMITS` unless given) → :class:`TableTooLarge` naming it."""
    budget = _Budget(limits or DEFAULT_LIMITS)
    fmt = detect_format(data, filename)
    header: list[str] | None = None
    raw = _raw_rows_xlsx(data, budget) if fmt == "xlsx" else _raw_rows_csv(data, budget)
    for line, values in raw:
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
    limits: TableLimits | None = None,
) -> list[TableRow]:
    """All rows of a CSV or XLSX file; more than ``max_rows`` → ``too_many_rows``."""
    rows: list[TableRow] = []
    table = iter_table(data, required=required, filename=filename, aliases=aliases, limits=limits)
    for row in table:
        rows.append(row)
        if max_rows is not None and len(rows) > max_rows:
            raise RuleViolation(
                f"The file has more than {max_rows} rows; split it.",
                code="too_many_rows",
                max_rows=max_rows,
            )
    return rows


_limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _parse_limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _limiters.get(loop)
    if limiter is None:
        limiter = _limiters[loop] = anyio.CapacityLimiter(PARSE_CONCURRENCY)
    return limiter


class ReadOptions(TypedDict, total=False):
    """The keyword arguments of :func:`read_table`."""

    required: Required[Iterable[str]]
    filename: str | None
    aliases: dict[str, str] | None
    max_rows: int | None
    limits: TableLimits | None


async def read_table_off_loop(data: bytes, **options: Unpack[ReadOptions]) -> list[TableRow]:
    """:func:`read_table` in a worker thread, so that the service's event loop (its
    ``/healthz``, every other request) keeps answering while a file is parsed; at most
    :data:`PARSE_CONCURRENCY` files are parsed at once per process (the others wait their
    turn), each within its time budget."""
    return await anyio.to_thread.run_sync(
        functools.partial(read_table, data, **options), limiter=_parse_limiter()
    )


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
