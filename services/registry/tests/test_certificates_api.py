"""Completions, e-certificates and exam cards through the API on a real app: rosters as JSON, CSV
(UTF-8 with/without BOM, GBK) and XLSX with mixed good and bad rows, uploaded twice; one
certificate per passed row; the public lookup (masked, rate limited); the trainee's own list; the
PDF with its QR code; revocation; exam cards; and the events each step writes to the outbox."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import openpyxl
import pypdf
import pytest
from sqlalchemy import func, select

from libs.common.events import Affiliation, PersonUpdated, topic_of
from libs.common.settings import Settings
from services.registry.main import create_app
from services.registry.models import Certificate
from services.registry.state import registry_of
from services.registry.tests.support import (
    CLOCK,
    Registry,
    embedded_fonts,
    new_id_number,
    project_body,
    registry_app,
    with_bad_checksum,
)
from tests.support import assert_problem


@pytest.fixture(scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Registry]:
    data_dir: Path = tmp_path_factory.mktemp("registry-certificates")
    async with registry_app(data_dir) as r:
        yield r


def rows(*specs: tuple[str, str, Any, bool]) -> list[dict[str, Any]]:
    return [{"id_number": i, "name": n, "hours": h, "passed": p} for i, n, h, p in specs]


async def upload_json(
    registry: Registry, project: dict[str, Any], body: Any, org: str = "P"
) -> Any:
    return await registry.http.post(
        f"/v1/projects/{project['id']}/completions",
        json=body,
        headers=registry.auth("provider", org),
    )


async def upload_file(
    registry: Registry, project: dict[str, Any], name: str, content: bytes, mime: str
) -> Any:
    return await registry.http.post(
        f"/v1/projects/{project['id']}/completions",
        files={"file": (name, content, mime)},
        headers=registry.auth("provider", "P"),
    )


def drawing(page: pypdf.PageObject) -> bytes:
    """What a PDF page draws (its content stream): text, lines, the QR code's modules."""
    contents = page.get_contents()
    assert contents is not None
    return contents.get_data()


async def certificates_of(registry: Registry, project_id: str) -> int:
    state = registry.app.state.service
    async with state.sessionmaker() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(Certificate)
                .where(Certificate.project_id == project_id)
            )
            or 0
        )


async def test_mixed_rows_uploaded_twice(registry: Registry) -> None:
    project = await registry.approved_project()
    a, b, c = new_id_number(), new_id_number(), new_id_number()
    roster = rows(
        (a, "张三", 16, True),
        (with_bad_checksum(b), "李四", 16, True),
        (b, "李四", 16.5, True),  # above the planned 16 hours
        (c, "王五", 12, False),  # recorded, not passed: no certificate
        (a, "张三", 16, True),  # the same person again
        (b, "李四", 8, True),
    )
    r = await upload_json(registry, project, roster)
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["rows"], body["issued"], body["recorded"], body["rejected"]) == (6, 2, 1, 3)
    results = body["results"]
    assert [(x["row"], x["status"], x["code"]) for x in results] == [
        (1, "issued", None),
        (2, "rejected", "invalid_id_number"),
        (3, "rejected", "hours_above_planned"),
        (4, "recorded", None),
        (5, "rejected", "duplicate_person"),
        (6, "issued", None),
    ]
    assert all(len(x["id_number_masked"]) == 18 and "*" in x["id_number_masked"] for x in results)
    codes = [x["certificate_code"] for x in results if x["status"] == "issued"]
    events = [
        e for e in await registry.outbox() if e.type == "certificate.issued" and e.subject in codes
    ]
    assert sorted(e.data["code"] for e in events) == sorted(codes)
    issued_a = next(e.data for e in events if e.data["id_number"] == a)
    assert issued_a == {
        "code": results[0]["certificate_code"],
        "project_id": project["id"],
        "project_name": project["name"],
        "id_number": a,
        "holder_name": "张三",
        "year": 2026,
        "subject": "professional",
        "hours": 16.0,
    }
    outbox_before = len(await registry.outbox())
    # the same upload again changes nothing: same codes back, no new certificate, no new event
    again = (await upload_json(registry, project, roster)).json()
    assert (again["issued"], again["unchanged"], again["rejected"]) == (0, 3, 3)
    assert [x["certificate_code"] for x in again["results"] if x["status"] == "unchanged"] == [
        results[0]["certificate_code"],
        None,
        results[5]["certificate_code"],
    ]
    assert await certificates_of(registry, project["id"]) == 2
    assert len(await registry.outbox()) == outbox_before
    # a recorded fail corrected but still failed stays without a certificate
    corrected = (await upload_json(registry, project, rows((c, "王五", 10, False)))).json()
    assert [(x["status"], x["certificate_code"]) for x in corrected["results"]] == [
        ("recorded", None)
    ]
    assert await certificates_of(registry, project["id"]) == 2
    # a recorded fail later passed (make-up exam) earns its one certificate
    later = (await upload_json(registry, project, rows((c, "王五", 12, True)))).json()
    assert later["issued"] == 1 and await certificates_of(registry, project["id"]) == 3
    # other values for a person who already holds a certificate are refused for that row
    changed = (await upload_json(registry, project, rows((a, "张三", 8, True)))).json()
    assert changed["results"][0]["code"] == "completion_exists"


