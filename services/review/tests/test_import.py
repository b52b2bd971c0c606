"""Bulk import of the org directory (POST /v1/orgs/import): CSV in UTF-8 with a BOM and in GBK,
XLSX; all or nothing with per-row reasons; re-runnable; parents by code, from the directory or the
same file. And the size that matters: 500 orgs at once, on SQLite and on PostgreSQL, routing
claims correctly afterwards."""

from __future__ import annotations

import asyncio
import io
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from openpyxl import Workbook

from services.review.directory_api import ImportRejected
from services.review.tests.support import Review, csv_bytes, directory_of, review_app
from tests import hostile_tables as hostile
from tests.support import (
    assert_problem,
    assert_responsive,
    healthz_watched,
    served_on_loopback,
)


def xlsx_bytes(rows: list[tuple[str, ...]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["Code", "Name", "Type", "Parent_Code", "备注"])
    for row in rows:
        sheet.append([*row, "note"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def upload(review: Review, data: bytes, filename: str = "orgs.csv") -> httpx.Response:
    return await review.http.post(
        "/v1/orgs/import", files={"file": (filename, data)}, headers=review.city, timeout=120
    )


async def codes_present(review: Review, codes: list[str]) -> set[str]:
    found: set[str] = set()
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
        page = (await review.http.get("/v1/orgs", params=params, headers=review.city)).json()
        found |= {o["code"] for o in page["items"]} & set(codes)
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def city_code(review: Review) -> str:
    r = await review.http.get(f"/v1/orgs/{review.orgs['C']}", headers=review.city)
    return str(r.json()["code"])


def tree(tag: str, city: str) -> list[tuple[str, ...]]:
    return [
        (f"{tag}-U1", "枣庄市立医院", "unit", f"{tag}-D"),  # its parent comes later in the file
        (f"{tag}-D", "薛城区人社局", "district", city),
        (f"{tag}-P", "市卫健委", "department", city),
        (f"{tag}-U2", "枣庄市中医医院", "unit", f"{tag}-P"),
        (f"{tag}-A", "薛城区人才服务中心", "agency", f"{tag}-D"),
    ]


@pytest.mark.parametrize(
    ("encoding", "kind"),
    [("utf-8-sig", "csv"), ("utf-8", "csv"), ("gbk", "csv"), (None, "xlsx")],
)
async def test_import_creates_then_rerun_is_a_no_op(
    review: Review, encoding: str | None, kind: str
) -> None:
    tag = f"I{uuid.uuid4().hex[:6]}"
    rows = tree(tag, await city_code(review))
    data = csv_bytes(rows, encoding) if encoding else xlsx_bytes(rows)
    r = await upload(review, data, f"orgs.{kind}")
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["created"], body["updated"], body["unchanged"]) == (5, 0, 0)
    assert [(x["line"], x["code"], x["status"]) for x in body["rows"]] == [
        (i + 2, row[0], "created") for i, row in enumerate(rows)
    ]
    ids = {x["code"]: x["id"] for x in body["rows"]}
    unit = (await review.http.get(f"/v1/orgs/{ids[f'{tag}-U1']}", headers=review.city)).json()
    assert (unit["name"], unit["parent_id"]) == ("枣庄市立医院", ids[f"{tag}-D"])
    [event] = await review.outbox(ids[f"{tag}-U1"])
    assert event.type == "org.upserted" and event.data["parent_id"] == ids[f"{tag}-D"]

    again = await upload(review, data, f"orgs.{kind}")
    assert again.status_code == 200, again.text
    assert (again.json()["created"], again.json()["unchanged"]) == (0, 5)
    assert {x["id"] for x in again.json()["rows"]} == set(ids.values())
    assert len(await review.outbox(ids[f"{tag}-U1"])) == 1  # a no-op publishes nothing

    # imported orgs route claims: unit → its district / department, agency → its district
    for first, authority in ((f"{tag}-U1", f"{tag}-D"), (f"{tag}-U2", f"{tag}-P")):
        label = f"U-{first}"  # the label's first letter tells the reviewer's role
        review.orgs[label] = ids[first]
        claim_id = await review.submit(label)
        assert (await review.decide(await review.open_task(claim_id), label)).status_code == 200
        audit = await review.open_task(claim_id)
        assert audit["org_id"] == ids[authority]


async def test_changed_rows_update_rename_and_move(review: Review) -> None:
    tag = f"M{uuid.uuid4().hex[:6]}"
    rows = tree(tag, await city_code(review))
    first = (await upload(review, csv_bytes(rows))).json()
    ids = {x["code"]: x["id"] for x in first["rows"]}
    rows[0] = (f"{tag}-U1", "枣庄市立医院（新院区）", "unit", f"{tag}-P")  # renamed and moved
    r = await upload(review, csv_bytes(rows))
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["updated"], r.json()["unchanged"]) == (0, 1, 4)
    assert r.json()["rows"][0]["status"] == "updated"
    unit = (await review.http.get(f"/v1/orgs/{ids[f'{tag}-U1']}", headers=review.city)).json()
    assert (unit["name"], unit["parent_id"]) == ("枣庄市立医院（新院区）", ids[f"{tag}-P"])
    events = await review.outbox(ids[f"{tag}-U1"])
    assert events[-1].data["parent_id"] == ids[f"{tag}-P"] and len(events) == 2


async def test_a_bad_file_imports_nothing_and_names_every_bad_row(review: Review) -> None:
    tag = f"B{uuid.uuid4().hex[:6]}"
    city = await city_code(review)
    await review.add(f"Dgone{tag}", "district", "C")
    await review.patch(f"Dgone{tag}", active=False)
    gone = await review.http.get(f"/v1/orgs/{review.orgs[f'Dgone{tag}']}", headers=review.city)
    u1 = (await review.http.get(f"/v1/orgs/{review.orgs['U1']}", headers=review.city)).json()
    u2 = (await review.http.get(f"/v1/orgs/{review.orgs['U2']}", headers=review.city)).json()
    rows = [
        (f"{tag}-D", "区", "district", city),  # fine on its own
        (f"{tag}-X", "x", "unit", f"{tag}-NOPE"),  # line 3: unknown parent
        (f"{tag}-D", "again", "district", city),  # line 4: duplicate code
        (f"{tag}-U", "u", "unit", f"{tag}-U0"),  # line 5: a unit under a unit
        (f"{tag}-U0", "u0", "unit", f"{tag}-D"),
        (f"{tag}-A", "a", "agency", u2["code"]),  # line 7: agency under a unit
        (f"{tag}-H", "h", "hospital", city),  # line 8: no such type
        (f"{tag}-S", "s", "unit", f"{tag}-S"),  # line 9: under itself
        (f"{tag}-G", "g", "unit", gone.json()["code"]),  # line 10: deactivated parent
        (u1["code"], "now a district", "district", city),  # line 11: type change
        (f"{tag}-E", "", "unit", f"{tag}-D"),  # line 12: no name
    ]
    r = await upload(review, csv_bytes(rows))
    problem = assert_problem(r, 422, "import_rejected")
    assert "nothing was imported" in problem["detail"]
    ImportRejected.model_validate(problem)  # as the OpenAPI document describes it
    assert [(row["line"], [e["code"] for e in row["errors"]]) for row in problem["rows"]] == [
        (3, ["unknown_parent_code"]),
        (4, ["duplicate_code_in_file"]),
        (5, ["invalid_org_parent"]),
        (7, ["invalid_org_parent"]),
        (8, ["invalid_org_type"]),
        (9, ["org_cycle"]),
        (10, ["parent_inactive"]),
        (11, ["org_type_change"]),
        (12, ["missing_name"]),
    ]
    assert await codes_present(review, [r[0] for r in rows if r[0] != u1["code"]]) == set()
    after = (await review.http.get(f"/v1/orgs/{review.orgs['U1']}", headers=review.city)).json()
    assert after == u1


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        (b"code,name,kind\r\nX,x,unit\r\n", "bad_header"),
        (b"code,name,type,parent_code\r\nX,\xff\xfe\xff,unit,\r\n", "unreadable_encoding"),
        (b"", "empty_file"),
    ],
)
async def test_unreadable_files(review: Review, data: bytes, rule: str) -> None:
    assert_problem(await upload(review, data), 422, rule)


