"""项目备案, 结业名单 and certificates through the console's pages, with the real review and
registry behind it: a CE base files a project with every 附件2 field, the city bureau returns it
and then approves it, the base uploads its roster and sees every row's result, the city revokes
a certificate — each checked afterwards through the registry's API. Refusals are shown in
``role="alert"`` with what was typed kept, and change nothing."""

from __future__ import annotations

import io
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from console.pages.filing_form import FIELDS
from console.tests.city_support import City, alerts, city_console
from services.registry.tests.support import new_id_number

FORM = {
    "year": "2026",
    "address": "枣庄市薛城区复元三路1号",
    "name": "急诊急救能力提升培训班",
    "person_in_charge": "王主任",
    "contact_name": "李老师",
    "contact_phone": "0632-3786666",
    "advanced_seminar": "true",
    "plan": "第一天：急救理论\n第二天：模拟演练与考核",
    "target_trainees": "全市医疗卫生专业技术人员",
    "planned_participants": "80",
    "start_date": "2026-11-02",
    "end_date": "2026-11-03",
    "days": "2",
    "planned_hours": "16",
    "venue": "枣庄学院继续教育基地",
    "form": "mixed",
    "kind": "training",
    "level": "",
    "subject": "professional",
    "unit_opinion": "同意申报",
}


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[City]:
    async with city_console(tmp_path) as running:
        yield running


async def projects(city: City, **params: Any) -> list[dict[str, Any]]:
    r = await city.registry.http.get("/v1/projects", params=params, headers=city.registry.city)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


def project_id_of(location: str) -> str:
    found = re.match(r"/filings/([^/?]+)", location)
    assert found, location
    return found.group(1)


async def test_every_field_of_the_form_has_its_chinese_label(city: City) -> None:
    await city.browser.sign_in("provider", city.provider)
    page = await city.browser.get("/filings/new")
    assert page.status_code == 200, page.text
    for field in FIELDS:
        assert re.search(f'<label for="f-{field.name}">{re.escape(field.label)}', page.text), (
            field.label
        )
    for label in ("申请培训项目名称", "是否申请为市级高级研修班", "计划培训人数", "拟计算学时"):
        assert label in page.text
    assert "保存草稿" in page.text and "提交备案" in page.text