async def test_a_public_course_issues_public_certificates(registry: Registry) -> None:
    project = await registry.approved_project(
        kind="training", level=None, subject="public", name="公需科目：人工智能与数字经济"
    )
    assert project["subject"] == "public"
    body = (await upload_json(registry, project, rows((new_id_number(), "张三", 12, True)))).json()
    code = body["results"][0]["certificate_code"]
    assert (await registry.http.get(f"/v1/certificates/{code}")).json()["subject"] == "public"
    [event] = [e for e in await registry.outbox(code) if e.type == "certificate.issued"]
    assert event.data["subject"] == "public"


async def test_completions_only_for_an_approved_project_of_the_organiser(
    registry: Registry,
) -> None:
    draft = await registry.file()
    roster = rows((new_id_number(), "张三", 16, True))
    assert_problem(await upload_json(registry, draft, roster), 409, "project_not_approved")
    await registry.submit(draft)
    assert_problem(await upload_json(registry, draft, roster), 409, "project_not_approved")
    approved = await registry.approved_project()
    assert_problem(
        await upload_json(registry, approved, roster, org="P2"), 404, "project_not_found"
    )
    r = await registry.http.post(
        f"/v1/projects/{approved['id']}/completions", json=roster, headers=registry.city
    )
    assert_problem(r, 403, "not_applicant")
    assert await certificates_of(registry, draft["id"]) == 0
    assert await certificates_of(registry, approved["id"]) == 0
    r = await upload_json(registry, approved, [{"id_number": "x"}])
    assert_problem(r, 422, "validation_error")


def csv_bytes(lines: list[str], encoding: str) -> bytes:
    return "\r\n".join(lines).encode(encoding)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
async def test_csv_rosters_in_every_encoding(registry: Registry, encoding: str) -> None:
    project = await registry.approved_project()
    a, b = new_id_number(), new_id_number()
    content = csv_bytes(
        [
            "身份证号,姓名,学时,是否合格",
            f"{a},赵六,16,是",
            f"{b},钱七,8,否",
            "370402XXXX,孙八,8,是",
        ],
        encoding,
    )
    r = await upload_file(registry, project, "roster.csv", content, "text/csv")
    assert r.status_code == 200, r.text
    body = r.json()
    assert [(x["row"], x["status"], x["name"]) for x in body["results"]] == [
        (2, "issued", "赵六"),
        (3, "recorded", "钱七"),
        (4, "rejected", "孙八"),
    ]
    again = (await upload_file(registry, project, "roster.csv", content, "text/csv")).json()
    assert (again["issued"], again["unchanged"]) == (0, 2)


