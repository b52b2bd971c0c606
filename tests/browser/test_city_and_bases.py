"""The city bureau's and the CE bases' main paths in a real browser against ``ce run --demo``,
each checked afterwards through the services' APIs: a CE base files a project (every 附件2
field) and the city approves it with its 审核意见; the base uploads its roster (结业名单) and sees
every row; the city imports orgs (文件 + 导入) and a bad file imports nothing; the report, the
operations page and the org tree render. Screenshots of each main page are saved."""

from __future__ import annotations

import itertools
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from libs.common.idnumber import check_character
from tests.browser.conftest import PHONE, ConsoleStack, screenshot, sign_in

_numbers = itertools.count(1)


def id_number() -> str:
    n = next(_numbers)
    born = date(1980, 1, 1) + timedelta(days=n * 37)
    first17 = f"370402{born:%Y%m%d}{(700 + n) % 1000:03d}"
    return first17 + check_character(first17)


FILING = {
    "地址": "枣庄市薛城区复元三路1号",
    "申请培训项目名称": "浏览器测试：急诊急救能力提升培训班",
    "负责人": "王主任",
    "联系人": "李老师",
    "联系电话": "0632-3786666",
    "培训计划": "第一天：急救理论\n第二天：模拟演练与考核",
    "计划培训对象": "全市医疗卫生专业技术人员",
    "计划培训人数": "60",
    "开始日期": "2026-12-14",
    "结束日期": "2026-12-15",
    "培训天数": "2",
    "拟计算学时": "16",
    "培训地点": "枣庄学院继续教育基地",
    "申报单位意见": "同意申报",
}


def projects(stack: ConsoleStack, name: str) -> list[dict[str, Any]]:
    with stack.api("city_admin") as api:
        r = api.get(stack.url("registry") + "/v1/projects", params={"limit": 500})
    assert r.status_code == 200, r.text
    return [p for p in r.json()["items"] if p["name"] == name]


def file_a_project(page: Page, stack: ConsoleStack) -> str:
    sign_in(page, "provider", org=stack.orgs["P-ZZU"])
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="项目备案").click()
    page.get_by_role("link", name="新建备案").click()
    for label, value in FILING.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_label("是否申请为市级高级研修班").select_option("true")
    page.get_by_label("培训形式").select_option(label="线上线下结合")
    screenshot(page, "filing-new")
    page.get_by_role("button", name="提交备案").click()
    expect(page.get_by_role("status")).to_contain_text("已提交备案")
    [project] = projects(stack, FILING["申请培训项目名称"])
    assert project["status"] == "submitted"
    return str(project["id"])


def test_a_base_files_a_project_and_the_city_approves_it(
    page: Page, console_stack: ConsoleStack
) -> None:
    stack = console_stack
    # a refusal first: 17 hours over two days, shown on the page with what was typed kept
    sign_in(page, "provider", org=stack.orgs["P-ZZU"])
    page.goto("/filings/new")
    for label, value in {**FILING, "拟计算学时": "17"}.items():
        page.get_by_label(label, exact=True).fill(value)
    page.get_by_role("button", name="保存草稿").click()
    expect(page.get_by_role("alert")).to_contain_text("超过每日学时上限")
    expect(page.get_by_label("拟计算学时")).to_have_value("17")
    expect(page.get_by_label("申请培训项目名称")).to_have_value(FILING["申请培训项目名称"])
    assert projects(stack, FILING["申请培训项目名称"]) == []

    project_id = file_a_project(page, stack)

    sign_in(page, "city_admin")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="项目备案").click()
    screenshot(page, "filings-city")
    page.get_by_role("link", name=FILING["申请培训项目名称"]).click()
    for label in ("地址", "是否申请为市级高级研修班", "计划培训人数", "培训形式", "申报单位意见"):
        expect(page.get_by_text(label, exact=True).first).to_be_visible()
    expect(page.get_by_text("线上线下结合")).to_be_visible()
    expect(page.get_by_role("link", name="查看备案表（PDF）")).to_be_visible()
    # 退回 without 审核意见 is refused on the page, nothing changes
    page.get_by_role("button", name="退回", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("必须填写审核意见")
    page.get_by_label("审核意见").fill("同意备案，请按计划组织实施")
    screenshot(page, "filing-decision")
    page.get_by_role("button", name="通过", exact=True).click()
    expect(page.get_by_role("status")).to_contain_text("已通过备案")
    page.set_viewport_size(PHONE)  # the same page on a phone: one column, nothing cut off
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "filing-phone")

    with stack.api("city_admin") as api:
        project = api.get(stack.url("registry") + f"/v1/projects/{project_id}").json()
    assert (project["status"], project["opinion"]) == ("approved", "同意备案，请按计划组织实施")
    assert (project["advanced_seminar"], project["form"], project["days"]) == (True, "mixed", 2)


