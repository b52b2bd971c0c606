"""Compliance reports (JSON, CSV, XLSX) and compliance reminders on a real claims service,
in-process on SQLite, and the essentials again on PostgreSQL."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlalchemy import select

from libs.common.events import Envelope
from libs.common.idnumber import mask_id_number
from services.claims import compliance, exports, reminders
from services.claims.tests.harness import CLOCK, Stack, claims_stack, id_number, set_clock

# district 滕州 → hospital, school, agency; department 卫健委 → city hospital;
# district 市中 → school
ORGS: list[tuple[str, str, str, str | None]] = [
    ("city", "枣庄市人力资源和社会保障局", "city", None),
    ("tz", "滕州市人社局", "district", "city"),
    ("unit_hosp", "滕州市中心人民医院", "unit", "tz"),
    ("unit_school", "滕州市第一中学", "unit", "tz"),
    ("agency_tz", "滕州市人才服务中心", "agency", "tz"),
    ("health", "枣庄市卫生健康委员会", "department", "city"),
    ("unit_cityhosp", "枣庄市立医院", "unit", "health"),
    ("sz", "市中区人社局", "district", "city"),
    ("unit_sz", "市中区实验小学", "unit", "sz"),
]
EVERYONE = {"p1", "p2", "p3", "p4", "p5", "p6", "p7"}
NON_COMPLIANT = {"p2", "p3", "p4", "p7"}


async def seed(w: Stack) -> None:
    await w.add_orgs(*ORGS)
    await w.register_labelled("p1", "张三", "unit_hosp", 1)
    await w.credit("p1", "public", "30")
    await w.credit("p1", "professional", "60", source="claim")
    # surplus public hours do not fill the professional gap; pending hours never count
    await w.register_labelled("p2", "李四", "unit_hosp", 2)
    await w.credit("p2", "public", "40")
    await w.credit("p2", "professional", "50", source="claim")
    await w.pending_claim("p2", 16)
    await w.register_labelled("p3", "=SUM(1,2)王五", "unit_school", 3)  # a formula-looking name
    await w.register_labelled("p4", "赵六", "unit_cityhosp", 4)
    await w.credit("p4", "public", "30")
    await w.credit("p4", "professional", "40", source="claim")
    await w.credit("p4", "professional", "20", source="claim", revoked=True)
    # one-decimal hours that a float sum would get wrong
    await w.register_labelled("p5", "钱七", "agency_tz", 5)
    for subject, hours in [("public", "29.9"), ("public", "0.1")]:
        await w.credit("p5", subject, hours)
    for hours in ["59.9", "0.1"]:
        await w.credit("p5", "professional", hours, source="claim")
    await w.register_labelled("p6", "孙八", "unit_sz", 6)
    await w.credit("p6", "public", "35")
    await w.credit("p6", "professional", "65")
    await w.register_labelled("p7", "周九", "unit_hosp", 7)  # last year's hours only
    await w.credit("p7", "public", "30", year=2025)
    await w.credit("p7", "professional", "60", year=2025)


@pytest.fixture(scope="module")
async def city(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    async with claims_stack(tmp_path_factory.mktemp("reports")) as w:
        await seed(w)
        yield w


def labels(w: Stack, items: list[dict[str, Any]]) -> set[str]:
    by_id = {v: k for k, v in w.persons.items()}
    return {by_id[i["id"]] for i in items}


async def report(w: Stack, headers: dict[str, str], **params: Any) -> Any:
    response = await w.http.get(
        "/v1/reports/compliance", params={"year": 2026, **params}, headers=headers
    )
    return response


# --- JSON -----------------------------------------------------------------------------------


async def test_city_report_covers_everybody(city: Stack) -> None:
    response = await report(city, city.auth("city_admin"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert labels(city, body["items"]) == EVERYONE
    assert body["org"] is None
    assert body["required"] == {"public": 30.0, "professional": 60.0, "total": 90.0}
    assert body["next_cursor"] is None
    summary = body["summary"]
    assert (summary["persons"], summary["compliant"], summary["non_compliant"]) == (7, 3, 4)
    compliant = {i["id"] for i in body["items"] if i["compliant"]}
    assert compliant == {city.persons[p] for p in EVERYONE - NON_COMPLIANT}
    # the city org itself means the whole city too
    by_city_org = await report(city, city.auth("city_admin"), org_id=city.orgs["city"])
    assert by_city_org.json()["summary"]["persons"] == 7


async def test_district_report_totals_gaps_and_pending(city: Stack) -> None:
    response = await report(city, city.auth("district_admin", org="tz"), org_id=city.orgs["tz"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert labels(city, body["items"]) == {"p1", "p2", "p3", "p5", "p7"}
    assert body["org"] == {"id": city.orgs["tz"], "name": "滕州市人社局", "type": "district"}
    items = {i["id"]: i for i in body["items"]}
    assert items[city.persons["p2"]] == {
        "id": city.persons["p2"],
        "name": "李四",
        "id_number_masked": mask_id_number(id_number(2)),
        "org_id": city.orgs["unit_hosp"],
        "org_name": "滕州市中心人民医院",
        "credited": {"public": 40.0, "professional": 50.0, "total": 90.0},
        "pending": {"public": 0.0, "professional": 16.0},
        "gaps": {"public": 0.0, "professional": 10.0},
        "compliant": False,
        "self_appraising": False,
    }
    assert id_number(2)[6:14] not in items[city.persons["p2"]]["id_number_masked"]
    assert items[city.persons["p3"]]["gaps"] == {"public": 30.0, "professional": 60.0}
    assert items[city.persons["p5"]]["credited"] == {
        "public": 30.0,
        "professional": 60.0,
        "total": 90.0,
    }
    assert items[city.persons["p5"]]["compliant"] is True
    assert items[city.persons["p7"]]["credited"]["total"] == 0.0  # 2025 hours are not 2026's
    summary = body["summary"]
    assert (summary["persons"], summary["compliant"]) == (5, 2)
    assert {(o["org_id"], o["persons"], o["compliant"]) for o in summary["by_org"]} == {
        (city.orgs["unit_hosp"], 3, 1),
        (city.orgs["unit_school"], 1, 0),
        (city.orgs["agency_tz"], 1, 1),
    }
    # per org, the hours its persons still miss (the console's chart) and its parent
    gaps = {o["org_id"]: (o["parent_id"], o["gaps"]) for o in summary["by_org"]}
    assert gaps[city.orgs["unit_hosp"]] == (
        city.orgs["tz"],
        {"public": 30.0, "professional": 70.0},
    )
    assert gaps[city.orgs["unit_school"]][1] == {"public": 30.0, "professional": 60.0}
    assert gaps[city.orgs["agency_tz"]][1] == {"public": 0.0, "professional": 0.0}


async def test_department_report_skips_revoked_hours(city: Stack) -> None:
    response = await report(city, city.auth("department_admin", org="health"))  # own org default
    body = response.json()
    assert labels(city, body["items"]) == {"p4"}
    (p4,) = body["items"]
    assert p4["credited"] == {"public": 30.0, "professional": 40.0, "total": 70.0}
    assert p4["gaps"] == {"public": 0.0, "professional": 20.0}
    assert body["summary"]["by_org"] == [
        {
            "org_id": city.orgs["unit_cityhosp"],
            "org_name": "枣庄市立医院",
            "parent_id": city.orgs["health"],
            "self_appraising": False,
            "persons": 1,
            "compliant": 0,
            "non_compliant": 1,
            "gaps": {"public": 0.0, "professional": 20.0},  # the revoked 20 hours are missing
        }
    ]


async def test_unit_admin_sees_its_own_unit_only(city: Stack) -> None:
    unit = city.auth("unit_admin", org="unit_hosp")
    own = await report(city, unit)
    assert labels(city, own.json()["items"]) == {"p1", "p2", "p7"}
    explicit = await report(city, unit, org_id=city.orgs["unit_hosp"])
    assert labels(city, explicit.json()["items"]) == {"p1", "p2", "p7"}
    for other in ("tz", "unit_school", "city"):
        refused = await report(city, unit, org_id=city.orgs[other])
        assert refused.status_code == 404
        assert refused.json()["code"] == "org_not_found"


async def test_scope_refusals(city: Stack) -> None:
    district = city.auth("district_admin", org="tz")
    for outside in ("unit_cityhosp", "sz", "unit_sz", "city", "health"):
        refused = await report(city, district, org_id=city.orgs[outside])
        assert refused.status_code == 404, outside
        assert refused.json()["code"] == "org_not_found"
    inside = await report(city, district, org_id=city.orgs["unit_school"])
    assert labels(city, inside.json()["items"]) == {"p3"}
    unknown = await report(city, city.auth("city_admin"), org_id="no-such-org")
    assert unknown.status_code == 404 and unknown.json()["code"] == "org_not_found"
    for headers in (
        city.auth("personnel", person="p1"),
        city.auth("provider", org="unit_hosp"),
        city.auth("exam_center", org="city"),
    ):
        forbidden = await report(city, headers)
        assert forbidden.status_code == 403
        assert forbidden.headers["content-type"] == "application/problem+json"
        assert forbidden.json()["code"] == "role_not_allowed"
    anonymous = await city.http.get("/v1/reports/compliance", params={"year": 2026})
    assert anonymous.status_code == 401
    no_rules = await report(city, city.auth("city_admin"), year=2019)
    assert no_rules.status_code == 422 and no_rules.json()["code"] == "unknown_rule_year"


async def test_the_admin_role_must_match_the_org_type(city: Stack) -> None:
    """One scope rule for reports and persons: a token whose role does not match the type of the
    org it names grants nothing. (The report used to trust a unit_admin token naming its parent
    district with the whole district, while the person endpoints refused the same token.)"""
    unit_admin_of_district = city.auth("unit_admin", org="tz")
    for params in ({}, {"org_id": city.orgs["tz"]}, {"org_id": city.orgs["unit_hosp"]}):
        refused = await report(city, unit_admin_of_district, **params)
        assert refused.status_code == 404, params
        assert refused.json()["code"] == "org_not_found"
    district_admin_of_unit = city.auth("district_admin", org="unit_hosp")
    refused = await report(city, district_admin_of_unit, org_id=city.orgs["unit_hosp"])
    assert refused.status_code == 404 and refused.json()["code"] == "org_not_found"
    # the persons of that district answer the same tokens the same way
    p1 = city.persons["p1"]
    for headers in (unit_admin_of_district, district_admin_of_unit):
        person = await city.http.get(f"/v1/persons/{p1}", headers=headers)
        assert person.status_code == 404 and person.json()["code"] == "person_not_found"
        readiness = await city.http.get(
            f"/v1/persons/{p1}/title-readiness",
            params={"application_date": "2026-12-10"},
            headers=headers,
        )
        assert readiness.status_code == 404
    # and the matching roles see them
    for role, org in (("district_admin", "tz"), ("unit_admin", "unit_hosp")):
        allowed = await report(city, city.auth(role, org=org), org_id=city.orgs[org])
        assert allowed.status_code == 200 and city.persons["p1"] in {
            i["id"] for i in allowed.json()["items"]
        }
        person = await city.http.get(f"/v1/persons/{p1}", headers=city.auth(role, org=org))
        assert person.status_code == 200


async def test_json_pages_through_the_scope_with_a_cursor(city: Stack) -> None:
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        body = (await report(city, city.auth("city_admin"), **params)).json()
        pages += 1
        assert len(body["items"]) <= 2
        if cursor is None:  # the first page carries the summary of the whole scope
            assert body["summary"]["persons"] == 7
        else:  # later pages do not, unless asked for
            assert body["summary"] is None
            again = (await report(city, city.auth("city_admin"), **params, summary=True)).json()
            assert again["summary"]["persons"] == 7 and again["items"] == body["items"]
        seen += [i["id"] for i in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 4
    assert sorted(seen) == sorted(city.persons[p] for p in EVERYONE)
    first = (await report(city, city.auth("city_admin"), limit=2, summary=False)).json()
    assert first["summary"] is None and len(first["items"]) == 2
    bad = await report(city, city.auth("city_admin"), cursor="not-a-cursor")
    assert bad.status_code == 400 and bad.json()["code"] == "invalid_cursor"
    too_big = await report(city, city.auth("city_admin"), limit=5000)
    assert too_big.status_code == 422


# --- files ----------------------------------------------------------------------------------


def parse_csv(content: bytes) -> list[dict[str, str]]:
    assert content.startswith(b"\xef\xbb\xbf")  # the BOM: Excel reads the file as UTF-8
    return list(csv.DictReader(io.StringIO(content.decode("utf-8-sig"))))


async def test_csv_export_streams_every_person_in_chunks(
    city: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(compliance, "CHUNK_SIZE", 2)  # several chunks for five persons
    response = await report(
        city, city.auth("district_admin", org="tz"), org_id=city.orgs["tz"], format="csv"
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = parse_csv(response.content)
    assert list(rows[0]) == list(exports.COLUMNS)
    by_id = {r["person_id"]: r for r in rows}
    assert set(by_id) == {city.persons[p] for p in ("p1", "p2", "p3", "p5", "p7")}
    p2 = by_id[city.persons["p2"]]
    assert (p2["name"], p2["org_name"]) == ("李四", "滕州市中心人民医院")
    assert (p2["credited_public"], p2["credited_professional"], p2["credited_total"]) == (
        "40.0",
        "50.0",
        "90.0",
    )
    assert (p2["pending_professional"], p2["gap_professional"], p2["compliant"]) == (
        "16.0",
        "10.0",
        "false",
    )
    assert by_id[city.persons["p5"]]["compliant"] == "true"
    # a name that looks like a formula is not run by the spreadsheet
    assert by_id[city.persons["p3"]]["name"] == "'=SUM(1,2)王五"


async def test_xlsx_export(city: Stack) -> None:
    response = await report(city, city.auth("city_admin"), format="xlsx")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = book["compliance"]
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert header == list(exports.COLUMNS)
    by_id = {r[0]: dict(zip(header, r, strict=True)) for r in rows}
    assert set(by_id) == {city.persons[p] for p in EVERYONE}
    p4 = by_id[city.persons["p4"]]
    assert (p4["org_name"], p4["credited_professional"], p4["gap_professional"]) == (
        "枣庄市立医院",
        40,
        20,
    )
    assert p4["compliant"] is False
    p3 = sheet.cell(row=1 + [r[0] for r in rows].index(city.persons["p3"]) + 1, column=2)
    assert (p3.value, p3.data_type) == ("=SUM(1,2)王五", "s")  # text, not a formula
    summary = {r[0]: r[1] for r in book["summary"].iter_rows(values_only=True) if r and r[0]}
    assert (summary["year"], summary["persons"], summary["compliant"]) == (2026, 7, 3)


# --- reminders ------------------------------------------------------------------------------


async def reminder_events(w: Stack, on: date) -> list[Envelope]:
    state = w.app.state.service
    outbox = state.spec.infra.outbox
    async with state.sessionmaker() as session:
        payloads = (
            await session.scalars(
                select(outbox.c.payload).where(outbox.c.event_type == "compliance.reminder_due")
            )
        ).all()
    events = [Envelope.from_bytes(p) for p in payloads]
    return [e for e in events if e.data["reminder_date"] == on.isoformat()]


async def test_worker_reminds_each_non_compliant_person_once(city: Stack) -> None:
    state = city.app.state.service
    on = date(2026, 10, 1)
    worker = reminders.ReminderWorker(state)
    assert await worker.run_once(date(2026, 9, 30)) == []  # not a reminder date
    (run,) = await worker.run_once(on)
    assert (run.checked, run.compliant, run.emitted, run.already_sent) == (7, 3, 4, 0)
    assert await worker.run_once(date(2026, 10, 2)) == []  # done in this process
    # a restarted process catches the date up, but nobody is reminded twice
    (again,) = await reminders.ReminderWorker(state).run_once(date(2026, 10, 2))
    assert (again.emitted, again.already_sent) == (0, 4)
    events = await reminder_events(city, on)
    assert sorted(e.subject for e in events) == sorted(city.persons[p] for p in NON_COMPLIANT)
    p2 = next(e for e in events if e.subject == city.persons["p2"])
    assert p2.type == "compliance.reminder_due" and p2.source == "claims"
    assert p2.data["org_id"] == city.orgs["unit_hosp"]
    assert p2.data["gaps"] == {"public": 0.0, "professional": 10.0}
    assert p2.data["credited"] == {"public": 40.0, "professional": 50.0, "total": 90.0}
    assert p2.data["year"] == 2026
    assert p2.data["window_closes_at"].startswith("2026-12-31T23:59:59")
    # past the catch-up days the date is not sent any more
    assert await reminders.ReminderWorker(state).run_once(date(2026, 10, 10)) == []


async def test_concurrent_runs_send_once(city: Stack) -> None:
    state = city.app.state.service
    on = date(2026, 12, 1)
    runs = await asyncio.gather(
        *(reminders.send_reminders(state, 2026, on, chunk_size=2) for _ in range(3))
    )
    assert sum(r.emitted for r in runs) == 4
    assert len(await reminder_events(city, on)) == 4


async def test_admin_endpoint_runs_reminders_now(city: Stack) -> None:
    body = {"year": 2026, "date": "2026-11-15"}
    first = await city.http.post("/v1/reminders/run", json=body, headers=city.auth("city_admin"))
    assert first.status_code == 200, first.text
    assert first.json() == {
        "year": 2026,
        "reminder_date": "2026-11-15",
        "checked": 7,
        "compliant": 3,
        "emitted": 4,
        "already_sent": 0,
    }
    second = await city.http.post("/v1/reminders/run", json=body, headers=city.auth("ops"))
    assert (second.json()["emitted"], second.json()["already_sent"]) == (0, 4)
    assert len(await reminder_events(city, date(2026, 11, 15))) == 4
    # no date: today in Beijing by the service clock (2026-12-20)
    today = await city.http.post(
        "/v1/reminders/run", json={"year": 2026}, headers=city.auth("city_admin")
    )
    assert today.json()["reminder_date"] == "2026-12-20"
    refused = await city.http.post(
        "/v1/reminders/run", json=body, headers=city.auth("unit_admin", org="unit_hosp")
    )
    assert refused.status_code == 403 and refused.json()["code"] == "role_not_allowed"
    outside = await city.http.post(
        "/v1/reminders/run",
        json={"year": 2026, "date": "2027-01-05"},
        headers=city.auth("city_admin"),
    )
    assert outside.status_code == 422 and outside.json()["code"] == "invalid_reminder_date"


async def test_background_worker_sends_on_the_reminder_date(city: Stack) -> None:
    state = city.app.state.service
    set_clock(city.app, datetime(2026, 12, 14, 16, 30, tzinfo=UTC))  # 12-15 Beijing
    worker = reminders.ReminderWorker(state, interval_s=0.02)
    await worker.start()
    try:
        for _ in range(250):
            if len(await reminder_events(city, date(2026, 12, 15))) == 4:
                break
            await asyncio.sleep(0.02)
    finally:
        await worker.stop()
        set_clock(city.app, CLOCK)
    assert len(await reminder_events(city, date(2026, 12, 15))) == 4


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def pg_url(make_pg_database: Callable[[str], str]) -> str:
    return make_pg_database("claims")  # sync: the fixture runs its own event loop


@pytest.mark.postgres
async def test_report_and_reminders_on_postgres(tmp_path: Path, pg_url: str) -> None:
    async with claims_stack(tmp_path, pg_url) as w:
        await seed(w)
        body = (await report(w, w.auth("district_admin", org="tz"))).json()
        assert labels(w, body["items"]) == {"p1", "p2", "p3", "p5", "p7"}
        assert (body["summary"]["persons"], body["summary"]["compliant"]) == (5, 2)
        items = {i["id"]: i for i in body["items"]}
        assert items[w.persons["p2"]]["pending"] == {"public": 0.0, "professional": 16.0}
        assert items[w.persons["p5"]]["compliant"] is True
        city_wide = (await report(w, w.auth("city_admin"))).json()["summary"]
        assert (city_wide["persons"], city_wide["compliant"]) == (7, 3)
        department = (await report(w, w.auth("department_admin", org="health"))).json()
        assert department["items"][0]["credited"]["professional"] == 40.0
        rows = parse_csv((await report(w, w.auth("city_admin"), format="csv")).content)
        assert len(rows) == 7
        on = date(2026, 10, 1)
        runs = await asyncio.gather(
            *(reminders.send_reminders(w.app.state.service, 2026, on) for _ in range(3))
        )
        assert sum(r.emitted for r in runs) == 4
        assert len(await reminder_events(w, on)) == 4
        again = await reminders.send_reminders(w.app.state.service, 2026, on)
        assert (again.emitted, again.already_sent) == (0, 4)


def test_due_dates() -> None:
    assert reminders.due_dates(date(2026, 11, 15)) == [(2026, date(2026, 11, 15))]
    assert reminders.due_dates(date(2026, 11, 18)) == [(2026, date(2026, 11, 15))]
    assert reminders.due_dates(date(2026, 11, 19)) == []
    assert reminders.due_dates(date(2027, 1, 1)) == []  # the 2026 window is closed
    assert reminders.due_dates(date(2026, 10, 3), catch_up_days=0) == []