async def test_a_base_files_the_city_returns_the_base_amends_and_the_city_approves(
    city: City,
) -> None:
    browser = city.browser
    await browser.sign_in("provider", city.provider)
    saved = await browser.post("/filings/new", {**FORM, "action": "save"})
    project_id = project_id_of(saved.headers["location"])
    page = await browser.follow(saved)
    assert "已保存为草稿" in page.text and "草稿" in page.text
    [draft] = await projects(city)
    assert draft["status"] == "draft"
    assert (draft["name"], draft["advanced_seminar"], draft["form"]) == (
        FORM["name"],
        True,
        "mixed",
    )
    assert (draft["planned_hours"], draft["days"], draft["unit_opinion"]) == (16, 2, "同意申报")

    submitted = await browser.post(f"/filings/{project_id}", {**FORM, "action": "submit"})
    assert "已提交备案" in (await browser.follow(submitted)).text

    # the city bureau: the queue of submitted filings, every field on the filing's page
    await browser.sign_in("city_admin")
    queue = await browser.get("/filings")
    assert FORM["name"] in queue.text and alerts(queue) == []
    assert "共 1 项" in queue.text
    for field in FIELDS:  # every field of 附件2 in the list too (folded under the name)
        assert f"<dt>{field.label}</dt>" in queue.text, field.label
    page = await browser.get(f"/filings/{project_id}")
    for field in FIELDS:
        assert f"<dt>{field.label}</dt>" in page.text, field.label
    base = await city.review.http.get(f"/v1/orgs/{city.provider}", headers=city.review.city)
    assert f"<dt>申报单位</dt><dd>{base.json()['name']}</dd>" in page.text  # not the viewer's
    for shown in ("线上线下结合", "是", "全市医疗卫生专业技术人员", "2026-11-02", "同意申报"):
        assert shown in page.text
    assert f'href="/filings/{project_id}/form.pdf"' in page.text
    for button in (">通过<", ">退回<", ">驳回<", '<label for="opinion">审核意见</label>'):
        assert button in page.text

    pdf = await browser.get(f"/filings/{project_id}/form.pdf")
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")

    # 退回 without an opinion: refused on the page, nothing changed
    refused = await browser.post(f"/filings/{project_id}/decision", {"decision": "return"})
    assert refused.status_code == 422
    assert alerts(refused) == ["退回时必须填写审核意见。"]
    assert (await projects(city))[0]["status"] == "submitted"

    opinion = "培训计划请细化到每天的课程安排"
    returned = await browser.post(
        f"/filings/{project_id}/decision", {"decision": "return", "opinion": opinion}
    )
    assert "已退回" in (await browser.follow(returned)).text
    assert (await projects(city))[0]["status"] == "returned"

    # the base sees the status and the opinion, amends and submits again
    await browser.sign_in("provider", city.provider)
    page = await browser.get(f"/filings/{project_id}")
    assert "已退回" in page.text and opinion in page.text and "修改后重新提交" in page.text
    plan = "第一天上午：急救理论；下午：心肺复苏\n第二天：模拟演练与考核"
    again = await browser.post(f"/filings/{project_id}", {**FORM, "plan": plan, "action": "submit"})
    assert "已提交备案" in (await browser.follow(again)).text

    await browser.sign_in("city_admin")
    approved = await browser.post(
        f"/filings/{project_id}/decision", {"decision": "approve", "opinion": "同意备案"}
    )
    page = await browser.follow(approved)
    assert "已通过备案" in page.text and "已备案" in page.text
    [project] = await projects(city)
    assert (project["status"], project["plan"], project["opinion"]) == (
        "approved",
        plan,
        "同意备案",
    )
    r = await city.registry.http.get(
        f"/v1/projects/{project_id}/history", headers=city.registry.city
    )
    assert [s["action"] for s in r.json()["steps"]] == [
        "created",
        "amended",
        "submitted",
        "return",
        "amended",
        "submitted",
        "approve",
    ]


async def test_a_refused_filing_keeps_what_was_typed_and_files_nothing(city: City) -> None:
    await city.browser.sign_in("provider", city.provider)
    # 17 hours over two days: beyond 8 a day, refused by the registry
    page = await city.browser.post(
        "/filings/new", {**FORM, "planned_hours": "17", "action": "save"}
    )
    assert page.status_code == 422
    assert alerts(page) == ["超过每日学时上限。"]
    assert 'value="17"' in page.text and FORM["plan"] in page.text
    assert f'value="{FORM["name"]}"' in page.text
    # empty fields are named before anything is sent
    page = await city.browser.post("/filings/new", {**FORM, "address": "", "days": "两天"})
    assert page.status_code == 422
    assert alerts(page) == ["请填写「地址」。 「培训天数」应为整数。"]
    assert await projects(city) == []


async def test_the_city_bureau_does_not_file_and_a_base_does_not_decide(city: City) -> None:
    await city.browser.sign_in("provider", city.provider)
    saved = await city.browser.post("/filings/new", {**FORM, "action": "submit"})
    project_id = project_id_of(saved.headers["location"])
    page = await city.browser.post(
        f"/filings/{project_id}/decision", {"decision": "approve", "opinion": "自己批准"}
    )
    assert page.status_code == 403 and alerts(page) == ["当前角色无权进行此操作。"]
    assert (await projects(city))[0]["status"] == "submitted"


async def test_a_unit_files_its_own_project(city: City) -> None:
    """Filing units other than CE bases (a unit, as its unit admin) use the same form."""
    unit = city.review.orgs["U1"]
    await city.browser.sign_in("unit_admin", unit)
    page = await city.browser.get("/review")
    assert 'href="/filings"' in page.text  # 项目备案 in the unit admin's navigation
    saved = await city.browser.post("/filings/new", {**FORM, "action": "submit"})
    assert "已提交备案" in (await city.browser.follow(saved)).text
    [project] = await projects(city)
    assert (project["applicant_org_id"], project["status"]) == (unit, "submitted")