def test_a_base_uploads_its_roster(page: Page, console_stack: ConsoleStack, tmp_path: Path) -> None:
    stack = console_stack
    name = "浏览器测试：结业名单上传培训班"
    with stack.api("provider", org_id=stack.orgs["P-ZZU"]) as api:
        body = {
            "year": 2026,
            "applicant_org_id": stack.orgs["P-ZZU"],
            "address": "枣庄市薛城区复元三路1号",
            "name": name,
            "person_in_charge": "王主任",
            "contact_name": "李老师",
            "contact_phone": "0632-3786666",
            "advanced_seminar": False,
            "plan": "两天课程",
            "target_trainees": "专业技术人员",
            "planned_participants": 30,
            "start_date": "2026-12-21",
            "end_date": "2026-12-22",
            "days": 2,
            "planned_hours": 16,
            "venue": "枣庄学院",
            "form": "offline",
        }
        created = api.post(stack.url("registry") + "/v1/projects", json=body)
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        assert api.post(stack.url("registry") + f"/v1/projects/{project_id}/submit").is_success
    with stack.api("city_admin") as api:
        r = api.post(
            stack.url("registry") + f"/v1/projects/{project_id}/decision",
            json={"decision": "approve", "opinion": "同意"},
        )
        assert r.status_code == 200, r.text

    passed, failed = id_number(), id_number()
    roster = tmp_path / "结业名单.csv"
    roster.write_text(
        "身份证号,姓名,学时,是否合格\n"
        f"{passed},周一,16,合格\n{failed},吴二,8,不合格\n3704021234,郑三,16,合格\n",
        encoding="utf-8-sig",
    )
    sign_in(page, "provider", org=stack.orgs["P-ZZU"])
    page.goto("/filings")
    page.get_by_role("link", name=name).click()
    page.get_by_role("link", name="上传结业名单").click()
    page.get_by_label("文件").set_input_files(str(roster))
    page.get_by_role("button", name="上传").click()
    expect(page.get_by_role("status")).to_contain_text("共 3 行：发证 1")
    expect(page.get_by_role("alert")).to_contain_text("有 1 行有误、未处理")
    expect(page.get_by_text("身份证号码无效。")).to_be_visible()
    screenshot(page, "roster-results")

    with stack.api("provider", org_id=stack.orgs["P-ZZU"]) as api:
        r = api.get(stack.url("registry") + "/v1/certificates", params={"project_id": project_id})
    [certificate] = r.json()["items"]
    assert (certificate["holder_name"], certificate["status"]) == ("周一", "valid")
    expect(page.get_by_text(certificate["code"])).to_be_visible()
    page.get_by_role("link", name="查看本项目证书").click()
    expect(page.get_by_role("link", name=certificate["code"])).to_be_visible()


def test_the_city_imports_orgs(page: Page, console_stack: ConsoleStack, tmp_path: Path) -> None:
    stack = console_stack
    good = tmp_path / "orgs.csv"
    good.write_text(
        "code,name,type,parent_code\n"
        "BR-U1,浏览器测试医院,unit,370402\nBR-U2,浏览器测试学校,unit,D-HEALTH\n",
        encoding="utf-8",
    )
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "code,name,type,parent_code\nBR-U3,好的一行,unit,370402\nBR-U4,坏的一行,unit,NO-SUCH\n",
        encoding="utf-8",
    )
    sign_in(page, "city_admin")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="机构管理").click()
    screenshot(page, "orgs-tree")
    page.get_by_role("link", name="批量导入").click()
    page.get_by_label("文件").set_input_files(str(bad))
    page.get_by_role("button", name="导入").click()
    expect(page.get_by_role("alert")).to_contain_text("全部未导入")
    expect(page.get_by_text("上级机构代码既不在目录中，也不在文件中。")).to_be_visible()
    page.get_by_label("文件").set_input_files(str(good))
    page.get_by_role("button", name="导入").click()
    expect(page.get_by_text("新建 2，更新 0，未变化 0")).to_be_visible()
    screenshot(page, "orgs-import")

    with stack.api("city_admin") as api:
        found = {
            code: api.get(stack.url("review") + "/v1/orgs", params={"q": code}).json()["items"]
            for code in ("BR-U1", "BR-U2", "BR-U3")
        }
    assert [o["name"] for o in found["BR-U1"]] == ["浏览器测试医院"]
    assert found["BR-U1"][0]["parent_id"] == stack.orgs["370402"]
    assert found["BR-U2"][0]["parent_id"] == stack.orgs["D-HEALTH"]
    assert found["BR-U3"] == []  # the good row of the bad file was not imported

    page.goto("/orgs?q=BR-U1")
    page.get_by_role("link", name="管理 浏览器测试医院").click()
    page.get_by_label("机构名称").fill("浏览器测试人民医院")
    page.get_by_role("button", name="保存").click()
    expect(page.get_by_role("status")).to_contain_text("已保存名称和代码")
    with stack.api("city_admin") as api:
        renamed = api.get(stack.url("review") + f"/v1/orgs/{found['BR-U1'][0]['id']}").json()
    assert renamed["name"] == "浏览器测试人民医院"


def test_the_report_and_operations_pages(page: Page, console_stack: ConsoleStack) -> None:
    sign_in(page, "city_admin")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="统计报表").click()
    expect(page.get_by_role("row", name="合计")).to_be_visible()
    expect(page.get_by_role("img", name="达标与未达标人数")).to_be_visible()
    expect(page.get_by_role("table").first).to_be_visible()
    screenshot(page, "reports")
    with page.expect_download() as download:
        page.get_by_role("link", name="人员明细 CSV").click()
    assert download.value.suggested_filename.endswith(".csv")
    page.get_by_role("navigation", name="主导航").get_by_role("link", name="运行状态").click()
    expect(page.get_by_role("heading", name="省平台同步", exact=True)).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    screenshot(page, "ops")