async def test_xlsx_roster_and_bad_files(registry: Registry) -> None:
    project = await registry.approved_project()
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["id_number", "name", "hours", "passed", "备注"])
    people = [new_id_number() for _ in range(3)]
    for n, id_number in enumerate(people):
        sheet.append([id_number, f"学员{n}", 16 if n else 7.5, "true", "第一期"])
    buffer = io.BytesIO()
    book.save(buffer)
    xlsx = buffer.getvalue()
    mime = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    body = (await upload_file(registry, project, "roster.xlsx", xlsx, mime)).json()
    assert body["issued"] == 3 and body["results"][0]["row"] == 2
    again = (await upload_file(registry, project, "roster.xlsx", xlsx, mime)).json()
    assert again["unchanged"] == 3 and await certificates_of(registry, project["id"]) == 3
    bad_header = csv_bytes(["id,name,hours", "1,2,3"], "utf-8")
    r = await upload_file(registry, project, "r.csv", bad_header, "text/csv")
    assert_problem(r, 422, "bad_header")
    r = await upload_file(registry, project, "r.xlsx", b"PK\x03\x04 not a workbook", mime)
    assert_problem(r, 422, "unreadable_workbook")
    r = await upload_file(registry, project, "r.csv", b"\xff\xfe\x00garbage\x81", "text/csv")
    assert_problem(r, 422, "unreadable_encoding")


async def test_public_verification_never_shows_the_full_id_number(registry: Registry) -> None:
    project = await registry.approved_project()
    a = new_id_number()
    body = (await upload_json(registry, project, rows((a, "张三", 16, True)))).json()
    code = body["results"][0]["certificate_code"]
    r = await registry.http.get(f"/v1/certificates/{code}")  # no token
    assert r.status_code == 200, r.text
    public = r.json()
    assert a not in r.text
    assert public["id_number_masked"] == a[:6] + "********" + a[-4:]
    assert {
        k: public[k]
        for k in ("code", "status", "holder_name", "project_name", "year", "subject", "hours")
    } == {
        "code": code,
        "status": "valid",
        "holder_name": "张三",
        "project_name": project["name"],
        "year": 2026,
        "subject": "professional",
        "hours": 16.0,
    }
    # case and spaces do not matter; an unknown code is a 404 that says nothing more
    assert (await registry.http.get(f"/v1/certificates/{code.lower()}")).status_code == 200
    assert_problem(
        await registry.http.get("/v1/certificates/ZZCE2026-0000-0000-0000-0000"),
        404,
        "certificate_not_found",
    )


async def test_public_lookup_is_rate_limited_per_address(tmp_path: Path) -> None:
    async with registry_app(tmp_path, verify_limit=5) as registry:
        for _ in range(5):
            r = await registry.http.get("/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD")
            assert r.status_code == 404
        r = await registry.http.get("/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD")
        assert_problem(r, 429, "rate_limited")
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        problem = r.json()
        assert problem["retry_after_s"] == int(r.headers["Retry-After"])
        # another address is not held back by the first one's guessing
        elsewhere = httpx.ASGITransport(app=registry.app, client=("127.0.0.2", 50000))
        async with httpx.AsyncClient(transport=elsewhere, base_url="http://registry") as other:
            r = await other.get("/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD")
            assert r.status_code == 404
        # the limit is the lookup's own: other routes, with a token, go on
        r = await registry.http.get("/v1/projects", headers=registry.auth("city_admin"))
        assert r.status_code == 200, r.text