COLUMNS = ("code", "name", "type", "parent_code")


@pytest.mark.parametrize(
    ("name", "data", "rule"),
    [
        ("orgs.xlsx", hostile.declared_dimension_bomb(2000, COLUMNS), "sheet_too_large"),
        ("orgs.xlsx", hostile.declared_dimension_bomb(1_048_576, COLUMNS), "sheet_too_large"),
        ("orgs.xlsx", hostile.shared_strings_bomb(4, COLUMNS), "compression_ratio_too_high"),
        ("orgs.csv", hostile.wide_csv_header(16_000, COLUMNS), "too_many_columns"),
        ("orgs.csv", hostile.long_cell_csv(131_073, COLUMNS), "cell_too_large"),
    ],
    ids=["A1:XFD2000", "A1:XFD1048576", "shared-strings", "16000-columns", "long-cell"],
)
async def test_hostile_files_are_refused_in_a_second_naming_the_limit(
    review: Review, name: str, data: bytes, rule: str
) -> None:
    started = time.monotonic()
    problem = assert_problem(await upload(review, data, name), 422, rule)
    assert time.monotonic() - started < 1.0
    assert problem["limit"]


async def test_while_a_hostile_file_is_refused_healthz_keeps_answering(review: Review) -> None:
    """Through uvicorn on a loopback port: four hostile imports at once; each is a 422 within a
    second and the same server's /healthz keeps answering within 100 ms."""
    files = [
        ("orgs.xlsx", hostile.declared_dimension_bomb(2000, COLUMNS)),
        ("orgs.xlsx", hostile.far_row(1_048_576, COLUMNS)),
        ("orgs.xlsx", hostile.diluted_bomb(COLUMNS)),
        ("orgs.csv", hostile.wide_csv_header(16_000, COLUMNS)),
    ]
    async with (
        served_on_loopback(review.app) as base_url,
        httpx.AsyncClient(base_url=base_url, timeout=30) as http,
        healthz_watched(base_url) as latencies,
    ):

        async def send(name: str, data: bytes) -> tuple[httpx.Response, float]:
            started = time.monotonic()
            r = await http.post(
                "/v1/orgs/import", files={"file": (name, data)}, headers=review.city
            )
            return r, time.monotonic() - started

        answers = await asyncio.gather(*(send(name, data) for name, data in files))
    for r, elapsed in answers:
        assert r.status_code == 422 and r.json()["limit"], r.text[:300]
        assert elapsed < 1.0
    assert_responsive(latencies)


