"""``ce import-persons`` and ``ce import-learning`` against the real apps: an XLSX of 1,200 staff
in two batch requests (bad rows named by their spreadsheet line, a re-run registering nobody
twice), and a CSV export of city-platform records (refused rows in the report file, a re-run
counting every record as a duplicate)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path
from typing import Any

import httpx
from openpyxl import Workbook

from ce.imports import import_learning, import_persons
from libs.common.idnumber import check_character
from services.claims.models import Person
from services.claims.tests.harness import claims_stack, id_number, with_bad_checksum
from services.sync.tests.test_sync_api import Sync
from services.sync.tests.test_sync_api import start_simulator as start_simulator
from services.sync.tests.test_sync_api import sync as sync


class LoopTransport(httpx.BaseTransport):
    """A blocking client's requests, handled by an async client on the test's event loop (the
    imports are blocking code; the apps run in-process on that loop)."""

    def __init__(self, client: httpx.AsyncClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        future = asyncio.run_coroutine_threadsafe(self._send(request), self.loop)
        return future.result(timeout=120)

    async def _send(self, request: httpx.Request) -> httpx.Response:
        forwarded = httpx.Request(
            request.method, request.url, headers=request.headers, content=request.read()
        )
        r = await self.client.send(forwarded)
        return httpx.Response(r.status_code, headers=r.headers, content=await r.aread())


def blocking(client: httpx.AsyncClient) -> httpx.Client:
    return httpx.Client(transport=LoopTransport(client, asyncio.get_running_loop()))


async def test_import_persons_from_xlsx_in_batches_and_again(tmp_path: Path) -> None:
    async with claims_stack(tmp_path) as stack:
        unit = await stack.add_org("unit")
        book = Workbook()
        sheet = book.active
        assert sheet is not None
        sheet.append(["姓名", "身份证号", "手机", "affiliation_kind", "单位"])
        for n in range(1, 1201):
            number = with_bad_checksum(id_number(n)) if n == 700 else id_number(n)
            sheet.append([f"职工{n}", number, None, "unit", unit])
        path = tmp_path / "staff.xlsx"
        book.save(path)
        echoed: list[str] = []
        with blocking(stack.http) as http:
            for _ in range(2):
                echoed.clear()
                ok, failed = await asyncio.to_thread(
                    import_persons, http, path, "http://claims", stack.city, echoed.append
                )
                assert (ok, failed) == (1199, 1)
                assert echoed == [echoed[0]] and echoed[0].startswith(
                    "line 701: 422 invalid_id_number: "
                )
        async with stack.app.state.service.uow() as uow:
            names = set((await uow.session.scalars(Person.__table__.select())).all())
        assert len(names) == 1199


def _learning_row(n: int, **overrides: Any) -> dict[str, Any]:
    first17 = f"37040219800101{n % 1000:03d}"
    return {
        "record_id": f"zzzj-file-{n:06d}",
        "id_number": first17 + check_character(first17),
        "year": "2026",
        "subject": "public",
        "hours": "2.5",
        "course": "公需课",
        "completed_at": "2026-05-04",
        **overrides,
    }


async def test_import_learning_reports_refused_rows_and_is_rerunnable(
    sync: Sync, tmp_path: Path
) -> None:
    rows = [_learning_row(n) for n in range(1, 1101)]
    rows[4] = _learning_row(5, hours="200")
    rows[1050] = _learning_row(1051, record_id="")
    path = tmp_path / "platform.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    report = tmp_path / "errors.csv"
    headers = sync.auth("system")
    with blocking(sync.http) as http:
        first = await asyncio.to_thread(import_learning, http, path, "http://sync", headers, report)
        assert first == {"accepted": 1098, "duplicates": 0, "rejected": 2}
        with report.open(encoding="utf-8-sig") as fh:
            refused = list(csv.DictReader(fh))
        assert [(r["line"], r["record_id"]) for r in refused] == [
            ("6", "zzzj-file-000005"),
            ("1052", ""),
        ]
        assert "hours" in refused[0]["reason"]
        again = await asyncio.to_thread(import_learning, http, path, "http://sync", headers, report)
        assert again == {"accepted": 0, "duplicates": 1098, "rejected": 2}


def test_a_hostile_file_stops_both_imports_before_any_request(tmp_path: Path) -> None:
    """`ce import-persons` / `ce import-learning` read a local file within the CLI's limits: a
    hostile one ends the command (exit 2, the limit's code) before a request is sent (the URL
    here answers nothing)."""
    from typer.testing import CliRunner

    from ce.cli import app as cli
    from ce.imports import LEARNING_COLUMNS, PERSON_COLUMNS
    from tests import hostile_tables as hostile

    cases = [
        ("import-persons", "staff.xlsx", hostile.declared_dimension_bomb(2000, PERSON_COLUMNS)),
        ("import-persons", "staff.csv", hostile.wide_csv_header(16_000, PERSON_COLUMNS)),
        ("import-learning", "export.xlsx", hostile.diluted_bomb(LEARNING_COLUMNS)),
        ("import-learning", "export.csv", hostile.long_cell_csv(131_073, LEARNING_COLUMNS)),
    ]
    expected = [
        "sheet_too_large",
        "too_many_columns",
        "compression_ratio_too_high",
        "cell_too_large",
    ]
    for (command, name, data), code in zip(cases, expected, strict=True):
        path = tmp_path / name
        path.write_bytes(data)
        result = CliRunner().invoke(
            cli, [command, str(path), "--url", "http://127.0.0.1:9", "--token", "t"]
        )
        assert result.exit_code == 2, result.output
        assert f"error: {code}:" in result.output