async def test_the_trainee_lists_and_prints_their_certificates(registry: Registry) -> None:
    project = await registry.approved_project()
    a, b = new_id_number(), new_id_number()
    body = (
        await upload_json(registry, project, rows((a, "张三", 16, True), (b, "李四", 16, True)))
    ).json()
    code_a = body["results"][0]["certificate_code"]
    person_a = await registry.add_person(a, "张三")
    person_b = await registry.add_person(b, "李四")
    me = registry.auth("personnel", person_id=person_a)
    r = await registry.http.get("/v1/certificates", params={"mine": "true"}, headers=me)
    assert r.status_code == 200, r.text
    assert [c["code"] for c in r.json()["items"]] == [code_a]
    r = await registry.http.get(f"/v1/certificates/{code_a}/pdf", headers=me)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    reader = pypdf.PdfReader(io.BytesIO(r.content))
    text = reader.pages[0].extract_text()
    for expected in ("专业技术人员继续教育电子证书", "张三", project["name"], code_a, "16 学时"):
        assert expected in text, (expected, text)
    assert a not in text and (a[:6] + "********" + a[-4:]) in text
    # CE_PUBLIC_URL and the gateway's prefix of the registry, whatever Host the request named
    url = f"https://ce.zaozhuang.example/registry/v1/certificates/{code_a}"
    assert url in text  # printed under the QR code, which encodes the same URL
    forged = await registry.http.get(
        f"/v1/certificates/{code_a}/pdf", headers={**me, "Host": "evil.example"}
    )
    assert forged.status_code == 200
    forged_page = pypdf.PdfReader(io.BytesIO(forged.content)).pages[0]
    assert url in forged_page.extract_text() and "evil.example" not in forged_page.extract_text()
    # the same drawing, QR modules included: the Host named no part of the page
    assert drawing(forged_page) == drawing(reader.pages[0])
    assert "WenQuanYiMicroHei" in embedded_fonts(r.content)  # the glyphs are in the file
    # someone else's certificate: not found for them; the organiser and the city may print it
    other = registry.auth("personnel", person_id=person_b)
    assert_problem(
        await registry.http.get(f"/v1/certificates/{code_a}/pdf", headers=other),
        404,
        "certificate_not_found",
    )
    for headers in (registry.city, registry.auth("provider", "P")):
        assert (
            await registry.http.get(f"/v1/certificates/{code_a}/pdf", headers=headers)
        ).status_code == 200
    assert (
        await registry.http.get(
            f"/v1/certificates/{code_a}/pdf", headers=registry.auth("provider", "P2")
        )
    ).status_code == 404
    # the organiser lists its project's certificates; mine=true is for personnel only
    r = await registry.http.get(
        "/v1/certificates",
        params={"project_id": project["id"]},
        headers=registry.auth("provider", "P"),
    )
    assert len(r.json()["items"]) == 2
    r = await registry.http.get(
        "/v1/certificates", params={"mine": "true"}, headers=registry.auth("provider", "P")
    )
    assert_problem(r, 403, "role_not_allowed")


async def test_revocation_by_the_city_with_a_reason(registry: Registry) -> None:
    project = await registry.approved_project()
    body = (await upload_json(registry, project, rows((new_id_number(), "张三", 16, True)))).json()
    code = body["results"][0]["certificate_code"]
    url = f"/v1/certificates/{code}/revoke"
    r = await registry.http.post(url, json={"reason": "x"}, headers=registry.auth("provider", "P"))
    assert_problem(r, 403, "role_not_allowed")
    assert_problem(
        await registry.http.post(url, json={"reason": "  "}, headers=registry.city),
        422,
        "reason_required",
    )
    r = await registry.http.post(url, json={"reason": "培训签到造假"}, headers=registry.city)
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["revoked_reason"]) == ("revoked", "培训签到造假")
    public = (await registry.http.get(f"/v1/certificates/{code}")).json()
    assert public["status"] == "revoked"
    assert_problem(
        await registry.http.post(url, json={"reason": "again"}, headers=registry.city),
        409,
        "certificate_revoked",
    )
    revoked = [e for e in await registry.outbox(code) if e.type == "certificate.revoked"]
    assert [e.data for e in revoked] == [{"code": code, "reason": "培训签到造假"}]


