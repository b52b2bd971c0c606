"""Project filings (附件2) through the API on a real app: file, submit, the city bureau's
decision (approve / reject / return with opinion), amend and resubmit, the history, the roles, the
20 May deadline of city-direct units, the rules as problems that leave nothing behind, and the
events in the outbox."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pypdf
import pytest

from libs.common.clock import BEIJING
from services.registry.tests.support import (
    CLOCK,
    Registry,
    embedded_fonts,
    project_body,
    registry_app,
)
from tests.support import assert_problem


@pytest.fixture(scope="module")
async def registry(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Registry]:
    data_dir: Path = tmp_path_factory.mktemp("registry-projects")
    async with registry_app(data_dir) as r:
        yield r


@pytest.fixture(autouse=True)
def _clock(registry: Registry) -> None:
    registry.set_clock(CLOCK)


async def test_file_submit_and_approve(registry: Registry) -> None:
    project = await registry.file()
    assert project["status"] == "draft"
    assert {k: project[k] for k in ("planned_hours", "days", "form", "kind", "level")} == {
        "planned_hours": 16.0,
        "days": 2,
        "form": "offline",
        "kind": "digital_manager",
        "level": "junior",
    }
    r = await registry.submit(project)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "submitted"
    # the city bureau's queue
    queue = await registry.http.get(
        "/v1/projects", params={"status": "submitted"}, headers=registry.city
    )
    assert project["id"] in [p["id"] for p in queue.json()["items"]]
    waiting = queue.json()["total"]
    assert waiting == len(queue.json()["items"]) >= 1  # the whole queue, on one page here
    one = await registry.http.get(
        "/v1/projects", params={"status": "submitted", "limit": 1}, headers=registry.city
    )
    assert one.json()["total"] == waiting and len(one.json()["items"]) == 1
    r = await registry.decide(project, "approve", "同意备案")
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["opinion"]) == ("approved", "同意备案")
    types = [e.type for e in await registry.outbox(project["id"])]
    assert types == ["project.submitted", "project.approved"]
    after = await registry.http.get(
        "/v1/projects", params={"status": "submitted"}, headers=registry.city
    )
    assert after.json()["total"] == waiting - 1
    approved = (await registry.outbox(project["id"]))[-1].data
    assert approved == {
        "project_id": project["id"],
        "name": project["name"],
        "year": 2026,
        "applicant_org_id": registry.orgs["P"],
        "subject": "professional",
    }
    # decided once: a second decision is a conflict
    assert_problem(await registry.decide(project, "reject", "重复"), 409, "project_not_submitted")


async def test_returned_amended_resubmitted_and_approved_with_history(registry: Registry) -> None:
    project = await registry.file()
    await registry.submit(project)
    r = await registry.decide(project, "return")
    assert_problem(r, 422, "opinion_required")
    r = await registry.decide(project, "return", "培训计划不够详细，请补充课程安排")
    assert r.status_code == 200 and r.json()["status"] == "returned"
    # the applicant sees the opinion
    mine = await registry.http.get(
        f"/v1/projects/{project['id']}", headers=registry.auth("provider", "P")
    )
    assert mine.json()["opinion"] == "培训计划不够详细，请补充课程安排"
    # the city cannot approve a returned filing before it is resubmitted
    assert_problem(await registry.decide(project, "approve"), 409, "project_not_submitted")
    amended = project_body(registry.orgs["P"], plan="第一天：概论（8学时）\n第二天：实务（8学时）")
    r = await registry.http.put(
        f"/v1/projects/{project['id']}", json=amended, headers=registry.auth("provider", "P")
    )
    assert r.status_code == 200, r.text
    assert r.json()["plan"].startswith("第一天：概论")
    assert (await registry.submit(project)).status_code == 200
    r = await registry.decide(project, "approve", "同意备案")
    assert r.json()["status"] == "approved"
    # an approved filing can no longer be amended
    r = await registry.http.put(
        f"/v1/projects/{project['id']}", json=amended, headers=registry.auth("provider", "P")
    )
    assert_problem(r, 409, "project_not_editable")
    history = await registry.http.get(
        f"/v1/projects/{project['id']}/history", headers=registry.auth("provider", "P")
    )
    steps = history.json()["steps"]
    assert [(s["action"], s["status"]) for s in steps] == [
        ("created", "draft"),
        ("submitted", "submitted"),
        ("return", "returned"),
        ("amended", "returned"),
        ("submitted", "submitted"),
        ("approve", "approved"),
    ]
    assert steps[2]["opinion"] == "培训计划不够详细，请补充课程安排"
    types = [e.type for e in await registry.outbox(project["id"])]
    assert types == [
        "project.submitted",
        "project.returned",
        "project.submitted",
        "project.approved",
    ]


async def test_rejected_is_final(registry: Registry) -> None:
    project = await registry.file()
    await registry.submit(project)
    r = await registry.decide(project, "reject", "不属于专业技术人员继续教育范围")
    assert r.json()["status"] == "rejected"
    assert_problem(await registry.submit(project), 409, "project_not_editable")
    [*_, event] = await registry.outbox(project["id"])
    assert event.type == "project.rejected" and event.data["opinion"].startswith("不属于")


async def test_roles_only_the_applicant_files_and_only_the_city_decides(registry: Registry) -> None:
    body = project_body(registry.orgs["P"])
    # another provider cannot file for P, nor read, edit or submit P's filing
    r = await registry.http.post("/v1/projects", json=body, headers=registry.auth("provider", "P2"))
    assert_problem(r, 403, "not_applicant")
    project = await registry.file()
    other = registry.auth("provider", "P2")
    assert_problem(
        await registry.http.get(f"/v1/projects/{project['id']}", headers=other),
        404,
        "project_not_found",
    )
    r = await registry.http.post(f"/v1/projects/{project['id']}/submit", headers=other)
    assert_problem(r, 404, "project_not_found")
    # a personnel token or a unit admin acting for a provider is refused
    r = await registry.http.post(
        "/v1/projects", json=body, headers=registry.auth("personnel", person_id="p1")
    )
    assert_problem(r, 403, "role_not_allowed")
    r = await registry.http.post(
        "/v1/projects", json=body, headers=registry.auth("unit_admin", "P")
    )
    assert_problem(r, 403, "role_not_allowed")
    # the provider cannot decide (approve) its own filing; neither can a district
    await registry.submit(project)
    for headers in (registry.auth("provider", "P"), registry.auth("district_admin", "D")):
        r = await registry.http.post(
            f"/v1/projects/{project['id']}/decision", json={"decision": "approve"}, headers=headers
        )
        assert_problem(r, 403, "role_not_allowed")
    # an unknown applicant org (not replicated from review) is a rule breach, not a 500
    r = await registry.http.post(
        "/v1/projects",
        json=project_body("no-such-org"),
        headers=registry.auth("provider", "no-such-org"),
    )
    assert_problem(r, 422, "unknown_org")
    # a department, a district bureau and a district's unit file too
    for org, role in (("Dept", "department_admin"), ("D", "district_admin"), ("U", "unit_admin")):
        filed = await registry.file(org, role, kind="training", level=None)
        assert (await registry.submit(filed, org, role)).status_code == 200


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("planned_hours", 17, "daily_cap_exceeded"),
        ("days", 3, "days_mismatch"),
        ("start_date", "2025-12-30", "date_outside_year"),
        ("contact_phone", "12345", "invalid_phone"),
        ("planned_participants", 0, "invalid_planned_participants"),
        ("level", None, "invalid_project_level"),
        ("year", 2031, "unknown_rule_year"),
    ],
)
async def test_bad_filings_are_named_problems_that_leave_nothing(
    registry: Registry, field: str, value: object, code: str
) -> None:
    before = await registry.count("projects"), await registry.count("outbox")
    r = await registry.http.post(
        "/v1/projects",
        json=project_body(registry.orgs["P"], **{field: value}),
        headers=registry.auth("provider", "P"),
    )
    assert_problem(r, 422, code)
    assert (await registry.count("projects"), await registry.count("outbox")) == before


async def test_an_amendment_is_checked_like_a_filing(registry: Registry) -> None:
    project = await registry.file()
    r = await registry.http.put(
        f"/v1/projects/{project['id']}",
        json=project_body(registry.orgs["P"], planned_hours=20),
        headers=registry.auth("provider", "P"),
    )
    assert_problem(r, 422, "daily_cap_exceeded")
    r = await registry.http.get(f"/v1/projects/{project['id']}", headers=registry.city)
    assert r.json()["planned_hours"] == 16


@pytest.mark.parametrize(
    ("at", "ok"),
    [
        (datetime(2026, 5, 19, 23, 59, 59, tzinfo=BEIJING), True),
        (datetime(2026, 5, 20, 0, 0, 0, tzinfo=BEIJING), True),
        (datetime(2026, 5, 20, 23, 59, 59, tzinfo=BEIJING), True),
        (datetime(2026, 5, 21, 0, 0, 0, tzinfo=BEIJING), False),
        (datetime(2026, 5, 21, 23, 59, 59, tzinfo=BEIJING), False),
    ],
)
async def test_a_city_direct_unit_submits_its_own_project_by_20_may(
    registry: Registry, at: datetime, ok: bool
) -> None:
    project = await registry.file("UC", "unit_admin", kind="training", level=None)
    registry.set_clock(at)
    r = await registry.submit(project, "UC", "unit_admin")
    if ok:
        assert r.status_code == 200, r.text
    else:
        problem = assert_problem(r, 422, "filing_deadline_passed")
        assert problem["deadline"] == "2026-05-20"
        got = await registry.http.get(f"/v1/projects/{project['id']}", headers=registry.city)
        assert got.json()["status"] == "draft"
        assert await registry.outbox(project["id"]) == []
    # a provider, a district bureau and a unit under a district have no deadline
    for org, role in (("P", "provider"), ("U", "unit_admin"), ("D", "district_admin")):
        other = await registry.file(org, role, kind="training", level=None)
        assert (await registry.submit(other, org, role)).status_code == 200


async def test_a_departments_own_filing_has_the_20_may_deadline_too(registry: Registry) -> None:
    """Issue 20 item 7: 「市直单位自主开展的专业培训项目计划」 covers a 市直 department's own
    filings, not only its units'."""
    project = await registry.file("Dept", "department_admin", kind="training", level=None)
    registry.set_clock(datetime(2026, 12, 1, 9, 0, tzinfo=BEIJING))
    r = await registry.submit(project, "Dept", "department_admin")
    assert assert_problem(r, 422, "filing_deadline_passed")["deadline"] == "2026-05-20"
    got = await registry.http.get(f"/v1/projects/{project['id']}", headers=registry.city)
    assert got.json()["status"] == "draft" and await registry.outbox(project["id"]) == []
    registry.set_clock(datetime(2026, 5, 20, 23, 59, tzinfo=BEIJING))
    assert (await registry.submit(project, "Dept", "department_admin")).status_code == 200