async def approved_project(city: City) -> str:
    await city.browser.sign_in("provider", city.provider)
    saved = await city.browser.post("/filings/new", {**FORM, "action": "submit"})
    project_id = project_id_of(saved.headers["location"])
    await city.browser.sign_in("city_admin")
    r = await city.browser.post(f"/filings/{project_id}/decision", {"decision": "approve"})
    assert r.status_code == 303, r.text
    return project_id


def roster_xlsx(rows: list[tuple[object, ...]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["身份证号", "姓名", "学时", "是否合格"])
    for row in rows:
        sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_a_base_uploads_its_roster_and_sees_every_row(city: City) -> None:
    project_id = await approved_project(city)
    passed, failed = new_id_number(), new_id_number()
    await city.browser.sign_in("provider", city.provider)
    page = await city.browser.get(f"/filings/{project_id}")
    assert f'href="/filings/{project_id}/roster"' in page.text
    form = await city.browser.get(f"/filings/{project_id}/roster")
    assert '<label for="roster-file">文件</label>' in form.text

    content = roster_xlsx(
        [
            (passed, "赵六", 16, "合格"),
            (failed, "钱七", 8, "不合格"),
            ("370402123", "孙八", 16, "是"),
        ]
    )
    files = {"file": ("结业名单.xlsx", content, "application/octet-stream")}
    page = await city.browser.post(f"/filings/{project_id}/roster", files=files)
    assert page.status_code == 200, page.text
    assert "共 3 行：发证 1，记录（未合格）1，未变化 0，有误未处理 1。" in page.text
    assert alerts(page) == [
        "有 1 行有误、未处理：按下表原因改正这些行后重新上传（已处理的行不会重复发证）。"
    ]
    assert "已发证" in page.text and "身份证号码无效。" in page.text
    assert passed not in page.text  # masked on the page

    r = await city.registry.http.get(
        "/v1/certificates", params={"project_id": project_id}, headers=city.registry.city
    )
    [certificate] = r.json()["items"]
    assert certificate["holder_name"] == "赵六"
    assert certificate["code"] in page.text

    # the same file again: nothing new
    page = await city.browser.post(f"/filings/{project_id}/roster", files=files)
    assert "发证 0" in page.text and "未变化 2" in page.text

    listed = await city.browser.get(f"/filings/{project_id}/certificates")
    assert certificate["code"] in listed.text and "赵六" in listed.text

    # no file chosen: refused on the page
    page = await city.browser.post(f"/filings/{project_id}/roster", {})
    assert page.status_code == 422 and alerts(page) == ["请选择要上传的文件。"]


async def test_the_city_revokes_a_certificate_with_a_reason(city: City) -> None:
    project_id = await approved_project(city)
    await city.browser.sign_in("provider", city.provider)
    content = roster_xlsx([(new_id_number(), "赵六", 16, "是")])
    await city.browser.post(
        f"/filings/{project_id}/roster", files={"file": ("r.xlsx", content, "")}
    )
    r = await city.registry.http.get(
        "/v1/certificates", params={"project_id": project_id}, headers=city.registry.city
    )
    code = r.json()["items"][0]["code"]

    await city.browser.sign_in("city_admin")
    found = await city.browser.get("/certificates", code=code)
    assert found.status_code == 303
    page = await city.browser.get(found.headers["location"])
    assert "撤销证书" in page.text and '<label for="reason">撤销原因</label>' in page.text
    refused = await city.browser.post(f"/certificates/{code}/revoke", {"reason": " "})
    assert refused.status_code == 422 and alerts(refused) == ["撤销证书必须填写撤销原因。"]
    revoked = await city.browser.post(
        f"/certificates/{code}/revoke", {"reason": "培训考核记录不实"}
    )
    page = await city.browser.follow(revoked)
    assert "证书已撤销" in page.text and "培训考核记录不实" in page.text
    public = await city.registry.http.get(f"/v1/certificates/{code}")
    assert (public.json()["status"], public.json()["revoked_reason"]) == (
        "revoked",
        "培训考核记录不实",
    )
    again = await city.browser.post(f"/certificates/{code}/revoke", {"reason": "再次撤销"})
    assert alerts(again) == ["证书已撤销。"]
