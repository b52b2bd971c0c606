"""Reading a completions roster file (CSV in UTF-8 with or without BOM or GBK, or XLSX) into raw
rows, through the project's one table reader. Which rows are good is decided later, row by row."""

from __future__ import annotations

from libs.common.errors import RuleViolation
from libs.common.tabular import read_table_off_loop
from services.registry.service import RawRow

MAX_ROWS = 20_000
COLUMNS = ("id_number", "name", "hours", "passed")
# the usual Chinese headers of a roster exported from Excel
ALIASES = {
    "身份证号": "id_number",
    "身份证号码": "id_number",
    "公民身份号码": "id_number",
    "姓名": "name",
    "学时": "hours",
    "是否合格": "passed",
    "考核结果": "passed",
}
YES = {"true", "1", "yes", "y", "是", "合格", "通过", "passed"}
NO = {"false", "0", "no", "n", "否", "不合格", "未通过", "failed", ""}


def parse_passed(value: str) -> bool | None:
    text = value.strip().lower()
    if text in YES:
        return True
    if text in NO:
        return False
    return None


async def read_roster(filename: str, content: bytes) -> list[RawRow]:
    """Rows of a CSV or XLSX roster with the columns id_number, name, hours, passed, parsed in a
    worker thread within the table reader's limits (the event loop keeps answering)."""
    table = await read_table_off_loop(
        content, required=COLUMNS, filename=filename, aliases=ALIASES, max_rows=MAX_ROWS
    )
    if not table:
        raise RuleViolation("The roster has a header but no rows.", code="empty_file")
    return [
        RawRow(
            id_number=row.get("id_number"),
            name=row.get("name"),
            hours=row.get("hours"),
            passed=parse_passed(row.get("passed")),
            line=row.line,
        )
        for row in table
    ]