async def test_exam_cards_one_per_person_and_year(registry: Registry) -> None:
    holder = new_id_number()
    body = {"id_number": holder, "name": "周九", "year": 2026, "hours": 12}
    exam = registry.auth("exam_center", "X")
    r = await registry.http.post(
        "/v1/exam-cards", json=body, headers={**exam, "Idempotency-Key": "card-1"}
    )
    assert r.status_code == 201, r.text
    card = r.json()
    assert card["card_no"].startswith("KW2026-") and card["id_number_masked"] != holder
    replay = await registry.http.post(
        "/v1/exam-cards", json=body, headers={**exam, "Idempotency-Key": "card-1"}
    )
    assert replay.json() == card
    assert_problem(
        await registry.http.post("/v1/exam-cards", json=body, headers=exam), 409, "exam_card_exists"
    )
    [event] = [e for e in await registry.outbox(card["card_no"])]
    assert (event.type, event.data) == (
        "exam_card.issued",
        {
            "card_no": card["card_no"],
            "id_number": holder,
            "name": "周九",
            "year": 2026,
            "hours": 12.0,
        },
    )
    bad = {**body, "id_number": with_bad_checksum(new_id_number())}
    assert_problem(
        await registry.http.post("/v1/exam-cards", json=bad, headers=exam), 422, "invalid_id_number"
    )
    assert_problem(
        await registry.http.post(
            "/v1/exam-cards", json={**body, "id_number": new_id_number(), "hours": 0}, headers=exam
        ),
        422,
        "invalid_hours",
    )
    assert_problem(
        await registry.http.post(
            "/v1/exam-cards", json=body, headers=registry.auth("provider", "P")
        ),
        403,
        "role_not_allowed",
    )
    got = await registry.http.get(f"/v1/exam-cards/{card['card_no'].lower()}", headers=exam)
    assert got.json() == card


async def test_urls_in_certificates_never_come_from_the_host_header(tmp_path: Path) -> None:
    """The embedded default (no CE_PUBLIC_URL): the PDF prints, and its QR encodes, the
    registry's own address, whatever ``Host`` the request named."""
    async with registry_app(tmp_path, public_url=None, port=8103) as registry:
        project = await registry.approved_project()
        number = new_id_number()
        body = (await upload_json(registry, project, rows((number, "张三", 16, True)))).json()
        code = body["results"][0]["certificate_code"]
        holder = registry.auth("personnel", person_id=await registry.add_person(number, "张三"))
        pages = []
        for host in ("registry", "evil.example", "127.0.0.1:8103"):
            r = await registry.http.get(
                f"/v1/certificates/{code}/pdf", headers={**holder, "Host": host}
            )
            assert r.status_code == 200, r.text
            pages.append(pypdf.PdfReader(io.BytesIO(r.content)).pages[0])
        url = f"http://127.0.0.1:8103/v1/certificates/{code}"
        for page in pages:
            assert url in page.extract_text() and "evil.example" not in page.extract_text()
            # the same drawing, QR modules included: no Host changed any part of the page
            assert drawing(page) == drawing(pages[0])


async def test_settings_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CE_PUBLIC_URL", "https://ce.zaozhuang.example/")
    monkeypatch.setenv("CE_REGISTRY_VERIFY_LIMIT", "7")
    app = create_app(
        Settings(
            service="registry",
            data_dir=tmp_path,
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}",
        )
    )
    async with app.router.lifespan_context(app):
        own = registry_of(app.state.service)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://registry") as http:
            codes = [
                (await http.get("/v1/certificates/ZZCE2026-AAAA-BBBB-CCCC-DDDD")).status_code
                for _ in range(8)
            ]
        assert codes == [404] * 7 + [429]  # CE_REGISTRY_VERIFY_LIMIT lookups, then 429
        assert own.verification_url("C-1") == (
            "https://ce.zaozhuang.example/registry/v1/certificates/C-1"
        )
    monkeypatch.delenv("CE_PUBLIC_URL")
    settings = app.state.settings.model_copy(update={"public_url": None, "port": 8103})
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        own = registry_of(app.state.service)
        # unset (embedded, development): the address the process listens on, not the request's
        assert own.verification_url("C-1") == "http://127.0.0.1:8103/v1/certificates/C-1"