async def test_days_may_be_fewer_than_the_span_never_more_never_0(registry: Registry) -> None:
    """Issue 20 item 7: a course on four Saturdays (2026-11-07..28) is 4 training days."""
    saturdays = {"start_date": "2026-11-07", "end_date": "2026-11-28", "days": 4,
                 "planned_hours": 32}  # fmt: skip
    r = await registry.http.post(
        "/v1/projects",
        json=project_body(registry.orgs["P"], **saturdays),
        headers=registry.auth("provider", "P"),
    )
    assert r.status_code == 201, r.text
    assert r.json()["days"] == 4
    for days, planned in ((23, 16), (0, 16)):
        before = await registry.count("projects")
        r = await registry.http.post(
            "/v1/projects",
            json=project_body(registry.orgs["P"], **{**saturdays, "days": days,
                                                     "planned_hours": planned}),
            headers=registry.auth("provider", "P"),
        )  # fmt: skip
        assert assert_problem(r, 422, "days_mismatch")["max_days"] == 22
        assert await registry.count("projects") == before
    # planned hours stay within 8 a training day (not a calendar day): 33 h on 4 days is refused
    r = await registry.http.post(
        "/v1/projects",
        json=project_body(registry.orgs["P"], **{**saturdays, "planned_hours": 33}),
        headers=registry.auth("provider", "P"),
    )
    assert_problem(r, 422, "daily_cap_exceeded")


