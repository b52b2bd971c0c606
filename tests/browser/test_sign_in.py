"""Signing in to the console in a real browser: the dev form, a demo principal in one click,
the navigation of the role, sign-out."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleStack, screenshot, sign_in


def test_the_unit_admin_signs_in_through_the_form_and_out_again(
    page: Page, console_stack: ConsoleStack
) -> None:
    page.goto("/")
    expect(page).to_have_url(console_stack.console + "/login")
    screenshot(page, "login")
    sign_in(page, "unit_admin", org=console_stack.orgs["U-SZ-HOSP"])
    expect(page.get_by_role("heading", name="待审核")).to_be_visible()
    navigation = page.get_by_role("navigation", name="主导航")
    expect(navigation.get_by_role("link", name="待审核")).to_be_visible()
    expect(navigation.get_by_role("link", name="机构管理")).to_have_count(0)
    expect(navigation).to_contain_text("枣庄市立医院")
    cookies = page.context.cookies()
    [session] = [c for c in cookies if c["name"] == "ce_console"]
    assert session["httpOnly"] and session["sameSite"] == "Lax"
    # the token is in no storage a script can read
    assert page.evaluate("document.cookie") == ""
    stored = "JSON.stringify([Object.entries(localStorage), Object.entries(sessionStorage)])"
    storage = page.evaluate(stored)
    # (htmx keeps only the current path; its page-history cache is turned off)
    assert "eyJ" not in storage and session["value"] not in storage, storage
    assert "htmx-history-cache" not in storage

    navigation.get_by_role("button", name="退出").click()
    expect(page).to_have_url(console_stack.console + "/login")
    page.goto("/review")
    expect(page).to_have_url(console_stack.console + "/login?next=%2Freview")


def test_a_wrong_org_is_refused_on_the_form_with_what_was_typed_kept(page: Page) -> None:
    sign_in(page, "district_admin", org="no-such-org")
    expect(page.get_by_role("alert")).to_contain_text("机构不存在")
    expect(page.get_by_label("机构")).to_have_value("no-such-org")
    expect(page.get_by_label("角色")).to_have_value("district_admin")


def test_a_demo_principal_signs_in_in_one_click(page: Page) -> None:
    page.goto("/login")
    page.get_by_role("button", name="区（市）人社局审核员：市中区人力资源和社会保障局").click()
    expect(page.get_by_role("heading", name="待审核")).to_be_visible()
    navigation = page.get_by_role("navigation", name="主导航")
    expect(navigation.get_by_role("link", name="审核进度")).to_be_visible()