async def test_mine_follows_the_persons_replica(registry: Registry) -> None:
    """A corrected ID number (``person.updated`` from claims) finds its certificates."""
    project = await registry.approved_project()
    wrong, right = new_id_number(), new_id_number()
    body = (await upload_json(registry, project, rows((right, "张三", 16, True)))).json()
    person_id = await registry.add_person(wrong)
    me = registry.auth("personnel", person_id=person_id)
    r = await registry.http.get("/v1/certificates", params={"mine": "true"}, headers=me)
    assert r.json()["items"] == []
    await registry.publish(
        topic_of("claims"),
        PersonUpdated(
            person_id=person_id,
            id_number=right,
            name="张三",
            affiliation=Affiliation(kind="unit", org_id=registry.orgs["U"]),
        ),
        subject=person_id,
    )
    r = await registry.http.get("/v1/certificates", params={"mine": "true"}, headers=me)
    assert [c["code"] for c in r.json()["items"]] == [body["results"][0]["certificate_code"]]


async def test_a_deactivated_org_files_uploads_and_issues_nothing(registry: Registry) -> None:
    await registry.add_org("P3", "provider", "C")
    await registry.add_org("X3", "exam_center", "C")
    project = await registry.file("P3")
    assert (await registry.submit(project, "P3")).status_code == 200
    assert (await registry.decide(project, "approve", "同意备案")).status_code == 200
    roster = rows((new_id_number(), "张三", 16, True))
    card = {"id_number": new_id_number(), "name": "周九", "year": 2026, "hours": 12}
    # review deactivates both orgs (a later org.upserted of the same orgs)
    await registry.add_org("P3", "provider", "C", active=False)
    await registry.add_org("X3", "exam_center", "C", active=False)
    provider, centre = registry.auth("provider", "P3"), registry.auth("exam_center", "X3")
    refused = [
        await registry.http.post(
            "/v1/projects", json=project_body(registry.orgs["P3"]), headers=provider
        ),
        await upload_json(registry, project, roster, org="P3"),
        await registry.http.post("/v1/exam-cards", json=card, headers=centre),
    ]
    for r in refused:  # the token of a deactivated org is refused, whatever it asks
        assert_problem(r, 403, "org_inactive")
    assert await certificates_of(registry, project["id"]) == 0
    # reactivated, the same requests go through
    await registry.add_org("P3", "provider", "C")
    await registry.add_org("X3", "exam_center", "C")
    uploaded = await upload_json(registry, project, roster, org="P3")
    assert uploaded.json()["issued"] == 1
    # issued at the service's clock (pinned), not the machine's
    code = uploaded.json()["results"][0]["certificate_code"]
    view = (await registry.http.get(f"/v1/certificates/{code}")).json()
    assert datetime.fromisoformat(view["issued_at"]) == CLOCK
    r = await registry.http.post("/v1/exam-cards", json=card, headers=centre)
    assert r.status_code == 201, r.text


async def test_a_completions_body_over_its_limit_is_the_shared_413(registry: Registry) -> None:
    from services.registry.api import MAX_JSON_BYTES

    project = await registry.approved_project()
    row = {"id_number": new_id_number(), "name": "张" * 40, "hours": 16, "passed": True}
    body = [row] * (MAX_JSON_BYTES // len(str(row)) + 10)
    r = await upload_json(registry, project, body)
    problem = assert_problem(r, 413, "payload_too_large")
    assert problem["max_bytes"] == MAX_JSON_BYTES
    assert await certificates_of(registry, project["id"]) == 0


async def test_an_exam_card_is_read_only_by_the_exam_centre_that_issued_it_and_the_city(
    registry: Registry,
) -> None:
    body = {"id_number": new_id_number(), "name": "吴十", "year": 2026, "hours": 6}
    issuer = registry.auth("exam_center", "X")
    r = await registry.http.post("/v1/exam-cards", json=body, headers=issuer)
    assert r.status_code == 201, r.text
    url = f"/v1/exam-cards/{r.json()['card_no']}"
    assert (await registry.http.get(url, headers=issuer)).json() == r.json()
    assert (await registry.http.get(url, headers=registry.city)).json() == r.json()
    # another exam centre learns nothing, not even that the card exists
    assert_problem(
        await registry.http.get(url, headers=registry.auth("exam_center", "Y")),
        404,
        "exam_card_not_found",
    )