async def test_the_form_pdf_carries_the_chinese_text(registry: Registry) -> None:
    project = await registry.approved_project()
    r = await registry.http.get(
        f"/v1/projects/{project['id']}/form.pdf", headers=registry.auth("provider", "P")
    )
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(r.content)).pages)
    for expected in (
        "专业技术人员继续教育培训项目备案表",
        "数字化管理师（初级）培训班",
        "枣庄学院继续教育基地",
        "线下",
        "同意备案",
        "已备案",
    ):
        assert expected in text, (expected, text)
    # the glyphs travel with the file: no reader-side CJK font is needed
    assert "WenQuanYiMicroHei" in embedded_fonts(r.content)
    other = await registry.http.get(
        f"/v1/projects/{project['id']}/form.pdf", headers=registry.auth("provider", "P2")
    )
    assert_problem(other, 404, "project_not_found")


async def test_openapi_documents_the_registry(registry: Registry) -> None:
    paths = registry.app.openapi()["paths"]
    for path in (
        "/v1/projects",
        "/v1/projects/{project_id}/submit",
        "/v1/projects/{project_id}/decision",
        "/v1/projects/{project_id}/completions",
        "/v1/projects/{project_id}/form.pdf",
        "/v1/certificates/{code}",
        "/v1/certificates/{code}/revoke",
        "/v1/certificates/{code}/pdf",
        "/v1/exam-cards",
    ):
        assert path in paths, path
    upload = paths["/v1/projects/{project_id}/completions"]["post"]["requestBody"]["content"]
    assert set(upload) == {"application/json", "multipart/form-data"}
