"""The compliance report as files: CSV (UTF-8 with BOM, so Excel reads Chinese) and XLSX (a
write-only workbook in a temp file: a ``compliance`` sheet and a ``summary`` sheet). Both hold
the whole scope, read a chunk at a time (:func:`compliance.iter_compliance`), rows ordered by
org id, then person id."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from openpyxl import Workbook

from libs.common.downloads import file_headers
from libs.common.service import ServiceState
from libs.common.tabular import csv_safe, write_csv, write_xlsx, xlsx_text_cells
from services.claims import rules
from services.claims.compliance import (
    OrgCompliance,
    PersonCompliance,
    compliance_summary,
    iter_compliance,
    report_head,
)
from services.claims.scope import OrgScope

COLUMNS = (
    "person_id",
    "name",
    "id_number_masked",
    "org_id",
    "org_name",
    "credited_public",
    "credited_professional",
    "credited_total",
    "pending_public",
    "pending_professional",
    "gap_public",
    "gap_professional",
    "compliant",
    "self_appraising",
)
CSV_MEDIA_TYPE = "text/csv; charset=utf-8"
XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def row(person: PersonCompliance) -> list[Any]:
    """The values of :data:`COLUMNS`."""
    figures = person.standing.figures()  # credited, pending and gaps, in the order of COLUMNS
    compliant = figures[5] == 0 and figures[6] == 0
    p = person
    return [
        *(p.id, p.name, p.id_number_masked, p.org_id, p.org_name or ""),
        *(*figures, compliant, p.self_appraising),
    ]


def csv_row(person: PersonCompliance) -> list[Any]:
    """:func:`row` for a CSV file: text that a spreadsheet would read as a formula is quoted,
    the flag spelled out (``csv_safe``; the hours are numbers, safe as they are)."""
    values = row(person)
    for i in (0, 1, 2, 3, 4, 12):
        values[i] = csv_safe(values[i])
    return values


def attachment(
    ruleset: rules.RuleSet, scope: OrgScope, ext: str, report: str = "compliance"
) -> dict[str, str]:
    """The download headers of the report's file."""
    which = scope.org.id if scope.org is not None else "city"
    return file_headers(f"{report}-{ruleset.year}-{which}.{ext}")


async def csv_stream(
    state: ServiceState, ruleset: rules.RuleSet, scope: OrgScope
) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode("utf-8")
    async for chunk in iter_compliance(state, ruleset, scope):
        buffer.seek(0)
        buffer.truncate()
        writer.writerows(csv_row(person) for person in chunk)
        yield buffer.getvalue().encode("utf-8")


async def xlsx_file(state: ServiceState, ruleset: rules.RuleSet, scope: OrgScope) -> str:
    """The report as an .xlsx temp file (the caller deletes it). Rows go to openpyxl's own temp
    files as they come, so memory stays flat; the zip is written in a thread."""
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("compliance")
    sheet.append(COLUMNS)
    async for chunk in iter_compliance(state, ruleset, scope):
        for person in chunk:
            sheet.append(xlsx_text_cells(sheet, row(person)))
    async with state.uow() as uow:
        summary = await compliance_summary(uow.session, ruleset, scope)
    head = report_head(ruleset, scope, state.now())
    info = workbook.create_sheet("summary")
    org = head.org
    info.append(["year", ruleset.year])
    info.append(xlsx_text_cells(info, ["org_id", org.id if org else ""]))
    info.append(xlsx_text_cells(info, ["org_name", org.name if org else "(city)"]))
    info.append(["required_public", head.required.public])
    info.append(["required_professional", head.required.professional])
    info.append(["generated_at", head.generated_at])
    info.append(["persons", summary.persons])
    info.append(["compliant", summary.compliant])
    info.append(["non_compliant", summary.non_compliant])
    info.append([])
    info.append(["org_id", "org_name", "persons", "compliant", "non_compliant"])
    for o in summary.by_org:
        values = [o.org_id, o.org_name or "", o.persons, o.compliant, o.non_compliant]
        info.append(xlsx_text_cells(info, values))
    fd, path = tempfile.mkstemp(prefix="compliance-", suffix=".xlsx")
    os.close(fd)
    try:
        await asyncio.to_thread(workbook.save, path)
    except BaseException:
        os.unlink(path)
        raise
    return path


# --- the report by org ----------------------------------------------------------------------

BY_ORG_COLUMNS = (
    "org_id",
    "code",
    "name",
    "type",
    "persons",
    "compliant",
    "non_compliant",
    "compliance_rate",
    "gap_public",
    "gap_professional",
    "short_public",
    "short_professional",
    "self_appraising",
)


async def by_org_file(format: str, rows: list[OrgCompliance]) -> tuple[bytes, str]:
    """The by-org report (its rows and the total row) as a CSV or XLSX file, and its type."""
    table = []
    for row in rows:
        view = row.view()
        table.append(
            (
                view.org_id or "",
                view.code or "",
                view.name,
                view.type or "",
                view.persons,
                view.compliant,
                view.non_compliant,
                view.compliance_rate,
                view.gaps.public,
                view.gaps.professional,
                view.short.public,
                view.short.professional,
                view.self_appraising,
            )
        )
    if format == "csv":
        return write_csv(BY_ORG_COLUMNS, table), CSV_MEDIA_TYPE
    body = await asyncio.to_thread(write_xlsx, "compliance_by_org", BY_ORG_COLUMNS, table)
    return body, XLSX_MEDIA_TYPE