async def test_only_the_city_imports(review: Review) -> None:
    r = await review.http.post(
        "/v1/orgs/import",
        files={"file": ("orgs.csv", csv_bytes([]))},
        headers=review.reviewer("D1"),
    )
    assert_problem(r, 403, "role_not_allowed")


async def import_500_and_route(review: Review) -> float:
    tag = f"K{uuid.uuid4().hex[:6]}"
    rows = directory_of(500, tag, await city_code(review))
    started = time.perf_counter()
    r = await upload(review, csv_bytes(rows, "gbk"))
    elapsed = time.perf_counter() - started
    assert r.status_code == 200, r.text
    assert r.json()["created"] == 500
    ids = {x["code"]: x["id"] for x in r.json()["rows"]}
    parent_of = {row[0]: row[3] for row in rows}
    for first in (f"{tag}-U1", f"{tag}-U3", f"{tag}-A9"):
        label = f"{'A' if '-A' in first else 'U'}-{first}"
        review.orgs[label] = ids[first]
        claim_id = await review.submit(label, kind="agency" if "-A" in first else "unit")
        assert (await review.decide(await review.open_task(claim_id), label)).status_code == 200
        assert (await review.open_task(claim_id))["org_id"] == ids[parent_of[first]]
    again = time.perf_counter()
    rerun = await upload(review, csv_bytes(rows, "gbk"))
    assert rerun.json()["unchanged"] == 500
    print(f"\nimport of 500 orgs: {elapsed:.2f}s; re-run: {time.perf_counter() - again:.2f}s")
    return elapsed


async def test_500_orgs_sqlite(review: Review) -> None:
    assert await import_500_and_route(review) < 60


async def test_500_orgs_postgres(tmp_path: Path, make_pg_database: Callable[[str], str]) -> None:
    url = await asyncio.to_thread(make_pg_database, "review_import")
    async with review_app(tmp_path, url) as review:
        assert await import_500_and_route(review) < 60
