"""Hostile spreadsheets and CSV files, built by hand as an attacker would (a few KB each): the
attacks of issue 17 on every import, for the table reader's tests and the running services'."""

from __future__ import annotations

import io
import os
import zipfile
from xml.sax.saxutils import escape

CONTENT_TYPES = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">
<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>
<Default Extension="xml" ContentType="application/xml"/>
<Override PartName="/xl/workbook.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>
<Override PartName="/xl/worksheets/sheet1.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>
<Override PartName="/xl/sharedStrings.xml"
 ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>
</Types>"""
ROOT_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="xl/workbook.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument"/>
</Relationships>"""
WORKBOOK = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"
 xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">
<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>"""
WORKBOOK_RELS = """<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">
<Relationship Id="rId1" Target="worksheets/sheet1.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet"/>
<Relationship Id="rId2" Target="sharedStrings.xml"
 Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/sharedStrings"/>
</Relationships>"""
NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"

ROSTER_HEADER = ("id_number", "name", "hours", "passed")


def _inline(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{escape(text)}</t></is></c>'


def workbook(
    rows_xml: str,
    *,
    dimension: str | None = None,
    shared_strings: list[str] | None = None,
    after_rows: str = "",
) -> bytes:
    """An XLSX of one sheet whose ``<sheetData>`` is ``rows_xml`` (then ``after_rows``),
    deflated."""
    dim = f'<dimension ref="{dimension}"/>' if dimension else ""
    sheet = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{NS}">'
        f"{dim}<sheetData>{rows_xml}</sheetData>{after_rows}</worksheet>"
    )
    strings = shared_strings or []
    sst = (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><sst xmlns="{NS}" '
        f'count="{len(strings)}" uniqueCount="{len(strings)}">'
        + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
        + "</sst>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        z.writestr("[Content_Types].xml", CONTENT_TYPES)
        z.writestr("_rels/.rels", ROOT_RELS)
        z.writestr("xl/workbook.xml", WORKBOOK)
        z.writestr("xl/_rels/workbook.xml.rels", WORKBOOK_RELS)
        z.writestr("xl/worksheets/sheet1.xml", sheet)
        z.writestr("xl/sharedStrings.xml", sst)
    return out.getvalue()


def header_row(columns: tuple[str, ...] = ROSTER_HEADER) -> str:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return (
        '<row r="1">'
        + "".join(_inline(f"{letters[i]}1", c) for i, c in enumerate(columns))
        + ("</row>")
    )


def declared_dimension_bomb(
    last_row: int = 2000, columns: tuple[str, ...] = ROSTER_HEADER, *, declared: bool = True
) -> bytes:
    """~1.5 KB declaring ``A1:XFD{last_row}`` with a cell at that row: openpyxl pads every row to
    16,384 columns (32.8 M empty cells for 2,000 rows). Undeclared: the same cells, no
    ``<dimension>``, and the last one in column XFD."""
    cell = _inline(f"A{last_row}" if declared else f"XFD{last_row}", "x")
    return workbook(
        header_row(columns) + f'<row r="{last_row}">{cell}</row>',
        dimension=f"A1:XFD{last_row}" if declared else None,
    )


def far_row(last_row: int = 1_048_576, columns: tuple[str, ...] = ROSTER_HEADER) -> bytes:
    """No declared dimension, one cell in the sheet's last row: a million rows to walk."""
    last = f'<row r="{last_row}">{_inline(f"A{last_row}", "x")}</row>'
    return workbook(header_row(columns) + last)


def shared_strings_bomb(megabytes: int = 4, columns: tuple[str, ...] = ROSTER_HEADER) -> bytes:
    """A few KB inflating some hundred times into ``megabytes`` MB of shared strings."""
    one = "枣庄市继续教育学时" * 4
    count = megabytes * 1024 * 1024 // (len(one.encode()) + 20)
    strings = [one] * count  # the same string over and over: deflate's best case
    rows = header_row(columns) + '<row r="2"><c r="A2" t="s"><v>0</v></c></row>'
    return workbook(rows, dimension="A1:D2", shared_strings=strings)


def diluted_bomb(columns: tuple[str, ...] = ROSTER_HEADER) -> bytes:
    """The shared-strings bomb beside 100 KB of stored noise: the archive as a whole inflates
    only ~35 times, its strings part still ~270 times."""
    out = io.BytesIO(shared_strings_bomb(4, columns))
    with zipfile.ZipFile(out, "a") as z:
        z.writestr("xl/media/noise.bin", os.urandom(100_000), compress_type=zipfile.ZIP_STORED)
    return out.getvalue()


def merged_cells_after_rows(
    count: int = 200_000, columns: tuple[str, ...] = ROSTER_HEADER
) -> bytes:
    """~1 MB: a header and one row, then ``count`` merged cells (openpyxl spent ~4 s on 200,000
    of them after the last row)."""
    row = '<row r="2">' + _inline("A2", "U-1") + _inline("B2", "单位") + "</row>"
    merges = "".join(f'<mergeCell ref="C{i}:D{i}"/>' for i in range(3, count + 3))
    return workbook(
        header_row(columns) + row,
        dimension="A1:B2",
        after_rows=f'<mergeCells count="{count}">{merges}</mergeCells>',
    )


def wide_csv_header(count: int = 16_000, columns: tuple[str, ...] = ROSTER_HEADER) -> bytes:
    """A ~100 KB CSV header of ``count`` columns (the import's own among them)."""
    names = [*columns, *(f"c{i}" for i in range(count - len(columns)))]
    return (",".join(names) + "\r\n" + ",".join("1" for _ in columns) + "\r\n").encode()


def long_cell_csv(chars: int = 131_073, columns: tuple[str, ...] = ROSTER_HEADER) -> bytes:
    """A CSV whose second cell is longer than the csv module's default field limit."""
    cells = ["1"] * len(columns)
    cells[1] = "张" * chars
    return (",".join(columns) + "\r\n" + ",".join(cells) + "\r\n").encode()
